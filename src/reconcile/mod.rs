//! The reconcile pipeline for one ExtensionServer:
//! observe -> TLS -> build (pure) -> apply (ordered) -> status (from what was applied).
//!
//! Apply order: ServiceAccount and delegated-auth RBAC, TLS Secret, Deployment, Service, PDB,
//! then the APIServices (only when the registration policy allows), then status.

mod apply_all;
mod cleanup;
mod events;
pub mod registration;
mod tls;
pub mod tls_probe;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};

use crate::apiservice::APIService;
use crate::apply::get_opt;
use crate::build;
use crate::context::Context;
use crate::crd::{ExtensionServer, ExtensionServerStatus, RegistrationPolicy};
use crate::error::{Error, Result};
use crate::names::{ApiServiceName, FIELD_MANAGER, FINALIZER, Group, ServerNames, Version};
use crate::status::{self, Observation};
use registration::Gate;

/// Entry point for the controller: the finalizer decides between apply and cleanup.
pub async fn reconcile(server: Arc<ExtensionServer>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = server.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ExtensionServer> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, server, |event| async {
        match event {
            FinalizerEvent::Apply(server) => apply(&server, &ctx).await,
            FinalizerEvent::Cleanup(server) => cleanup::run(&server, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The API service names this server asks for, in spec order.
pub fn requested_api_services(server: &ExtensionServer) -> Vec<ApiServiceName> {
    let group = Group(server.spec.group.clone());
    server
        .spec
        .versions
        .iter()
        .map(|v| ApiServiceName::new(&Version(v.name.clone()), &group))
        .collect()
}

async fn apply(server: &ExtensionServer, ctx: &Context) -> Result<Action> {
    let names = ServerNames::of(server);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let api_services: Api<APIService> = Api::all(ctx.client.clone());

    // Observe.
    let deployment = get_opt(&deployments, names.workload()).await?;
    let mut observed_api_services = Vec::new();
    for name in requested_api_services(server) {
        let live = get_opt(&api_services, name.as_str()).await?;
        observed_api_services.push((name, live));
    }

    // TLS.
    let tls = tls::run(
        ctx,
        server,
        &names,
        deployment.as_ref(),
        &observed_api_services,
    )
    .await?;

    // Build and apply.
    let ready_replicas = deployment
        .as_ref()
        .and_then(|d| d.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    let gate = if held_back(server, ctx, &names) {
        Gate::HeldBack
    } else {
        registration_gate(server, ready_replicas, tls.input.is_some(), ctx)
    };
    let applied = match &tls.input {
        Some(input) => {
            let desired = build::desired(server, input);
            apply_all::apply_all(ctx, server, &names, desired, observed_api_services, gate).await?
        }
        None => apply_all::Applied::blocked(server, deployment, observed_api_services),
    };

    if applied
        .registrations
        .iter()
        .any(|r| matches!(r, status::Registration::UnregisteredUnavailable(_)))
        && let Ok(mut held) = ctx.held_back.lock()
    {
        held.insert(names.owner_key(), server.metadata.generation);
    }

    // Status: the aggregator's view, plus a verified handshake it does not make itself.
    let handshakes = verify_handshakes(ctx, server, &names, &applied.api_services).await?;
    let observation = Observation {
        names: &names,
        generation: server.metadata.generation,
        spec_replicas: server.spec.replicas,
        port: server.spec.port,
        deployment: applied.deployment.as_ref(),
        certificate: tls.outcome.clone(),
        registrations: applied.registrations.clone(),
        api_services: applied.api_services.clone(),
        handshakes,
    };
    let now = Time(Timestamp::now());
    let new_status = status::compute(&observation, server.status.as_ref(), now);
    record_metrics(ctx, &names, &new_status);
    events::publish_transitions(
        ctx,
        server,
        server.status.as_ref(),
        &new_status,
        &tls.events,
    )
    .await;
    write_status(ctx, server, &names, new_status).await?;

    let mut wait = next_requeue(ctx, &tls);
    if observation
        .registrations
        .iter()
        .any(|r| matches!(r, status::Registration::Registered(_)))
    {
        // Nothing watches the certificate a server presents: check again at the aggregator's pace.
        wait = wait.min(ctx.settings.probe_interval);
    }
    let limit = apply_all::unregister_after(server)?;
    for (_, live) in &applied.api_services {
        if let Some(deadline) = live
            .as_ref()
            .and_then(|a| registration::unavailable_until(a, limit))
        {
            let seconds = (deadline.as_second() - Timestamp::now().as_second()).max(1);
            wait = wait.min(Duration::from_secs(seconds as u64));
        }
    }
    Ok(Action::requeue(wait))
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
}

/// Handshakes with the Service for every APIService the aggregator reports Available.
async fn verify_handshakes(
    ctx: &Context,
    server: &ExtensionServer,
    names: &ServerNames,
    api_services: &[(ApiServiceName, Option<APIService>)],
) -> Result<Vec<(ApiServiceName, tls_probe::Handshake)>> {
    let mut results = Vec::new();
    let checkable: Vec<_> = api_services
        .iter()
        .filter_map(|(name, live)| {
            let live = live.as_ref()?;
            let available = live.available().is_some_and(|c| c.status == "True");
            let bundle = live.spec.ca_bundle.as_ref()?;
            (available && !build::is_insecure(server)).then_some((name, bundle))
        })
        .collect();
    if checkable.is_empty() {
        return Ok(results);
    }
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(ctx.client.clone(), &names.namespace);
    let Some(cluster_ip) = get_opt(&services, names.workload())
        .await?
        .and_then(|s| s.spec?.cluster_ip)
        .filter(|ip| !ip.is_empty() && ip != "None")
    else {
        return Ok(results);
    };
    let server_name = format!("{}.{}.svc", names.name, names.namespace);
    for (name, bundle) in checkable {
        let outcome = tls_probe::handshake(&cluster_ip, 443, &server_name, &bundle.0).await;
        results.push((name.clone(), outcome));
    }
    Ok(results)
}

/// After `unregisterAfter` removed the APIServices, they stay out until the spec changes.
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
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Registered"))
        .is_some_and(|c| {
            c.reason == "Unregistered" && c.observed_generation == server.metadata.generation
        })
}

fn registration_gate(
    server: &ExtensionServer,
    ready_replicas: i32,
    certificate_ready: bool,
    ctx: &Context,
) -> Gate {
    if server.spec.replicas == 0 {
        return Gate::ScaledToZero;
    }
    if !ctx.settings.group_allowed(&server.spec.group) {
        return Gate::GroupNotAllowed;
    }
    if !certificate_ready {
        return Gate::WaitingForCertificate;
    }
    match server.spec.registration.policy {
        RegistrationPolicy::Always => Gate::Allowed,
        RegistrationPolicy::WhenReady if ready_replicas >= 1 => Gate::Allowed,
        RegistrationPolicy::WhenReady => Gate::WaitingForReadyReplicas,
    }
}

fn next_requeue(ctx: &Context, tls: &tls::TlsStep) -> Duration {
    let mut wait = ctx.settings.resync;
    if let Some(due) = tls.next_due {
        let seconds = due.as_second() - Timestamp::now().as_second();
        wait = wait.min(Duration::from_secs(seconds.max(1) as u64));
    }
    if tls.rotating {
        wait = wait.min(Duration::from_secs(5));
    }
    wait
}

/// Writes status with server-side apply, only when it changed.
async fn write_status(
    ctx: &Context,
    server: &ExtensionServer,
    names: &ServerNames,
    status: ExtensionServerStatus,
) -> Result<()> {
    if server.status.as_ref() == Some(&status) {
        return Ok(());
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
    .map_err(Error::WriteStatus)?;
    Ok(())
}
