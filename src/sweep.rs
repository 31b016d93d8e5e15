//! The sweep: cluster-scoped and kube-system objects whose ExtensionServer is gone (its
//! finalizer removed by hand, the CRD reinstalled) are found and deleted, APIServices first.
//! It runs when the caches have synced and then every `--sweep-interval`, only while this
//! process runs the controller.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::error::{Error, Result};
use crate::names::KUBE_SYSTEM;
use crate::observe::Stores;
use crate::observe::owning_server;
use crate::ssa::preconditions_of;

/// Sweeps now and then every interval, forever; the controller's end drops it.
pub async fn every(
    ctx: Arc<Context>,
    stores: Stores,
    servers: Store<ExtensionServer>,
    namespace: Option<String>,
) {
    let _ = ctx.synced.subscribe().wait_for(|synced| *synced).await;
    let mut ticks = tokio::time::interval(ctx.settings.sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut sweep = Sweep {
            ctx: &ctx,
            servers: &servers,
            namespace: namespace.as_deref(),
            gone: HashMap::new(),
        };
        if let Err(error) = sweep.run(&stores).await {
            tracing::warn!(%error, "sweeping objects whose ExtensionServer is gone");
        }
    }
}

/// The owner of a cluster-scoped or kube-system object, if the operator manages it (and, with
/// `namespace`, only for servers in that namespace). Pure.
pub fn managed_owner<K: Resource>(
    object: &K,
    namespace: Option<&str>,
) -> Option<ObjectRef<ExtensionServer>> {
    let (namespace_of, name) = owning_server(object)?.split_once('/')?;
    let owner = ObjectRef::new(name).within(namespace_of);
    let in_scope = namespace.is_none_or(|ns| owner.namespace.as_deref() == Some(ns));
    in_scope.then_some(owner)
}

struct Sweep<'a> {
    ctx: &'a Context,
    servers: &'a Store<ExtensionServer>,
    namespace: Option<&'a str>,
    /// Owners already looked up in this pass.
    gone: HashMap<ObjectRef<ExtensionServer>, bool>,
}

impl Sweep<'_> {
    async fn run(&mut self, stores: &Stores) -> Result<()> {
        let client = self.ctx.client.clone();
        // APIServices first: one left pointing at a deleted Service breaks discovery.
        self.remove(
            &Api::<APIService>::all(client.clone()),
            stores.api_services.state(),
        )
        .await?;
        self.remove(
            &Api::all(client.clone()),
            stores.cluster_role_bindings.state(),
        )
        .await?;
        self.remove(
            &Api::namespaced(client, KUBE_SYSTEM),
            stores.role_bindings.state(),
        )
        .await
    }

    /// Deletes each of `objects` whose owner is gone, only as the uid seen.
    async fn remove<K>(&mut self, api: &Api<K>, objects: Vec<Arc<K>>) -> Result<()>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        for object in objects {
            let Some(owner) = managed_owner(object.as_ref(), self.namespace) else {
                continue;
            };
            if !self.owner_gone(&owner).await? {
                continue;
            }
            let name = object.name_any();
            let params = DeleteParams {
                preconditions: Some(preconditions_of(object.as_ref())),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    let kind = K::kind(&());
                    tracing::info!(%kind, %name, %owner, "removed an object whose ExtensionServer is gone");
                    self.ctx.metrics.orphan_removed(&kind);
                    let namespace = owner.namespace.as_deref().unwrap_or_default();
                    self.ctx.metrics.forget_server(namespace, &owner.name);
                }
                // Gone already, or replaced by a new object since the cache saw it.
                Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
                Err(source) => {
                    return Err(Error::Delete {
                        kind: K::kind(&()),
                        name,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// True only when the API server says the owner does not exist; the cache is checked
    /// first, and a live read confirms (the cache may lag behind a new server).
    async fn owner_gone(&mut self, owner: &ObjectRef<ExtensionServer>) -> Result<bool> {
        if self.servers.get(owner).is_some() {
            return Ok(false);
        }
        if let Some(gone) = self.gone.get(owner) {
            return Ok(*gone);
        }
        let namespace = owner.namespace.clone().unwrap_or_default();
        let api: Api<ExtensionServer> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let gone = match api.get(&owner.name).await {
            Ok(_) => false,
            // A 404 for this very object; not the 404 of a missing resource type.
            Err(kube::Error::Api(status)) if status.code == 404 => status
                .details
                .as_ref()
                .is_some_and(|d| d.name == owner.name),
            Err(source) => {
                return Err(Error::Get {
                    kind: ExtensionServer::kind(&()),
                    name: owner.to_string(),
                    source,
                });
            }
        };
        self.gone.insert(owner.clone(), gone);
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{MANAGED_BY_LABEL, ServerNames};
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;

    fn binding(labels: std::collections::BTreeMap<String, String>) -> ClusterRoleBinding {
        let mut binding = ClusterRoleBinding::default();
        let owner = ServerNames {
            name: "srv".into(),
            namespace: "team".into(),
        };
        binding.metadata.labels = Some(labels);
        binding.metadata.annotations = Some(owner.owner_annotations());
        binding
    }

    #[test]
    fn only_managed_objects_in_scope_have_an_owner_to_check() {
        let names = ServerNames {
            name: "srv".into(),
            namespace: "team".into(),
        };
        let ours = binding(names.cluster_labels());
        let owner = managed_owner(&ours, None).expect("ours");
        assert_eq!(
            (owner.name.as_str(), owner.namespace.as_deref()),
            ("srv", Some("team"))
        );
        assert!(managed_owner(&ours, Some("team")).is_some());
        assert!(managed_owner(&ours, Some("other")).is_none());

        let mut foreign_labels = names.cluster_labels();
        foreign_labels.remove(MANAGED_BY_LABEL);
        assert!(managed_owner(&binding(foreign_labels), None).is_none());
    }
}
