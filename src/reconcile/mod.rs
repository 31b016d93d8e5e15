//! The reconcile pipeline for one ExtensionServer (design §3), one function per step:
//!
//! 1. [`validate`]: parse the spec and check the operator's rules; the result replaces the
//!    ExtensionServer for every later step. Nothing is read or written.
//! 2. [`observe`](crate::observe::observe): the children from the reflector caches.
//! 3. [`prepare`]: per backend, the TLS step (plan the CA and serving certificate, write a new
//!    CA create-only) and what stands in for readiness; then the desired children (a pure
//!    function, [`desired`](crate::desired::desired)) and the registration gate.
//! 4. [`apply`]: server-side apply in the documented order, skipping what already matches,
//!    then one verified TLS handshake ([`probe`]). Returns [`Applied`].
//!    A refused claim takes [`refuse`] instead: nothing is applied, and what it had goes.
//! 5. [`status`](crate::status::compute): a pure function of [`Applied`] and the previous
//!    status; written only when it changed, with one Event per transition ([`events`]).
//! 6. [`requeue`]: a pure function of what is due next.
//!
//! Deletion goes through the finalizer to [`cleanup`].

mod apply;
pub mod backoff;
mod certificate;
mod children;
mod cleanup;
mod events;
mod external;
pub mod failure;
mod hold;
mod prepare;
mod probe;
mod refuse;
pub mod registration;
pub mod requeue;
#[cfg(test)]
mod scenarios;
mod snapshot;
pub mod undecodable;
pub mod validate;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::crd::{ExtensionServer, ExtensionServerStatus};
use crate::error::{Error, Result};
use crate::names::{FIELD_MANAGER, FINALIZER, ServerNames};
use crate::observe::{self, ClusterFacts, Servers, Stores};
use crate::outcome::{Applied, Registration};
use crate::status;
use crate::validated::{ClaimDecision, Validated};

/// What every reconcile shares: the context and the caches.
pub struct Reconciler {
    pub ctx: Arc<Context>,
    pub stores: Stores,
    pub servers: Servers,
    pub facts: ClusterFacts,
    /// Failures in a row per server, for the retry delay.
    pub backoffs: backoff::Backoffs<kube::runtime::reflector::ObjectRef<ExtensionServer>>,
}

/// How long a pass waits for the cache to show its own status write.
const STATUS_VISIBLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Entry point for the controller: the finalizer decides between apply and cleanup.
pub async fn reconcile(
    server: Arc<ExtensionServer>,
    reconciler: Arc<Reconciler>,
) -> Result<Action> {
    let namespace = server.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ExtensionServer> = Api::namespaced(reconciler.ctx.client.clone(), &namespace);
    let outcome = finalizer(&api, FINALIZER, server, |event| async {
        match event {
            FinalizerEvent::Apply(server) => run(server, &reconciler).await,
            FinalizerEvent::Cleanup(server) => cleanup::run(&server, &reconciler.ctx).await,
        }
    })
    .await;
    match outcome {
        Err(error) if stale_finalizers(&error) => {
            // The finalizer patch tests the finalizers the cache showed; the cache was behind
            // (or the object is already gone). Not a failure: look again with fresh data.
            Ok(Action::requeue(STALE_RETRY))
        }
        other => other.map_err(Error::from_finalizer),
    }
}

/// How soon to look again after a finalizer patch met a newer object than the cache's.
const STALE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// True when adding or removing the finalizer failed only because the cached object was
/// stale: its JSON-patch test failed (422, 409) or the object is gone (404).
fn stale_finalizers(error: &kube::runtime::finalizer::Error<Error>) -> bool {
    use kube::runtime::finalizer::Error as F;
    match error {
        F::AddFinalizer(kube::Error::Api(status))
        | F::RemoveFinalizer(kube::Error::Api(status)) => {
            matches!(status.code, 404 | 409 | 422)
        }
        _ => false,
    }
}

/// One pass of the pipeline.
async fn run(server: Arc<ExtensionServer>, reconciler: &Reconciler) -> Result<Action> {
    let ctx = reconciler.ctx.as_ref();
    if server.spec.external.is_some() {
        crate::kubernetes_service::learn_addresses(ctx).await?;
    }
    let snapshot = snapshot::TrustSnapshot::take(reconciler, &server);
    let validated = validate::validate(&server, &ctx.settings, snapshot.facts())?;
    let observed = observe::observe(&reconciler.stores, &validated.names, &validated.requested());
    let applied = match &validated.decision {
        ClaimDecision::Refused(refusal) => refuse::run(ctx, &validated, observed, refusal).await?,
        ClaimDecision::Allowed { .. } | ClaimDecision::Frozen(_) => {
            let prepared = prepare::prepare(reconciler, &validated, observed).await?;
            apply::apply(ctx, &validated, prepared).await?
        }
    };
    hold::remember(ctx, &validated, &applied.registrations);
    report(reconciler, &validated, &applied).await?;
    let settings = &ctx.settings;
    Ok(Action::requeue(requeue::after(
        &due(&validated, &applied),
        settings.resync,
        settings.probe_interval,
        Timestamp::now(),
    )))
}

/// Status, metrics and Events from what was applied; waits until the cache shows the status.
async fn report(reconciler: &Reconciler, validated: &Validated, applied: &Applied) -> Result<()> {
    let ctx = reconciler.ctx.as_ref();
    let previous = validated.previous_status();
    let new_status = status::compute(applied, previous, Time(Timestamp::now()));
    record_metrics(ctx, &validated.names, &new_status);
    let events = events::transitions(
        previous,
        &new_status,
        &applied.tls_events,
        &applied.restored,
        &validated.names,
    );
    events::publish(ctx, &validated.reference, events).await;
    write_status_seen(reconciler, &validated.names, previous, new_status).await
}

/// Writes status (when it changed) and waits until the cache shows it: the next pass must
/// start from this status, or it would repeat this pass's Events.
async fn write_status_seen(
    reconciler: &Reconciler,
    names: &ServerNames,
    previous: Option<&ExtensionServerStatus>,
    status: ExtensionServerStatus,
) -> Result<()> {
    if let Some(version) = write_status(&reconciler.ctx, names, previous, status).await? {
        let key = ObjectRef::new(&names.name).within(&names.namespace);
        reconciler
            .servers
            .caught_up(&key, &version, STATUS_VISIBLE)
            .await;
    }
    Ok(())
}

fn due(validated: &Validated, applied: &Applied) -> requeue::Due {
    requeue::Due {
        tls: applied.tls_due,
        rotating: applied.rotating,
        // No watch event says that an external server came up or went down: probe it always.
        // Held back, a server is registered again once a probe of its backend answers.
        probing: applied.backend_probe().is_some()
            || applied.registrations.iter().any(|r| {
                matches!(
                    r,
                    Registration::Registered(_) | Registration::UnregisteredUnavailable(_)
                )
            }),
        adopting: applied
            .registrations
            .iter()
            .any(|r| matches!(r, Registration::WaitingForBackend(_))),
        blocked: applied
            .registrations
            .iter()
            .any(|r| matches!(r, Registration::Conflict { .. })),
        unregister: applied
            .api_services
            .iter()
            .filter_map(|(_, live)| {
                registration::unavailable_until(live.as_ref()?, Some(validated.unregister_after))
            })
            .collect(),
    }
}

fn record_metrics(ctx: &Context, names: &ServerNames, status: &ExtensionServerStatus) {
    if let Some(certificate) = &status.certificate {
        ctx.metrics.set_certificate_expiry(
            &names.namespace,
            &names.name,
            certificate.not_after.0.as_second(),
        );
    }
    for api_service in &status.api_services {
        ctx.metrics.set_apiservice_available(
            &api_service.name,
            &names.namespace,
            &names.name,
            api_service.available == "True",
        );
    }
    let current: Vec<&str> = status
        .api_services
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    ctx.metrics
        .keep_apiservices(&names.namespace, &names.name, &current);
}

/// Writes status with server-side apply, only when it changed; returns the new
/// resourceVersion if it wrote.
async fn write_status(
    ctx: &Context,
    names: &ServerNames,
    previous: Option<&ExtensionServerStatus>,
    status: ExtensionServerStatus,
) -> Result<Option<String>> {
    if previous == Some(&status) {
        return Ok(None);
    }
    let api: Api<ExtensionServer> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let patch = serde_json::json!({
        "apiVersion": ExtensionServer::api_version(&()),
        "kind": ExtensionServer::kind(&()),
        "status": status,
    });
    api.patch_status(
        &names.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::WriteStatus)
    .map(|written| written.metadata.resource_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::finalizer::Error as F;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("test", "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn only_finalizer_patches_against_a_stale_object_are_retried_quietly() {
        assert!(stale_finalizers(&F::AddFinalizer(api(422))));
        assert!(stale_finalizers(&F::RemoveFinalizer(api(404))));
        assert!(stale_finalizers(&F::RemoveFinalizer(api(409))));
        assert!(!stale_finalizers(&F::AddFinalizer(api(403))));
        assert!(!stale_finalizers(&F::ApplyFailed(Error::InvalidSpec(
            "x".into()
        ))));
    }
}
