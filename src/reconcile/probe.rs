//! Probes of a server's Service, as the aggregator's proxy dials it: ClusterIP, port 443,
//! server name `<name>.<namespace>.svc`. The probes run outside the pass, which reads their
//! latest finding. The handshake step verifies a registered server's certificate (the
//! aggregator's availability check does not verify TLS).

use k8s_openapi::api::core::v1::Service;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::TlsMode;
use crate::outcome::Handshake;
use crate::prober::{Kind, Target};
use crate::validated::Validated;

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
    ctx.prober
        .verify(&validated.key(), target, ctx.settings.probe_interval)
}

/// True when the latest probe of `service` answered: a TLS handshake verified against
/// `bundle`, or without one a connection.
pub fn service_answers(
    ctx: &Context,
    validated: &Validated,
    service: &Service,
    bundle: Option<Vec<u8>>,
) -> bool {
    let Some(address) = cluster_ip(service) else {
        return false;
    };
    let target = service_target(validated, address, bundle, Kind::Reach);
    ctx.prober
        .reach(&validated.key(), target, ctx.settings.probe_interval, false)
        .is_some_and(|found| found.is_ok())
}

fn service_target(
    validated: &Validated,
    address: String,
    bundle: Option<Vec<u8>>,
    kind: Kind,
) -> Target {
    let names = &validated.names;
    Target {
        host: address,
        port: 443,
        server_name: format!("{}.{}.svc", names.name, names.namespace),
        bundle,
        kind,
        screen: None,
    }
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
