//! The floor: a minimal client that does the operator's work for many servers with no
//! controller around it (no watches, caches, status, events or finalizers). For each server
//! it creates the same children, waits for the Deployment to have a ready replica, then
//! creates the APIService. The operator's time divided by this one is its overhead.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use extension_server_operator::apiservice::APIService;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher;
use testenv::TestNamespace;

use crate::floor_objects::{Pki, Server};

/// Servers the floor client works on at once: the operator's reconcile concurrency (its
/// `--concurrency` default).
pub const CONCURRENCY: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(600);

/// How long the floor took, and when each APIService was created (from the start).
pub struct Floor {
    pub total: Duration,
    pub created: Vec<Duration>,
}

fn ready(deployment: Option<&Deployment>) -> bool {
    deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1
}

/// Creates one server's children, waits for its pod, registers it.
async fn one(ns: &TestNamespace, pki: &Pki, name: String, started: Instant) -> Result<Duration> {
    let server = Server::new(name, &ns.name, pki)?;
    let post = PostParams::default();
    let client = ns.client.clone();
    let missing = |what: &str| anyhow::anyhow!("the builders made no {what}");
    let children = &server.children;
    let account = children
        .service_account
        .as_ref()
        .ok_or_else(|| missing("ServiceAccount"))?;
    ns.api().create(&post, account).await?;
    let delegator = children
        .auth_delegator
        .as_ref()
        .ok_or_else(|| missing("binding"))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&post, delegator)
        .await?;
    let reader = children
        .auth_reader
        .as_ref()
        .ok_or_else(|| missing("RoleBinding"))?;
    Api::<RoleBinding>::namespaced(client.clone(), "kube-system")
        .create(&post, reader)
        .await?;
    ns.api().create(&post, server.ca_secret()).await?;
    let tls = children
        .tls_secret
        .as_ref()
        .ok_or_else(|| missing("TLS Secret"))?;
    ns.api().create(&post, tls).await?;
    let deployments: Api<Deployment> = ns.api();
    let deployment = children
        .deployment
        .as_ref()
        .ok_or_else(|| missing("Deployment"))?;
    deployments.create(&post, deployment).await?;
    ns.api().create(&post, &children.service).await?;
    tokio::time::timeout(TIMEOUT, await_condition(deployments, &server.name, ready))
        .await
        .with_context(|| format!("floor Deployment {} never became ready", server.name))??;
    let apis = Api::<APIService>::all(client);
    for api_service in &children.api_services {
        apis.create(&post, api_service).await?;
    }
    Ok(started.elapsed())
}

/// Runs the floor for `servers` servers in a fresh namespace, then removes everything.
pub async fn run(servers: usize) -> Result<Floor> {
    let ns = TestNamespace::create("bench-floor").await?;
    let pki = Pki::generate()?;
    let started = Instant::now();
    let result = futures::stream::iter(0..servers)
        .map(|i| one(&ns, &pki, crate::servers::name(i), started))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<Duration>>()
        .await;
    let total = started.elapsed();
    let cleaned = clean_up(&ns).await;
    let mut created = result?;
    cleaned?;
    created.sort();
    Ok(Floor { total, created })
}

/// Deletes the cluster-scoped and kube-system objects (by their namespace label), then the
/// namespace, and waits until all of it is gone.
async fn clean_up(ns: &TestNamespace) -> Result<()> {
    let selector = format!("aggregation.dev/extension-server-namespace={}", ns.name);
    let list = ListParams::default().labels(&selector);
    let config = watcher::Config::default().labels(&selector);
    let delete = DeleteParams::default();
    let client = ns.client.clone();
    let api_services = Api::<APIService>::all(client.clone());
    api_services.delete_collection(&delete, &list).await?;
    crate::watch::until_empty(api_services, config.clone(), TIMEOUT).await?;
    let bindings = Api::<ClusterRoleBinding>::all(client.clone());
    bindings.delete_collection(&delete, &list).await?;
    crate::watch::until_empty(bindings, config.clone(), TIMEOUT).await?;
    let readers = Api::<RoleBinding>::namespaced(client, "kube-system");
    readers.delete_collection(&delete, &list).await?;
    crate::watch::until_empty(readers, config, TIMEOUT).await?;
    ns.delete_and_wait(TIMEOUT).await
}
