//! The handshake step: one verified TLS handshake with the Service of a registered server, as
//! the aggregator's proxy would make it (its availability check does not verify TLS).

use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::desired::is_insecure;
use crate::names::ServerNames;
use crate::reconcile::apply::Applied;
use crate::tls::probe::{self, Handshake};

/// Probes only servers whose APIServices the aggregator reports Available.
pub async fn verify(
    ctx: &Context,
    server: &ExtensionServer,
    names: &ServerNames,
    applied: &Applied,
) -> Handshake {
    let Some((address, bundle)) = target(server, applied) else {
        return Handshake::Inconclusive;
    };
    let server_name = format!("{}.{}.svc", names.name, names.namespace);
    probe::bounded(&ctx.probes, &address, 443, &server_name, &bundle).await
}

/// The Service's ClusterIP and the trusted bundle, when there is something to verify.
fn target(server: &ExtensionServer, applied: &Applied) -> Option<(String, Vec<u8>)> {
    if is_insecure(server) {
        return None;
    }
    let bundle = applied.api_services.iter().find_map(|(_, live)| {
        let live = live.as_ref()?;
        let available = live.available().is_some_and(|c| c.status == "True");
        available.then(|| live.spec.ca_bundle.as_ref().map(|b| b.0.clone()))?
    })?;
    let address = applied
        .service
        .as_ref()?
        .spec
        .as_ref()?
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty() && ip != "None")?;
    Some((address, bundle))
}
