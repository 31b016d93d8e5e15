//! What the trust rules read of the cluster: namespace labels (for grants by label) and the
//! CustomResourceDefinitions (whose groups are protected). Metadata only; CRD names are
//! `<plural>.<group>`, so the group needs no spec.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

use crate::crd::ExtensionServer;

/// Namespace and CRD metadata caches.
#[derive(Clone)]
pub struct Facts {
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub crds: Store<PartialObjectMeta<CustomResourceDefinition>>,
}

impl Facts {
    /// Starts both caches. A namespace's label change re-reconciles the ExtensionServers in
    /// it; any CRD change re-reconciles every ExtensionServer (a new CRD may protect a group).
    pub fn watch(
        controller: Controller<ExtensionServer>,
        client: &Client,
        servers: Store<ExtensionServer>,
    ) -> (Self, Controller<ExtensionServer>) {
        let (namespaces, writer) = reflector::store();
        let stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .touched_objects();
        let controller = controller.watches_stream(stream, move |namespace| {
            let name = namespace.meta().name.clone().unwrap_or_default();
            servers
                .state()
                .into_iter()
                .filter(|s| s.meta().namespace.as_deref() == Some(name.as_str()))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        });
        let (crds, writer) = reflector::store();
        let changes = watcher(
            Api::<PartialObjectMeta<CustomResourceDefinition>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .map(|_| ());
        let controller = controller.reconcile_all_on(changes);
        (Self { namespaces, crds }, controller)
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
        super::stores::is_ready(&self.namespaces).await && super::stores::is_ready(&self.crds).await
    }
}
