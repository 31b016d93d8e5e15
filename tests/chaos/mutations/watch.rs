//! Waiting without sleeps: one merged stream of watch events on a server and its children, and
//! a wait until a label selector matches nothing.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use futures::stream::{BoxStream, select_all};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::Api;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

fn ticks<K>(api: Api<K>, config: watcher::Config) -> BoxStream<'static, ()>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    watcher(api, config).map(|_| ()).boxed()
}

/// Every change to the server, its namespaced children, its binding and its APIServices.
pub fn changes(client: &Client, ns: &str, name: &str) -> impl Stream<Item = ()> + Unpin + use<> {
    let by_name = || watcher::Config::default().fields(&format!("metadata.name={name}"));
    let labels = format!(
        "aggregation.dev/extension-server-namespace={ns},aggregation.dev/extension-server={name}"
    );
    let c = || client.clone();
    select_all([
        ticks(Api::<ExtensionServer>::namespaced(c(), ns), by_name()),
        ticks(Api::<Deployment>::namespaced(c(), ns), by_name()),
        ticks(Api::<Service>::namespaced(c(), ns), by_name()),
        ticks(Api::<PodDisruptionBudget>::namespaced(c(), ns), by_name()),
        ticks(
            Api::<ClusterRoleBinding>::all(c()),
            watcher::Config::default().labels(&labels),
        ),
        ticks(
            Api::<APIService>::all(c()),
            watcher::Config::default().labels(&labels),
        ),
    ])
}

/// Waits for the next change; false once `deadline` has passed.
pub async fn next_change(stream: &mut (impl Stream<Item = ()> + Unpin), deadline: Instant) -> bool {
    tokio::time::timeout_at(deadline, stream.next())
        .await
        .is_ok()
}

/// Waits until nothing matches `selector`; returns what is left after `timeout`.
pub async fn until_none<K>(api: Api<K>, selector: &str, timeout: Duration) -> Vec<String>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut events = watcher(api, watcher::Config::default().labels(selector)).boxed();
    let (mut names, mut listing, mut synced) = (BTreeSet::new(), BTreeSet::new(), false);
    let outcome = tokio::time::timeout(timeout, async {
        while let Some(event) = events.next().await {
            match event.unwrap() {
                Event::Init => listing.clear(),
                Event::InitApply(k) => {
                    listing.insert(k.name_any());
                }
                Event::InitDone => {
                    names = std::mem::take(&mut listing);
                    synced = true;
                }
                Event::Apply(k) => {
                    names.insert(k.name_any());
                }
                Event::Delete(k) => {
                    names.remove(&k.name_any());
                }
            }
            if synced && names.is_empty() {
                return;
            }
        }
    })
    .await;
    match outcome {
        Ok(()) => Vec::new(),
        Err(_) => names.into_iter().collect(),
    }
}
