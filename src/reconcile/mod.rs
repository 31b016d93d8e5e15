//! The reconcile pipeline for one ExtensionServer (design §3), one function per step:
//!
//! 1. [`validate`]: parse the spec and check the operator's rules; nothing is read or written.
//! 2. [`observe`](crate::observe::observe): the children from the reflector caches.
//! 3. [`tls`]: plan the CA and serving certificate; write a new CA (create-only).
//! 4. [`desired`](crate::desired::desired): the desired children, a pure function.
//! 5. [`apply`]: server-side apply in the documented order, skipping what already matches,
//!    then one verified TLS handshake with the Service ([`probe`]).
//! 6. [`status`](crate::status::compute): a pure function of what was applied; written only
//!    when it changed, with one Event per transition ([`events`]).
//! 7. [`requeue`]: a pure function of what is due next.
//!
//! Deletion goes through the finalizer to [`cleanup`].

mod apply;
pub mod backoff;
mod cleanup;
mod events;
mod external;
pub mod failure;
mod probe;
mod refuse;
pub mod registration;
pub mod requeue;
mod tls;
pub mod validate;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::crd::{ExtensionServer, ExtensionServerStatus};
use crate::desired;
use crate::error::{Error, Result};
use crate::names::{FIELD_MANAGER, FINALIZER, ServerNames};
use crate::observe::{self, Facts, Servers, Stores};
use crate::status::{self, ConditionType, Observation, Reason, Registration};
use crate::trust::{self, Claim};
use apply::Applied;
use validate::Validated;

pub use crate::names::requested_api_services;

/// What every reconcile shares: the context and the caches.
pub struct Reconciler {
    pub ctx: Arc<Context>,
    pub stores: Stores,
    pub servers: Servers,
    pub facts: Facts,
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
            FinalizerEvent::Apply(server) => run(&server, &reconciler).await,
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
async fn run(server: &ExtensionServer, reconciler: &Reconciler) -> Result<Action> {
    let ctx = reconciler.ctx.as_ref();
    // What the trust rules read: the grants in force and the caches.
    let grants = ctx.grants();
    let namespace = server.namespace().unwrap_or_default();
    let namespace_labels = reconciler.facts.namespace_labels(&namespace);
    let api_services = reconciler.stores.api_services.state();
    let crd_names = reconciler.facts.crd_names();
    let facts = trust::Facts {
        grants: grants.as_deref(),
        namespace_labels: &namespace_labels,
        api_services: &api_services,
        crd_names: &crd_names,
    };
    let validated = validate::validate(server, &ctx.settings, facts)?;
    let observed = observe::observe(&reconciler.stores, &validated.names, &validated.requested);
    let (refusal, adopt) = match &validated.claim {
        Claim::Allowed { adopt } => (None, *adopt),
        Claim::Refused(refusal) => (Some(refusal), false),
    };
    if let Some(refusal) = refusal.filter(|r| !r.keep_registered) {
        return refused(server, reconciler, &validated, observed, refusal).await;
    }
    let tls = match &server.spec.external {
        Some(_) => external::tls(ctx, server, &validated.names).await?,
        None => tls::run(ctx, server, &validated, &observed).await?,
    };
    // An external server has no replicas: a verified handshake stands in for a ready one.
    let external = match (&server.spec.external, &tls.input) {
        (Some(backend), Some(input)) => {
            let bundle = input.ca_bundle.as_deref();
            Some(external::probe(ctx, backend, &validated.names, bundle).await)
        }
        _ => None,
    };
    let ready_replicas = match &external {
        Some(probe) => i32::from(probe.outcome.is_ok()),
        None => observed
            .deployment
            .as_ref()
            .and_then(|d| d.status.as_ref()?.ready_replicas)
            .unwrap_or(0),
    };
    let gate = match refusal {
        Some(_) => registration::Gate::Frozen,
        None => registration::gate(
            server,
            held_back(server, ctx, &validated.names),
            tls.input.is_some(),
            ready_replicas,
        ),
    };
    let applied = match &tls.input {
        Some(input) => {
            let input = desired::TlsInput {
                front_proxy_hash: server
                    .spec
                    .rollout_on_front_proxy_change
                    .then(|| reconciler.facts.front_proxy_hash())
                    .flatten(),
                ..input.clone()
            };
            let desired = desired::desired(server, &input);
            apply::apply(ctx, &validated, desired, observed, gate, adopt).await?
        }
        None => match &tls.in_the_way {
            Some(why) => Applied::in_the_way(observed, why),
            None => Applied::waiting_for_certificate(observed),
        },
    };
    let handshake = match &external {
        Some(probe) => probe.handshake(),
        None => probe::verify(ctx, server, &validated.names, &applied).await,
    };
    remember_held_back(ctx, &validated.names, server, &applied.registrations);

    let observation = Observation {
        names: &validated.names,
        generation: server.metadata.generation,
        spec_replicas: server.spec.replicas,
        port: server.spec.port,
        deployment: applied.deployment.as_ref(),
        certificate: &tls.outcome,
        registrations: &applied.registrations,
        api_services: &applied.api_services,
        handshake: &handshake,
        refusal,
        external: external.as_ref(),
        external_backend: server.spec.external.is_some(),
    };
    report(
        reconciler,
        server,
        &validated.names,
        &observation,
        &tls.events,
        &applied.restored,
    )
    .await?;

    let due = due(&validated, &tls, &applied, external.is_some());
    let settings = &ctx.settings;
    Ok(Action::requeue(requeue::after(
        &due,
        settings.resync,
        settings.probe_interval,
        Timestamp::now(),
    )))
}

/// Status, metrics and Events from one observation; waits until the cache shows the status.
async fn report(
    reconciler: &Reconciler,
    server: &ExtensionServer,
    names: &ServerNames,
    observation: &Observation<'_>,
    tls_events: &[crate::tls::TlsEvent],
    restored: &[apply::Restored],
) -> Result<()> {
    let ctx = reconciler.ctx.as_ref();
    let new_status = status::compute(observation, server.status.as_ref(), Time(Timestamp::now()));
    record_metrics(ctx, names, &new_status);
    let events = events::transitions(
        server.status.as_ref(),
        &new_status,
        tls_events,
        restored,
        names,
    );
    events::publish(ctx, server, events).await;
    write_status_seen(reconciler, server, names, new_status).await
}

/// Writes status (when it changed) and waits until the cache shows it: the next pass must
/// start from this status, or it would repeat this pass's Events.
async fn write_status_seen(
    reconciler: &Reconciler,
    server: &ExtensionServer,
    names: &ServerNames,
    status: ExtensionServerStatus,
) -> Result<()> {
    if let Some(version) = write_status(&reconciler.ctx, server, names, status).await? {
        let key = kube::runtime::reflector::ObjectRef::from_obj(server);
        reconciler
            .servers
            .caught_up(&key, &version, STATUS_VISIBLE)
            .await;
    }
    Ok(())
}

/// A refused claim: remove what it had, report why, look again at the resync (or when the
/// grants, a CRD or the namespace change).
async fn refused(
    server: &ExtensionServer,
    reconciler: &Reconciler,
    validated: &Validated,
    observed: observe::Observed,
    refusal: &trust::Refusal,
) -> Result<Action> {
    let ctx = reconciler.ctx.as_ref();
    refuse::unregister(ctx, &validated.names, &observed).await?;
    let observation = Observation {
        names: &validated.names,
        generation: server.metadata.generation,
        spec_replicas: server.spec.replicas,
        port: server.spec.port,
        deployment: observed.deployment.as_deref(),
        certificate: &status::CertificateOutcome::NotIssued,
        registrations: &[],
        api_services: &[],
        handshake: &crate::tls::probe::Handshake::Inconclusive,
        refusal: Some(refusal),
        external: None,
        external_backend: server.spec.external.is_some(),
    };
    report(reconciler, server, &validated.names, &observation, &[], &[]).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

fn due(
    validated: &Validated,
    tls: &tls::TlsStep,
    applied: &Applied,
    external: bool,
) -> requeue::Due {
    requeue::Due {
        tls: tls.next_due,
        rotating: tls.rotating,
        // No watch event says that an external server came up or went down: probe it always.
        probing: external
            || applied
                .registrations
                .iter()
                .any(|r| matches!(r, Registration::Registered(_))),
        blocked: applied
            .registrations
            .iter()
            .any(|r| matches!(r, Registration::Conflict { .. })),
        unregister: applied
            .api_services
            .iter()
            .filter_map(|(_, live)| {
                registration::unavailable_until(live.as_ref()?, validated.unregister_after)
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

/// After `unregisterAfter` removed the APIServices, they stay out until the spec changes.
/// Status records that, but the watch cache can lag behind the status write, so the operator
/// remembers it too.
fn held_back(server: &ExtensionServer, ctx: &Context, names: &ServerNames) -> bool {
    let remembered = ctx
        .held_back
        .lock()
        .ok()
        .and_then(|held| held.get(&names.owner_key()).copied());
    if remembered.is_some_and(|generation| generation == server.metadata.generation) {
        return true;
    }
    server
        .status
        .as_ref()
        .and_then(|s| status::conditions::find(&s.conditions, ConditionType::Registered))
        .is_some_and(|c| {
            Reason::parse(&c.reason) == Reason::Unregistered
                && c.observed_generation == server.metadata.generation
        })
}

fn remember_held_back(
    ctx: &Context,
    names: &ServerNames,
    server: &ExtensionServer,
    registrations: &[Registration],
) {
    let unregistered = registrations
        .iter()
        .any(|r| matches!(r, Registration::UnregisteredUnavailable(_)));
    if unregistered && let Ok(mut held) = ctx.held_back.lock() {
        held.insert(names.owner_key(), server.metadata.generation);
    }
}

/// Writes status with server-side apply, only when it changed; returns the new
/// resourceVersion if it wrote.
async fn write_status(
    ctx: &Context,
    server: &ExtensionServer,
    names: &ServerNames,
    status: ExtensionServerStatus,
) -> Result<Option<String>> {
    if server.status.as_ref() == Some(&status) {
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
