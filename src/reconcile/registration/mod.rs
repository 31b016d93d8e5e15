//! APIService registration: a pure decision table ([`decide`]); [`writes`] carries out the one
//! write it calls for. Never touches an APIService that is not ours.

mod writes;

pub use writes::{delete, register_all};

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::apiservice::APIService;
use crate::crd::RegistrationPolicy;
use crate::names::{ApiServiceName, ServerNames};
use crate::observe::owning_server;
use crate::outcome::Registration;

/// Why registration is or is not allowed in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Allowed,
    WaitingForReadyReplicas,
    WaitingForCertificate,
    ScaledToZero,
    /// Unregistered after staying unavailable; stays out until the backend answers a probe.
    HeldBack,
    /// The group became protected after it was registered: keep what is ours, add nothing.
    Frozen,
    /// An external host no grant lists exactly resolves to a restricted address: nothing is
    /// registered, and what was is removed.
    Screened,
}

/// The gate, in order of precedence.
pub fn gate(
    replicas: i32,
    policy: &RegistrationPolicy,
    held_back: bool,
    certificate_ready: bool,
    ready_replicas: i32,
) -> Gate {
    if held_back {
        return Gate::HeldBack;
    }
    if replicas == 0 {
        return Gate::ScaledToZero;
    }
    if !certificate_ready {
        return Gate::WaitingForCertificate;
    }
    match policy {
        RegistrationPolicy::Always => Gate::Allowed,
        RegistrationPolicy::WhenReady if ready_replicas >= 1 => Gate::Allowed,
        RegistrationPolicy::WhenReady => Gate::WaitingForReadyReplicas,
    }
}

/// Who holds an existing APIService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Us,
    BuiltIn,
    OtherServer(String),
    Unmanaged,
}

pub fn holder(existing: &APIService, names: &ServerNames) -> Holder {
    if existing.is_local() {
        return Holder::BuiltIn;
    }
    match owning_server(existing) {
        Some(owner) if owner == names.owner_key() => Holder::Us,
        Some(owner) => Holder::OtherServer(owner.to_string()),
        None => Holder::Unmanaged,
    }
}

/// What to do with one requested APIService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it and the gate is open: create it (create-only).
    Create,
    /// Ours (or adoptable): apply the desired state.
    Apply,
    /// Ours, but it must go: delete it and report this.
    Delete(Registration),
    /// Leave it as it is and report this.
    Report(Registration),
}

/// The decision table. `expired` is true when the APIService has been unavailable longer
/// than `registration.unregisterAfter`.
pub fn decide(
    name: &ApiServiceName,
    existing: Option<&APIService>,
    names: &ServerNames,
    gate: Gate,
    adopt_existing: bool,
    expired: bool,
) -> Decision {
    let waiting = |gate: Gate| match gate {
        Gate::WaitingForReadyReplicas => Registration::WaitingForReadyReplicas(name.clone()),
        Gate::WaitingForCertificate => Registration::WaitingForCertificate(name.clone()),
        Gate::ScaledToZero => Registration::ScaledToZero(name.clone()),
        Gate::HeldBack | Gate::Allowed => Registration::UnregisteredUnavailable(name.clone()),
        Gate::Frozen | Gate::Screened => Registration::Refused(name.clone()),
    };
    let Some(existing) = existing else {
        return match gate {
            Gate::Allowed => Decision::Create,
            other => Decision::Report(waiting(other)),
        };
    };
    match holder(existing, names) {
        Holder::Us => match gate {
            Gate::ScaledToZero | Gate::HeldBack | Gate::Screened => Decision::Delete(waiting(gate)),
            Gate::Frozen => Decision::Apply,
            _ if expired => Decision::Delete(Registration::UnregisteredUnavailable(name.clone())),
            _ => Decision::Apply,
        },
        // Taken over only once the gate is open (a ready replica, a usable certificate), so
        // the APIService switches to a backend that answers: never unavailable in between.
        Holder::Unmanaged if adopt_existing => match gate {
            Gate::Allowed => Decision::Apply,
            other => Decision::Report(waiting(other)),
        },
        other => Decision::Report(Registration::Conflict {
            name: name.clone(),
            reason: conflict_reason(&other),
        }),
    }
}

/// An APIService nobody manages that the aggregator reports Available: taking it over must not
/// make it unavailable.
pub fn serving_unmanaged(api_service: &APIService, names: &ServerNames) -> bool {
    holder(api_service, names) == Holder::Unmanaged
        && api_service.available().is_some_and(|c| c.status == "True")
}

/// True if the aggregator has reported the APIService unavailable for longer than `limit`.
pub fn unavailable_too_long(
    api_service: &APIService,
    limit: Option<Duration>,
    now: Timestamp,
) -> bool {
    unavailable_until(api_service, limit).is_some_and(|deadline| now >= deadline)
}

/// When an unavailable APIService will have been unavailable for `limit`.
pub fn unavailable_until(api_service: &APIService, limit: Option<Duration>) -> Option<Timestamp> {
    let limit = i64::try_from(limit?.as_secs()).ok()?;
    let condition = api_service.available().filter(|c| c.status != "True")?;
    let since = condition.last_transition_time.as_ref()?.0;
    Timestamp::from_second(since.as_second().checked_add(limit)?).ok()
}

fn conflict_reason(holder: &Holder) -> String {
    match holder {
        Holder::BuiltIn => {
            "a built-in API served by kube-apiserver itself; choose another group or version".into()
        }
        Holder::OtherServer(owner) => format!(
            "already held by ExtensionServer {owner}; remove that version there first, or choose another group"
        ),
        Holder::Unmanaged => "an APIService not managed by this operator exists; delete it, or set registration.adoptExisting: true to take it over".into(),
        Holder::Us => String::new(),
    }
}

#[cfg(test)]
mod tests;
