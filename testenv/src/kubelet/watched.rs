//! What the stand-in sees: stores of the pods on the fake Node and of the Services, for the
//! namespaces given or for every namespace but the excluded ones. Each change to them is an
//! item of the joint stream the stand-in syncs on.

use std::collections::HashSet;
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

    pub(super) fn pods(&self) -> Vec<Arc<Pod>> {
        self.visible(&self.pods)
    }

    pub(super) fn services(&self) -> Vec<Arc<Service>> {
        self.visible(&self.services)
    }

    /// The objects of `stores` outside the excluded namespaces (read once per call).
    fn visible<K>(&self, stores: &[Store<K>]) -> Vec<Arc<K>>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let excluded: HashSet<String> = self
            .excluded
            .iter()
            .flat_map(|s| s.state())
            .map(|n| n.name_any())
            .collect();
        stores
            .iter()
            .flat_map(|s| s.state())
            .filter(|o| !excluded.contains(&o.namespace().unwrap_or_default()))
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
