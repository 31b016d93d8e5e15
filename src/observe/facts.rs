//! What the pipeline reads of the cluster beyond the children: namespace labels (for grants by
//! label), the CustomResourceDefinitions (whose groups are protected; metadata only, CRD names
//! are `<plural>.<group>`) and the front-proxy settings kube-apiserver publishes.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use sha2::{Digest, Sha256};

use super::stores::reflect;
use crate::crd::ExtensionServer;
use crate::names::{AUTHENTICATION_CONFIG_MAP, KUBE_SYSTEM};

/// Namespace and CRD metadata caches, and the authentication ConfigMap.
#[derive(Clone)]
pub struct ClusterFacts {
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub crds: Store<PartialObjectMeta<CustomResourceDefinition>>,
    pub authentication: Store<ConfigMap>,
}

impl ClusterFacts {
    /// Starts both caches. A namespace's label change re-reconciles the ExtensionServers in
    /// it; a CRD that appears or goes re-reconciles every ExtensionServer (a new CRD may protect
    /// a group).
    pub fn watch(
        controller: Controller<ExtensionServer>,
        client: &Client,
        servers: Store<ExtensionServer>,
    ) -> (Self, Controller<ExtensionServer>) {
        let (namespaces, stream) = reflect(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        );
        let controller = controller.watches_stream(stream, move |namespace| {
            let name = namespace.meta().name.clone().unwrap_or_default();
            servers
                .state()
                .into_iter()
                .filter(|s| s.meta().namespace.as_deref() == Some(name.as_str()))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        });
        let (crds, changes) = reflect(
            Api::<PartialObjectMeta<CustomResourceDefinition>>::all(client.clone()),
            watcher::Config::default(),
        );
        // Only a CRD that appears or goes changes which groups are protected; its status
        // updates do not, so they wake nothing.
        let names = crds.clone();
        let mut known = BTreeSet::new();
        let added_or_removed = changes.filter_map(move |_| {
            let now: BTreeSet<String> = names
                .state()
                .iter()
                .filter_map(|crd| crd.metadata.name.clone())
                .collect();
            let changed = now != known;
            known = now;
            std::future::ready(changed.then_some(()))
        });
        let controller = controller.reconcile_all_on(added_or_removed);
        // A rotated front-proxy CA changes every server's pod template.
        let (authentication, changes) = reflect(
            Api::<ConfigMap>::namespaced(client.clone(), KUBE_SYSTEM),
            watcher::Config::default()
                .fields(&format!("metadata.name={AUTHENTICATION_CONFIG_MAP}")),
        );
        let controller = controller.reconcile_all_on(changes.map(|_| ()));
        let facts = Self {
            namespaces,
            crds,
            authentication,
        };
        (facts, controller)
    }

    /// A hash of the front-proxy settings (the requestheader CA, allowed names and headers),
    /// or None when kube-apiserver publishes none.
    pub fn front_proxy_hash(&self) -> Option<String> {
        let config_map = self
            .authentication
            .get(&ObjectRef::new(AUTHENTICATION_CONFIG_MAP).within(KUBE_SYSTEM))?;
        front_proxy_hash(config_map.data.as_ref()?)
    }

    /// The labels of `namespace` (empty if unknown).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// Every CRD's name.
    pub fn crd_names(&self) -> Vec<String> {
        self.crds
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect()
    }

    /// True once both caches have listed.
    pub async fn ready(&self) -> bool {
        super::stores::is_ready(&self.namespaces).await
            && super::stores::is_ready(&self.crds).await
            && super::stores::is_ready(&self.authentication).await
    }
}

/// Hashes every `requestheader-*` entry: a change to any of them makes a server that read them
/// at start refuse the aggregator.
pub fn front_proxy_hash(data: &BTreeMap<String, String>) -> Option<String> {
    let mut entries = data
        .iter()
        .filter(|(key, _)| key.starts_with("requestheader-"))
        .peekable();
    entries.peek()?;
    let mut hasher = Sha256::new();
    for (key, value) in entries {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    Some(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_front_proxy_hash_follows_the_requestheader_entries_only() {
        let ca = data(&[
            ("client-ca-file", "client"),
            ("requestheader-client-ca-file", "ca-1"),
            ("requestheader-allowed-names", "[\"front-proxy-client\"]"),
        ]);
        let hash = front_proxy_hash(&ca).unwrap();
        let mut other_client_ca = ca.clone();
        other_client_ca.insert("client-ca-file".into(), "client-2".into());
        assert_eq!(front_proxy_hash(&other_client_ca), Some(hash.clone()));
        let mut rotated = ca.clone();
        rotated.insert("requestheader-client-ca-file".into(), "ca-2".into());
        assert_ne!(front_proxy_hash(&rotated), Some(hash.clone()));
        let mut renamed = ca.clone();
        renamed.insert("requestheader-allowed-names".into(), "[\"other\"]".into());
        assert_ne!(front_proxy_hash(&renamed), Some(hash));
        assert_eq!(front_proxy_hash(&data(&[("client-ca-file", "x")])), None);
    }
}
