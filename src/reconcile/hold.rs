//! Held back: after an APIService stayed unavailable past `--max-unavailable` (or a shorter
//! `registration.unregisterAfter`) and was removed, it stays out, whatever the spec says,
//! until `GET /apis/<group>/<version>` of every served version answers, the check the
//! aggregator makes. A server removed again soon after coming back is held at least twice as
//! long each time ([`crate::hold_record`]), so a server that passes the operator's check but not
//! the aggregator's is out of discovery a growing share of the time.

use std::time::Instant;

use crate::context::Context;
use crate::crd::TlsMode;
use crate::observe::Observed;
use crate::outcome::{Registration, Workload};
use crate::reconcile::certificate::TlsStep;
use crate::status::{self, ConditionType, Reason};
use crate::validated::{Backend, Validated};

/// True while the server's APIServices stay out. Status records the removal, but the watch
/// cache can lag behind the status write, so the operator remembers it too.
pub fn held_back(
    ctx: &Context,
    validated: &Validated,
    observed: &Observed,
    tls: &TlsStep,
    workload: &Workload,
) -> bool {
    let key = validated.names.owner_key();
    let now = Instant::now();
    let record = ctx
        .held_back
        .lock()
        .ok()
        .and_then(|holds| holds.get(&key).cloned())
        .unwrap_or_default();
    let recorded = validated
        .previous_status()
        .and_then(|s| status::conditions::find(&s.conditions, ConditionType::Registered))
        .is_some_and(|c| Reason::parse(&c.reason) == Reason::Unregistered);
    if !record.is_held() && !recorded {
        return false;
    }
    if record.holding(validated.unregister_after, now) {
        return true;
    }
    if !discovery_answers(ctx, validated, observed, tls, workload) {
        return true;
    }
    if let Ok(mut holds) = ctx.held_back.lock() {
        holds.entry(key).or_default().released(now);
    }
    false
}

/// Remembers a removal of this pass.
pub fn remember(ctx: &Context, validated: &Validated, registrations: &[Registration]) {
    let unregistered = registrations
        .iter()
        .any(|r| matches!(r, Registration::UnregisteredUnavailable(_)));
    if !unregistered {
        return;
    }
    if let Ok(mut holds) = ctx.held_back.lock() {
        let record = holds.entry(validated.names.owner_key()).or_default();
        if !record.is_held() {
            record.removed(Instant::now());
        }
    }
}

/// The latest `GET /apis/<group>/<version>` of every served version answered: at the external
/// host, or through the Service as the aggregator dials it, verified against the bundle the
/// APIServices will trust (unverified in mode Insecure).
fn discovery_answers(
    ctx: &Context,
    validated: &Validated,
    observed: &Observed,
    tls: &TlsStep,
    workload: &Workload,
) -> bool {
    let Some(input) = tls.input.as_ref() else {
        return false;
    };
    let bundle = match validated.tls_mode {
        TlsMode::Insecure => None,
        _ => input.ca_bundle.clone().map(String::into_bytes),
    };
    match (&validated.backend, workload) {
        (Backend::External { backend, listed }, Workload::External { .. }) => {
            super::probe::external_discovery(ctx, validated, backend, *listed, bundle)
        }
        _ => observed.service.as_deref().is_some_and(|service| {
            super::probe::service_discovery(ctx, validated, service, bundle)
        }),
    }
}
