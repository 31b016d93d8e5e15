//! APIService registration: a pure decision table, then the one write it calls for. Never
//! touches an APIService that is not ours.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::apiservice::APIService;
use crate::crd::RegistrationPolicy;
use crate::error::{Error, Result};
use crate::names::{ApiServiceName, FIELD_MANAGER, ServerNames};
use crate::observe::owning_server;
use crate::outcome::Registration;
use crate::ssa;
use crate::validated::Validated;

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
        Gate::Frozen => Registration::Refused(name.clone()),
    };
    let Some(existing) = existing else {
        return match gate {
            Gate::Allowed => Decision::Create,
            other => Decision::Report(waiting(other)),
        };
    };
    match holder(existing, names) {
        Holder::Us => match gate {
            Gate::ScaledToZero | Gate::HeldBack => Decision::Delete(waiting(gate)),
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

/// Decides and carries out every requested APIService, in spec order; returns each outcome
/// and the APIServices as they stand afterwards.
pub async fn register_all(
    api: &Api<APIService>,
    validated: &Validated,
    desired: &[APIService],
    observed: &[(ApiServiceName, Option<Arc<APIService>>)],
    gate: Gate,
    adoptable: &[ApiServiceName],
    backend_answers: bool,
) -> Result<(Vec<Registration>, Vec<(ApiServiceName, Option<APIService>)>)> {
    let now = Timestamp::now();
    let mut registrations = Vec::new();
    let mut after = Vec::new();
    for (desired, (name, live)) in desired.iter().zip(observed) {
        let live = live.as_deref();
        let expired =
            live.is_some_and(|a| unavailable_too_long(a, Some(validated.unregister_after), now));
        let names = &validated.names;
        let adopt = adoptable.contains(name);
        let decide =
            |existing: Option<&APIService>| decide(name, existing, names, gate, adopt, expired);
        let unanswered = adopt && !backend_answers && gate == Gate::Allowed;
        if unanswered && live.is_some_and(|a| serving_unmanaged(a, names)) {
            registrations.push(Registration::WaitingForBackend(name.clone()));
            after.push((name.clone(), live.cloned()));
            continue;
        }
        let decision = decide(live);
        let (outcome, live) =
            execute(api, name, desired, live, decision, |l| decide(Some(l))).await?;
        registrations.push(outcome);
        after.push((name.clone(), live));
    }
    Ok((registrations, after))
}

/// An APIService nobody manages that the aggregator reports Available: taking it over must not
/// make it unavailable.
pub fn serving_unmanaged(api_service: &APIService, names: &ServerNames) -> bool {
    holder(api_service, names) == Holder::Unmanaged
        && api_service.available().is_some_and(|c| c.status == "True")
}

/// Carries out a decision; returns the outcome and the APIService as it stands afterwards.
pub async fn execute(
    api: &Api<APIService>,
    name: &ApiServiceName,
    desired: &APIService,
    existing: Option<&APIService>,
    decision: Decision,
    recheck: impl FnOnce(&APIService) -> Decision,
) -> Result<(Registration, Option<APIService>)> {
    match decision {
        Decision::Create => match create(api, desired).await? {
            Some(created) => Ok((Registration::Registered(name.clone()), Some(created))),
            // Someone created it since the cache saw it: decide again on the live object
            // (a live read, because the cache has not caught up yet).
            None => match crate::ownership::live(api, name.as_str()).await? {
                Some(live) => match recheck(&live) {
                    Decision::Apply => apply(api, name, desired, &live).await,
                    Decision::Delete(outcome) | Decision::Report(outcome) => Ok((outcome, None)),
                    Decision::Create => Ok((
                        Registration::Conflict {
                            name: name.clone(),
                            reason: "created by someone else at the same moment; it is re-checked on the next pass".into(),
                        },
                        None,
                    )),
                },
                None => Ok((
                    Registration::Conflict {
                        name: name.clone(),
                        reason: "created and deleted by someone else at the same moment; it is re-checked on the next pass".into(),
                    },
                    None,
                )),
            },
        },
        Decision::Apply => match existing {
            Some(live) => apply(api, name, desired, live).await,
            None => Ok((Registration::Registered(name.clone()), None)),
        },
        Decision::Delete(outcome) => {
            if let Some(live) = existing {
                delete(api, live).await?;
            }
            Ok((outcome, None))
        }
        Decision::Report(outcome) => Ok((outcome, None)),
    }
}

async fn apply(
    api: &Api<APIService>,
    name: &ApiServiceName,
    desired: &APIService,
    live: &APIService,
) -> Result<(Registration, Option<APIService>)> {
    let live = switch_trust(api, desired, live).await?;
    let live = ssa::apply(api, desired, Some(&live)).await?;
    Ok((Registration::Registered(name.clone()), Some(live)))
}

/// An APIService trusts either a `caBundle` or `insecureSkipTLSVerify`; the API server refuses
/// both at once. The fields our create set belong to an update, which a later server-side apply
/// never removes, so a switch from one to the other is one merge patch that sets both.
async fn switch_trust(
    api: &Api<APIService>,
    desired: &APIService,
    live: &APIService,
) -> Result<APIService> {
    let wants_insecure = desired.spec.insecure_skip_tls_verify == Some(true);
    let has_bundle = live
        .spec
        .ca_bundle
        .as_ref()
        .is_some_and(|b| !b.0.is_empty());
    let has_insecure = live.spec.insecure_skip_tls_verify == Some(true);
    let clash = (wants_insecure && has_bundle) || (!wants_insecure && has_insecure);
    if !clash {
        return Ok(live.clone());
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": live.metadata.resource_version},
        "spec": {
            "caBundle": desired.spec.ca_bundle,
            "insecureSkipTLSVerify": wants_insecure.then_some(true),
        },
    });
    let name = live.metadata.name.clone().unwrap_or_default();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Apply {
            kind: "APIService".into(),
            name,
            source,
        })
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

/// Create-only: `None` if someone else created it first. The create carries only the
/// operator's own labels; the server-side apply right after it adds the child labels, so that
/// the apply owns them.
async fn create(api: &Api<APIService>, desired: &APIService) -> Result<Option<APIService>> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let mut first = desired.clone();
    first.metadata.labels = Some(crate::child_labels::operator_labels_only(
        kube::ResourceExt::labels(desired),
    ));
    match api.create(&params, &first).await {
        Ok(created) => ssa::apply(api, desired, Some(&created)).await.map(Some),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(source) => Err(Error::Apply {
            kind: "APIService".into(),
            name: desired.metadata.name.clone().unwrap_or_default(),
            source,
        }),
    }
}

/// Deletes one of our APIServices, exactly the one that was seen (uid precondition).
pub async fn delete(api: &Api<APIService>, live: &APIService) -> Result<()> {
    let name = live.metadata.name.clone().unwrap_or_default();
    ssa::delete(api, &name, Some(ssa::preconditions_of(live))).await
}

#[cfg(test)]
mod tests;
