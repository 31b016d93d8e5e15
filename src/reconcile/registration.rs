//! APIService registration with ownership checks: never touch an APIService that is not ours.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};

use crate::apiservice::APIService;
use crate::apply::apply;
use crate::error::{Error, Result};
use crate::names::{ApiServiceName, OWNER_ANNOTATION, ServerNames};
use crate::status::Registration;

/// Why registration is or is not allowed in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Allowed,
    WaitingForReadyReplicas,
    WaitingForCertificate,
    ScaledToZero,
    /// The group is outside the operator's `--allowed-groups`.
    GroupNotAllowed,
    /// Unregistered after `unregisterAfter`; stays out until the spec changes.
    HeldBack,
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
    match existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
    {
        Some(owner) if *owner == names.owner_key() => Holder::Us,
        Some(owner) => Holder::OtherServer(owner.clone()),
        None => Holder::Unmanaged,
    }
}

/// Registers (or keeps, or removes) one APIService. Returns the outcome and the live object.
pub async fn reconcile_one(
    api: &Api<APIService>,
    desired: &APIService,
    existing: Option<APIService>,
    names: &ServerNames,
    gate: Gate,
    adopt_existing: bool,
    unregister_after: Option<Duration>,
) -> Result<(Registration, Option<APIService>)> {
    let name = ApiServiceName::new(
        &crate::names::Version(desired.spec.version.clone().unwrap_or_default()),
        &crate::names::Group(desired.spec.group.clone().unwrap_or_default()),
    );
    let Some(existing) = existing else {
        return match gate {
            Gate::Allowed => create(api, desired, name).await,
            Gate::WaitingForReadyReplicas => {
                Ok((Registration::WaitingForReadyReplicas(name), None))
            }
            Gate::WaitingForCertificate => Ok((Registration::WaitingForCertificate(name), None)),
            Gate::ScaledToZero => Ok((Registration::ScaledToZero(name), None)),
            Gate::GroupNotAllowed => Ok((not_allowed(name), None)),
            Gate::HeldBack => Ok((Registration::UnregisteredUnavailable(name), None)),
        };
    };
    match holder(&existing, names) {
        Holder::Us if gate == Gate::ScaledToZero => {
            delete(api, &name).await?;
            Ok((Registration::ScaledToZero(name), None))
        }
        Holder::Us if gate == Gate::GroupNotAllowed => {
            delete(api, &name).await?;
            Ok((not_allowed(name), None))
        }
        Holder::Us
            if gate == Gate::HeldBack || unavailable_too_long(&existing, unregister_after) =>
        {
            delete(api, &name).await?;
            Ok((Registration::UnregisteredUnavailable(name), None))
        }
        Holder::Us => {
            let live = apply(api, desired, Some(existing)).await?;
            Ok((Registration::Registered(name), Some(live)))
        }
        Holder::Unmanaged if adopt_existing => {
            let live = apply(api, desired, Some(existing)).await?;
            Ok((Registration::Registered(name), Some(live)))
        }
        other => Ok((
            Registration::Conflict {
                reason: conflict_reason(&other),
                name,
            },
            None,
        )),
    }
}

/// True if the aggregator has reported the APIService unavailable for longer than `limit`.
pub fn unavailable_too_long(api_service: &APIService, limit: Option<Duration>) -> bool {
    unavailable_until(api_service, limit).is_some_and(|deadline| Timestamp::now() >= deadline)
}

/// When an unavailable APIService will have been unavailable for `limit`.
pub fn unavailable_until(api_service: &APIService, limit: Option<Duration>) -> Option<Timestamp> {
    let limit = limit?;
    let condition = api_service.available().filter(|c| c.status != "True")?;
    let since = condition.last_transition_time.as_ref()?.0;
    Timestamp::from_second(since.as_second() + limit.as_secs() as i64).ok()
}

fn not_allowed(name: ApiServiceName) -> Registration {
    Registration::Conflict {
        name,
        reason:
            "the group is not in the operator's --allowed-groups; ask a cluster admin to allow it"
                .into(),
    }
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

/// Create-only: if someone else created it first, they keep it.
async fn create(
    api: &Api<APIService>,
    desired: &APIService,
    name: ApiServiceName,
) -> Result<(Registration, Option<APIService>)> {
    let params = PostParams {
        field_manager: Some(crate::names::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let desired =
        crate::apply::with_hash(desired).map_err(|e| Error::Serialize("APIService".into(), e))?;
    match api.create(&params, &desired).await {
        Ok(created) => Ok((Registration::Registered(name), Some(created))),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok((
            Registration::Conflict {
                name,
                reason:
                    "created by someone else at the same moment; it is re-checked on the next pass"
                        .into(),
            },
            None,
        )),
        Err(source) => Err(Error::Apply {
            kind: "APIService".into(),
            name: name.to_string(),
            source,
        }),
    }
}

pub async fn delete(api: &Api<APIService>, name: &ApiServiceName) -> Result<()> {
    match api.delete(name.as_str(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: "APIService".into(),
            name: name.to_string(),
            source,
        }),
    }
}
