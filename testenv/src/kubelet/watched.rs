//! What the stand-in sees: stores of the pods on the fake Node and of the Services, for the
//! namespaces given or for every namespace but the excluded ones. Each change to them is an
//! item of the joint stream the stand-in syncs on.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::cluster::NODE_NAME;

/// The changes of every store, joined by the stand-in.
pub(super) type Changes = Vec<BoxStream<'static, ()>>;

#[derive(Clone, Default)]
pub(super) struct Watched {
    pods: Vec<Store<Pod>>,
    services: Vec<Store<Service>>,
    /// Namespaces whose pods and Services are left alone.
    excluded: Option<Store<Namespace>>,
}

impl Watched {
    /// The pods and Services of `namespaces`.
    pub(super) fn namespaces(client: &Client, namespaces: &[&str], changes: &mut Changes) -> Self {
        let mut watched = Watched::default();
        for namespace in namespaces {
            watched.pods.push(reflect(
                Api::namespaced(client.clone(), namespace),
                on_the_node(),
                changes,
            ));
            watched.services.push(reflect(
                Api::namespaced(client.clone(), namespace),
                watcher::Config::default(),
                changes,
            ));
        }
        watched
    }

    /// The pods and Services of every namespace but those labelled `excluded_label`.
    pub(super) fn cluster_wide(
        client: &Client,
        excluded_label: &str,
        changes: &mut Changes,
    ) -> Self {
        Watched {
            pods: vec![reflect(Api::all(client.clone()), on_the_node(), changes)],
            services: vec![reflect(
                Api::all(client.clone()),
                watcher::Config::default(),
                changes,
            )],
            excluded: Some(reflect(
                Api::all(client.clone()),
                watcher::Config::default().labels(excluded_label),
                changes,
            )),
        }
    }

    fn included(&self, object: &impl ResourceExt) -> bool {
        let namespace = object.namespace().unwrap_or_default();
        self.excluded
            .as_ref()
            .is_none_or(|excluded| excluded.state().iter().all(|n| n.name_any() != namespace))
    }

    pub(super) fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods
            .iter()
            .flat_map(|s| s.state())
            .filter(|p| self.included(p.as_ref()))
            .collect()
    }

    pub(super) fn services(&self) -> Vec<Arc<Service>> {
        self.services
            .iter()
            .flat_map(|s| s.state())
            .filter(|s| self.included(s.as_ref()))
            .collect()
    }
}

fn on_the_node() -> watcher::Config {
    watcher::Config::default().fields(&format!("spec.nodeName={NODE_NAME}"))
}

/// A store of `api`'s objects matching `config`; its changes join `changes`.
fn reflect<K>(api: Api<K>, config: watcher::Config, changes: &mut Changes) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .map(|_| ());
    changes.push(stream.boxed());
    store
}
