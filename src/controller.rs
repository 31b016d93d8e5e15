//! Wires the reconcile pipeline into a kube-runtime Controller: the ExtensionServers, and one
//! label-selected reflector per child kind whose changes re-reconcile the owner.

use std::sync::Arc;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;

use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::error::Error;
use crate::observe::listed::Listed;
use crate::observe::{ClusterFacts, Servers, Stores};
use crate::reconcile::{Reconciler, failure, reconcile};

/// Retries a failed object after its own backoff; its failure is already in its status.
fn error_policy(
    server: Arc<ExtensionServer>,
    error: &Error,
    reconciler: Arc<Reconciler>,
) -> Action {
    let key = ObjectRef::from_obj(server.as_ref());
    let retry_in = reconciler
        .backoffs
        .failed(&key, &error.category(), error.persistence());
    tracing::warn!(
        server = %key,
        category = %error.category(),
        %error,
        retry_in = ?retry_in,
        "reconcile failed"
    );
    Action::requeue(retry_in)
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
    let servers: Api<Listed> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let config = controller::Config::default().concurrency(ctx.settings.concurrency);
    let reporter = ctx.clone();
    let (servers, trigger) = Servers::watch(servers, move |meta, why| {
        crate::reconcile::undecodable::report(&reporter, meta, why);
    });
    let store = servers.store.clone();
    let controller = Controller::for_stream(trigger, store.clone())
        .with_config(config)
        .trigger_backoff(NoTriggerBackoff);
    let (stores, controller) =
        Stores::watch(controller, &client, namespace.as_deref(), store.clone());
    let (facts, mut controller) = ClusterFacts::watch(controller, &client, store.clone());
    controller = crate::observe::user_secrets::watch(
        controller,
        &client,
        namespace.as_deref(),
        store.clone(),
    );
    // A probe finding that changed wakes the servers that asked for it.
    if let Some(wakes) = ctx.prober.wakes() {
        controller = controller.reconcile_on(wakes);
    }
    if let Some(path) = ctx.settings.grants_file.clone() {
        controller = controller.reconcile_all_on(crate::grants_reload::follow(ctx.clone(), path));
    }
    let readiness = (ctx.clone(), stores.clone(), facts.clone());
    tokio::spawn(async move {
        let (ctx, stores, facts) = readiness;
        // Re-poll every second: a store's readiness future can miss its wake-up.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
                Ok(Ok(())) if stores.ready().await && facts.ready().await => {
                    ctx.synced.send_replace(true);
                    ctx.ready.send_replace(true);
                    tracing::info!("caches synced");
                    break;
                }
                Ok(Err(_)) => break,
                _ => continue,
            }
        }
    });
    let reconciler = Arc::new(Reconciler {
        ctx,
        stores,
        servers,
        facts,
        backoffs: Default::default(),
    });
    let sweep = crate::sweep::every(
        reconciler.ctx.clone(),
        reconciler.stores.clone(),
        reconciler.servers.store.clone(),
        namespace,
    );
    let controller = controller
        .graceful_shutdown_on(crate::shutdown::requested(shutdown))
        .run(reconcile_counted, error_policy, reconciler)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(server = %object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile error"),
            }
        });
    // The sweep never ends on its own: it stops with the controller.
    tokio::select! {
        () = controller => {}
        () = sweep => {}
    }
}

/// Every watch already backs off on its own errors. kube-runtime's default backoff on the merged
/// trigger stream would, after any one watch error, pause every cache: up to 30 s at a time,
/// for minutes, after a kube-apiserver restart answers each watch with 410 Gone. So it never
/// waits.
struct NoTriggerBackoff;

impl Iterator for NoTriggerBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoTriggerBackoff {
    fn reset(&mut self) {}
}

async fn reconcile_counted(
    server: Arc<ExtensionServer>,
    reconciler: Arc<Reconciler>,
) -> Result<Action, Error> {
    // No pass runs before every cache has listed: a missing child would look absent.
    let _ = reconciler
        .ctx
        .synced
        .subscribe()
        .wait_for(|synced| *synced)
        .await;
    let started = std::time::Instant::now();
    let key = ObjectRef::from_obj(server.as_ref());
    let result = AssertUnwindSafe(reconcile(server.clone(), reconciler.clone()))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic_message(panic.as_ref());
            tracing::error!(server = %key, panic = %message, "a reconcile panicked; the other servers carry on");
            Err(Error::Panicked(message))
        });
    let category = result.as_ref().err().map(Error::category);
    reconciler
        .ctx
        .metrics
        .reconciled(started.elapsed(), category.as_deref());
    match &result {
        Ok(_) => reconciler.backoffs.succeeded(&key),
        Err(error) => failure::report(&reconciler, &server, error).await,
    }
    result
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
