//! The writes registration decides on: create-only, server-side apply, delete, one per
//! requested APIService, in spec order.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::{Decision, Gate, decide, serving_unmanaged, unavailable_too_long};
use crate::apiservice::APIService;
use crate::error::{Error, Result};
use crate::names::{ApiServiceName, FIELD_MANAGER};
use crate::outcome::Registration;
use crate::ssa;
use crate::validated::Validated;

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

/// Carries out a decision; returns the outcome and the APIService as it stands afterwards.
async fn execute(
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
    let live = ssa::remove_stale_labels(api, desired, live).await?;
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
    ssa::merge_patch(api, &name, &patch).await
}

/// Create-only: `None` if someone else created it first. The create carries the whole
/// desired object (labels and applied hash included), so the server-side apply of the next
/// pass finds nothing to change; labels it set that are later dropped go through
/// [`ssa::remove_stale_labels`].
async fn create(api: &Api<APIService>, desired: &APIService) -> Result<Option<APIService>> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let name = desired.metadata.name.clone().unwrap_or_default();
    let whole = ssa::with_hash(desired).map_err(|e| Error::Serialize("APIService".into(), e))?;
    match api.create(&params, &whole).await {
        Ok(created) => Ok(Some(created)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(source) => Err(Error::Apply {
            kind: "APIService".into(),
            name,
            source,
        }),
    }
}

/// Deletes one of our APIServices, exactly the one that was seen (uid precondition).
pub async fn delete(api: &Api<APIService>, live: &APIService) -> Result<()> {
    let name = live.metadata.name.clone().unwrap_or_default();
    ssa::delete(api, &name, Some(ssa::preconditions_of(live))).await
}
