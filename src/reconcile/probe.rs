//! The pass's probe targets, each read through [`Prober::latest`](crate::probe::Prober::latest):
//! the server's Service as the aggregator's proxy dials it (ClusterIP, port 443, server name
//! `<name>.<namespace>.svc`), and an external server at `host:port`. The probes run outside the
//! pass, which reads their latest finding. The handshake step verifies a registered server's
//! certificate (the aggregator's availability check does not verify TLS).

use k8s_openapi::api::core::v1::Service;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::{ExternalBackend, TlsMode};
use crate::observe::Observed;
use crate::probe::{BackendProbe, Finding, Handshake, Kind, ProbeFailure, Screen, Target};
use crate::validated::Validated;

/// The latest finding for `target`, asked for this server; `None` while the first probe runs.
fn latest(ctx: &Context, validated: &Validated, target: Target, doubt: bool) -> Option<Finding> {
    ctx.prober
        .latest(&validated.key(), target, ctx.settings.probe_interval, doubt)
}

/// Probes only servers whose APIServices (as they stand after this pass) the aggregator
/// reports Available.
pub fn verify<'a>(
    ctx: &Context,
    validated: &Validated,
    service: Option<&Service>,
    api_services: impl IntoIterator<Item = &'a APIService>,
) -> Handshake {
    if validated.tls_mode == TlsMode::Insecure {
        return Handshake::Inconclusive;
    }
    let Some((address, bundle)) = target(service, api_services) else {
        return Handshake::Inconclusive;
    };
    let target = service_target(validated, address, Some(bundle), Kind::Verify);
    match latest(ctx, validated, target, false) {
        Some(Finding::Verify(handshake)) => handshake,
        _ => Handshake::Inconclusive,
    }
}

/// True when the latest probe of `service` answered: a TLS handshake verified against
/// `bundle`, or without one a connection.
pub fn service_answers(
    ctx: &Context,
    validated: &Validated,
    service: &Service,
    bundle: Option<Vec<u8>>,
) -> bool {
    let Some(target) = service_probe(validated, service, bundle, Kind::Reach) else {
        return false;
    };
    latest(ctx, validated, target, false).is_some_and(|found| found.ok())
}

/// True when the latest `GET /apis/<group>/<version>` through `service` (as the aggregator dials
/// it) answered for every served version.
pub fn service_discovery(
    ctx: &Context,
    validated: &Validated,
    service: &Service,
    bundle: Option<Vec<u8>>,
) -> bool {
    service_probe(validated, service, bundle, Kind::Discovery)
        .is_some_and(|target| discovery(ctx, validated, target))
}

/// True when the latest `GET /apis/<group>/<version>` at the external host answered for every
/// served version.
pub fn external_discovery(
    ctx: &Context,
    validated: &Validated,
    external: &ExternalBackend,
    listed: bool,
    bundle: Option<Vec<u8>>,
) -> bool {
    let target = external_target(ctx, validated, external, listed, bundle, Kind::Discovery);
    discovery(ctx, validated, target)
}

/// The external server at `host:port` as the aggregator dials it, screened unless a grant lists
/// the host exactly (`listed`).
fn external_target(
    ctx: &Context,
    validated: &Validated,
    external: &ExternalBackend,
    listed: bool,
    bundle: Option<Vec<u8>>,
    kind: Kind,
) -> Target {
    Target {
        host: external.host.clone(),
        port: u16::try_from(external.port).unwrap_or(443),
        server_name: validated.names.service_host(),
        bundle,
        kind,
        path: None,
        screen: (!listed).then(|| Screen {
            apiserver_addresses: ctx.apiserver_addresses.get().cloned().unwrap_or_default(),
        }),
    }
}

/// Asks for every served version's discovery path at `target` (all at once, so the probes run
/// side by side) and says whether each answered.
fn discovery(ctx: &Context, validated: &Validated, target: Target) -> bool {
    let answers: Vec<bool> = validated
        .served
        .iter()
        .map(|served| {
            let path = format!("/apis/{}/{}", served.name.group(), served.name.version());
            let target = Target {
                path: Some(path),
                ..target.clone()
            };
            latest(ctx, validated, target, false).is_some_and(|found| found.ok())
        })
        .collect();
    !answers.is_empty() && answers.iter().all(|ok| *ok)
}

fn service_target(
    validated: &Validated,
    address: String,
    bundle: Option<Vec<u8>>,
    kind: Kind,
) -> Target {
    Target {
        host: address,
        port: 443,
        server_name: validated.names.service_host(),
        bundle,
        kind,
        path: None,
        screen: None,
    }
}

/// `kind` of probe of the Service at its ClusterIP, if it has one.
fn service_probe(
    validated: &Validated,
    service: &Service,
    bundle: Option<Vec<u8>>,
    kind: Kind,
) -> Option<Target> {
    Some(service_target(
        validated,
        cluster_ip(service)?,
        bundle,
        kind,
    ))
}

/// The Service's ClusterIP, if it has one.
fn cluster_ip(service: &Service) -> Option<String> {
    service
        .spec
        .as_ref()?
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty() && ip != "None")
}

/// The Service's ClusterIP and the trusted bundle, when there is something to verify.
fn target<'a>(
    service: Option<&Service>,
    api_services: impl IntoIterator<Item = &'a APIService>,
) -> Option<(String, Vec<u8>)> {
    let bundle = api_services.into_iter().find_map(|live| {
        let available = live.available().is_some_and(|c| c.status == "True");
        available.then(|| live.spec.ca_bundle.as_ref().map(|b| b.0.clone()))?
    })?;
    Some((cluster_ip(service?)?, bundle))
}

/// The latest dial of the external server as the aggregator will make it: `host:port`,
/// verifying the certificate for `<name>.<namespace>.svc` against the bundle (TCP only in mode
/// Insecure). The probe runs outside the pass; until its first finding, `Pending`. Unless a
/// grant lists the host exactly (`listed`), a name resolving only to restricted addresses is not
/// dialled.
pub fn external(
    ctx: &Context,
    validated: &Validated,
    external: &ExternalBackend,
    listed: bool,
    bundle: Option<&str>,
    observed: &Observed,
) -> BackendProbe {
    let bundle = bundle.map(|b| b.as_bytes().to_vec());
    let probe_target = external_target(ctx, validated, external, listed, bundle, Kind::Reach);
    let server_name = probe_target.server_name.clone();
    let target = format!("{}:{}", external.host, external.port);
    // The aggregator reports an APIService of ours unavailable: look again now.
    let doubt = observed.api_services.iter().any(|(_, live)| {
        live.as_ref()
            .and_then(|a| a.available())
            .is_some_and(|c| c.status == "False")
    });
    let outcome = match latest(ctx, validated, probe_target, doubt) {
        Some(Finding::Reach(outcome)) => outcome,
        _ => Err(ProbeFailure::Pending(format!(
            "probing {target}; the first answer is not in yet"
        ))),
    };
    BackendProbe {
        target,
        server_name,
        outcome,
    }
}
