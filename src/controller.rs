//! Wires the reconcile pipeline into a kube-runtime Controller with label-selected watches.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource};

use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::error::Error;
use crate::names::{
    KUBE_SYSTEM, OWNER_ANNOTATION, SERVER_LABEL, SERVER_NAMESPACE_LABEL, managed_selector,
};
use crate::reconcile::reconcile;

/// Maps a cluster-scoped or kube-system child back to its ExtensionServer.
fn owner_of<K: Resource>(child: &K) -> Option<ObjectRef<ExtensionServer>> {
    let meta = child.meta();
    if let Some((namespace, name)) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .and_then(|o| o.split_once('/'))
    {
        return Some(ObjectRef::new(name).within(namespace));
    }
    let labels = meta.labels.as_ref()?;
    Some(ObjectRef::new(labels.get(SERVER_LABEL)?).within(labels.get(SERVER_NAMESPACE_LABEL)?))
}

fn error_policy(server: Arc<ExtensionServer>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        server = %ObjectRef::from_obj(server.as_ref()),
        category = error.category(),
        %error,
        "reconcile failed"
    );
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until SIGTERM or Ctrl-C. With `namespace`, only ExtensionServers (and
/// their children) in that namespace are watched.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    run_until(ctx, namespace, crate::shutdown::watch_signal()).await;
}

/// Runs the controller until `shutdown` turns true. In-flight reconciles then get
/// [`GRACE`](crate::shutdown::GRACE) to finish. Before the caches have synced nothing is in
/// flight, so it stops at once (kube-runtime's runner would otherwise wait for a store that
/// never becomes ready).
pub async fn run_until(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let forced = {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        async move {
            crate::shutdown::requested(shutdown).await;
            if *ctx.synced.borrow() {
                tokio::time::sleep(crate::shutdown::GRACE).await;
                tracing::warn!("reconciles did not finish within the shutdown grace period");
            }
        }
    };
    tokio::select! {
        () = controller(ctx, namespace, shutdown) => {}
        () = forced => {}
    }
}

async fn controller(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let client = ctx.client.clone();
    let managed = || watcher::Config::default().labels(&managed_selector());
    let cluster_scoped = || match &namespace {
        Some(ns) => watcher::Config::default().labels(&format!(
            "{},{SERVER_NAMESPACE_LABEL}={ns}",
            managed_selector()
        )),
        None => managed(),
    };
    fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let controller = Controller::new(
        scoped::<ExtensionServer>(&client, &namespace),
        watcher::Config::default(),
    );
    let store = controller.store();
    let readiness = ctx.clone();
    tokio::spawn(async move {
        // Re-poll every second: the store's readiness future can miss its wake-up.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    readiness.synced.send_replace(true);
                    readiness.ready.send_replace(true);
                    tracing::info!("caches synced");
                    break;
                }
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
    });
    controller
        .owns(scoped::<Deployment>(&client, &namespace), managed())
        .owns(scoped::<Service>(&client, &namespace), managed())
        .owns(scoped::<Secret>(&client, &namespace), managed())
        .owns(scoped::<ServiceAccount>(&client, &namespace), managed())
        .owns(
            scoped::<PodDisruptionBudget>(&client, &namespace),
            managed(),
        )
        .watches(
            Api::<APIService>::all(client.clone()),
            cluster_scoped(),
            |a| owner_of(&a),
        )
        .watches(
            Api::<ClusterRoleBinding>::all(client.clone()),
            cluster_scoped(),
            |b| owner_of(&b),
        )
        .watches(
            Api::<RoleBinding>::namespaced(client.clone(), KUBE_SYSTEM),
            cluster_scoped(),
            |b| owner_of(&b),
        )
        .graceful_shutdown_on(crate::shutdown::requested(shutdown))
        .run(reconcile_counted, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(server = %object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile error"),
            }
        })
        .await;
}

async fn reconcile_counted(
    server: Arc<ExtensionServer>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(server, ctx.clone()).await;
    let category = result.as_ref().err().map(Error::category);
    ctx.metrics.reconciled(started.elapsed(), category);
    result
}
