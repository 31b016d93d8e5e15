//! Prepare: everything apply needs, decided per backend in one place. Pods get the managed
//! (or the user's) certificate and are ready when a replica is; an external server gets the
//! user's CA and is ready when it answers a verified handshake.

use crate::crd::RegistrationPolicy;
use crate::desired::{self, Desired, TlsInput};
use crate::error::Result;
use crate::observe::Observed;
use crate::outcome::Workload;
use crate::probe::ProbeFailure;
use crate::reconcile::certificate::TlsStep;
use crate::reconcile::registration::{self, Gate};
use crate::reconcile::{Reconciler, certificate, external, hold, probe};
use crate::validated::{Backend, ClaimDecision, Validated};

/// The inputs of apply.
pub struct Prepared {
    pub observed: Observed,
    pub tls: TlsStep,
    /// The workload as observed (or dialled), before apply.
    pub workload: Workload,
    pub gate: Gate,
    /// The children to apply; `None` while the certificate is not usable.
    pub desired: Option<Desired>,
}

pub async fn prepare(
    reconciler: &Reconciler,
    validated: &Validated,
    observed: Observed,
) -> Result<Prepared> {
    let ctx = reconciler.ctx.as_ref();
    let (tls, workload) = match &validated.backend {
        Backend::Pods(_) => {
            let tls = certificate::run(ctx, validated, &observed).await?;
            let deployment = observed.deployment.as_deref().cloned();
            (tls, Workload::Pods { deployment })
        }
        Backend::External { backend, listed } => {
            let tls = external::tls(ctx, validated).await?;
            let probe = tls.input.as_ref().map(|input| {
                let bundle = input.ca_bundle.as_deref();
                probe::external(ctx, validated, backend, *listed, bundle, &observed)
            });
            (tls, Workload::External { probe })
        }
    };
    let gate = match validated.decision {
        ClaimDecision::Frozen(_) => Gate::Frozen,
        _ if screened_out(&workload) => Gate::Screened,
        _ => registration::gate(
            validated.replicas,
            &policy(validated),
            hold::held_back(ctx, validated, &observed, &tls, &workload),
            tls.input.is_some(),
            ready_replicas(&workload),
        ),
    };
    let front_proxy_hash = validated
        .rollout_on_front_proxy_change
        .then(|| reconciler.facts.front_proxy_hash())
        .flatten();
    let desired = tls.input.as_ref().map(|input| {
        let input = TlsInput {
            front_proxy_hash,
            ..input.clone()
        };
        desired::desired(validated, &input).with_child_labels(&ctx.settings.child_labels)
    });
    Ok(Prepared {
        observed,
        tls,
        workload,
        gate,
        desired,
    })
}

/// Ready replicas; an external server has none, so a verified handshake stands in for one.
/// The latest probe found the external host resolving to a restricted address.
fn screened_out(workload: &Workload) -> bool {
    let Workload::External { probe: Some(probe) } = workload else {
        return false;
    };
    matches!(probe.outcome, Err(ProbeFailure::Restricted(_)))
}

/// The registration policy in force: `Always` waits for the backend like `WhenReady` for an
/// external host no grant lists exactly, since only the probe screens the addresses the name
/// resolves to, and the aggregator resolves it on its own.
fn policy(validated: &Validated) -> RegistrationPolicy {
    match &validated.backend {
        Backend::External { listed: false, .. } => RegistrationPolicy::WhenReady,
        _ => validated.policy,
    }
}

fn ready_replicas(workload: &Workload) -> i32 {
    match workload {
        Workload::Pods { deployment } => deployment
            .as_ref()
            .and_then(|d| d.status.as_ref()?.ready_replicas)
            .unwrap_or(0),
        Workload::External { probe } => {
            i32::from(probe.as_ref().is_some_and(|p| p.outcome.is_ok()))
        }
    }
}
