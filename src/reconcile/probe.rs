//! The handshake step: one verified TLS handshake with the Service of a registered server, as
//! the aggregator's proxy would make it (its availability check does not verify TLS).

use crate::context::Context;
use crate::crd::TlsMode;
use crate::outcome::Handshake;
use crate::prober::{Kind, Target};
use crate::reconcile::children::Children;
use crate::reconcile::validate::Validated;

/// Probes only servers whose APIServices the aggregator reports Available; the probe runs
/// outside the pass, which reads its latest finding.
pub fn verify(ctx: &Context, validated: &Validated, children: &Children) -> Handshake {
    if validated.tls_mode == TlsMode::Insecure {
        return Handshake::Inconclusive;
    }
    let Some((address, bundle)) = target(children) else {
        return Handshake::Inconclusive;
    };
    let names = &validated.names;
    let target = Target {
        host: address,
        port: 443,
        server_name: format!("{}.{}.svc", names.name, names.namespace),
        bundle: Some(bundle),
        kind: Kind::Verify,
        screen: None,
    };
    let interval = ctx.settings.probe_interval;
    ctx.prober.verify(&validated.key(), target, interval)
}

/// The Service's ClusterIP and the trusted bundle, when there is something to verify.
fn target(children: &Children) -> Option<(String, Vec<u8>)> {
    let bundle = children.api_services.iter().find_map(|(_, live)| {
        let live = live.as_ref()?;
        let available = live.available().is_some_and(|c| c.status == "True");
        available.then(|| live.spec.ca_bundle.as_ref().map(|b| b.0.clone()))?
    })?;
    let address = children
        .service
        .as_ref()?
        .spec
        .as_ref()?
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty() && ip != "None")?;
    Some((address, bundle))
}
