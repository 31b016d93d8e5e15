//! Held back: after an APIService stayed unavailable past `--max-unavailable` (or a shorter
//! `registration.unregisterAfter`) and was removed, it stays out, whatever the spec says,
//! until a probe of the backend answers as the aggregator would be answered. The prober backs
//! off a backend that keeps failing.

use crate::context::Context;
use crate::crd::TlsMode;
use crate::observe::Observed;
use crate::outcome::{Registration, Workload};
use crate::reconcile::certificate::TlsStep;
use crate::status::{self, ConditionType, Reason};
use crate::validated::Validated;

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
    let remembered = ctx.held_back.lock().is_ok_and(|held| held.contains(&key));
    let recorded = validated
        .previous_status()
        .and_then(|s| status::conditions::find(&s.conditions, ConditionType::Registered))
        .is_some_and(|c| Reason::parse(&c.reason) == Reason::Unregistered);
    if !(remembered || recorded) {
        return false;
    }
    if !backend_answers(ctx, validated, observed, tls, workload) {
        return true;
    }
    if let Ok(mut held) = ctx.held_back.lock() {
        held.remove(&key);
    }
    false
}

/// Remembers a removal of this pass.
pub fn remember(ctx: &Context, validated: &Validated, registrations: &[Registration]) {
    let unregistered = registrations
        .iter()
        .any(|r| matches!(r, Registration::UnregisteredUnavailable(_)));
    if unregistered && let Ok(mut held) = ctx.held_back.lock() {
        held.insert(validated.names.owner_key());
    }
}

/// The latest probe of the backend answered: an external server's own probe, or a handshake
/// with the Service verified against the bundle the APIServices will trust (a connection in
/// mode Insecure).
fn backend_answers(
    ctx: &Context,
    validated: &Validated,
    observed: &Observed,
    tls: &TlsStep,
    workload: &Workload,
) -> bool {
    if let Workload::External { probe } = workload {
        return probe.as_ref().is_some_and(|p| p.outcome.is_ok());
    }
    let (Some(service), Some(input)) = (observed.service.as_deref(), tls.input.as_ref()) else {
        return false;
    };
    let bundle = match validated.tls_mode {
        TlsMode::Insecure => None,
        _ => input.ca_bundle.clone().map(String::into_bytes),
    };
    super::probe::service_answers(ctx, validated, service, bundle)
}
