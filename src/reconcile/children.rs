//! The children written in the documented order, each only when the cached object differs
//! and only if it is ours. The first object in the way stops the writes ([`Stop::Blocked`]).
//!
//! Order: ServiceAccount and delegated-auth RBAC, TLS Secret, Deployment, Service, PDB, then
//! the APIServices (as the registration gate allows), then any stale APIServices of ours.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Resource;
use kube::api::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::desired::Desired;
use crate::error::Error;
use crate::names::{ApiServiceName, KUBE_SYSTEM};
use crate::observe::Observed;
use crate::outcome::{Registration, Restored};
use crate::ownership::{self, Owner, Written};
use crate::reconcile::registration::{self, Gate};
use crate::ssa::{self, preconditions_of};
use crate::validated::Validated;

/// What the writes left behind.
#[derive(Debug, Clone, Default)]
pub struct Children {
    pub deployment: Option<Deployment>,
    pub service: Option<Service>,
    pub registrations: Vec<Registration>,
    /// The requested APIServices as they stand after this pass.
    pub api_services: Vec<(ApiServiceName, Option<APIService>)>,
    pub restored: Vec<Restored>,
}

impl Children {
    /// Nothing was written: what is there, each APIService reported as `outcome` says.
    pub fn as_observed(
        observed: &Observed,
        outcome: impl Fn(&ApiServiceName) -> Registration,
    ) -> Self {
        Self {
            deployment: observed.deployment.as_deref().cloned(),
            service: observed.service.as_deref().cloned(),
            registrations: observed
                .api_services
                .iter()
                .map(|(n, _)| outcome(n))
                .collect(),
            api_services: observed
                .api_services
                .iter()
                .map(|(n, a)| (n.clone(), a.as_deref().cloned()))
                .collect(),
            restored: Vec::new(),
        }
    }

    /// A same-named object that is not ours is in the way: reported for every version.
    pub fn in_the_way(observed: &Observed, why: &str) -> Self {
        Self::as_observed(observed, |name| Registration::Conflict {
            name: name.clone(),
            reason: why.to_string(),
        })
    }
}

/// Why the writes stopped early.
#[derive(Debug)]
pub enum Stop {
    /// An object that is not ours is in the way; it was left untouched.
    Blocked(String),
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Failed(error)
    }
}

/// Writes `desired` over what was `observed`, in order.
pub async fn write(
    ctx: &Context,
    validated: &Validated,
    desired: Desired,
    observed: &Observed,
    gate: Gate,
    adoptable: &[ApiServiceName],
) -> Result<Children, Stop> {
    // Both destructured without `..`: a child kind that is built or observed but not written
    // fails to compile.
    let Desired {
        service_account,
        auth_delegator,
        auth_reader,
        role_bindings,
        tls_secret,
        deployment,
        service,
        pdb,
        api_services,
    } = desired;
    let Observed {
        service_account: live_service_account,
        auth_delegator: live_auth_delegator,
        auth_reader: live_auth_reader,
        role_bindings: live_role_bindings,
        ca_secret: _written_by_the_tls_step,
        tls_secret: live_tls_secret,
        deployment: live_deployment,
        service: live_service,
        pdb: live_pdb,
        api_services: live_api_services,
        stale_api_services,
    } = observed;
    let client = &ctx.client;
    let ns = validated.names.namespace.as_str();
    let uid = Owner::Uid(&validated.uid);
    let cluster = Owner::Annotated(&validated.names);

    // 1. Identity and delegated-auth RBAC (none for an external server).
    match (service_account, &auth_delegator) {
        (Some(account), _) => {
            put(
                &Api::namespaced(client.clone(), ns),
                &account,
                live_service_account.as_deref(),
                uid,
            )
            .await?;
        }
        (None, Some(binding)) if live_auth_delegator.is_none() || live_auth_reader.is_none() => {
            named_account_exists(ctx, ns, binding).await?;
        }
        (None, _) => {}
    }
    let mut restored = Vec::new();
    if let Some(binding) = auth_delegator {
        restored.extend(
            live_auth_delegator
                .is_none()
                .then_some(Restored::AuthDelegator),
        );
        let live = live_auth_delegator.as_deref();
        put(&Api::all(client.clone()), &binding, live, cluster).await?;
    }
    if let Some(binding) = auth_reader {
        restored.extend(live_auth_reader.is_none().then_some(Restored::AuthReader));
        let api = Api::namespaced(client.clone(), KUBE_SYSTEM);
        put(&api, &binding, live_auth_reader.as_deref(), cluster).await?;
    }

    granted_roles(ctx, validated, role_bindings, live_role_bindings).await?;

    // 2. TLS Secret (the CA Secret is written, create-only, by the TLS step).
    if let Some(secret) = tls_secret {
        put(
            &Api::namespaced(client.clone(), ns),
            &secret,
            live_tls_secret.as_deref(),
            uid,
        )
        .await?;
    }

    // 3. Workload.
    let deployment = match deployment {
        Some(d) => Some(
            put(
                &Api::namespaced(client.clone(), ns),
                &d,
                live_deployment.as_deref(),
                uid,
            )
            .await?,
        ),
        None => None,
    };
    let service = put(
        &Api::namespaced(client.clone(), ns),
        &service,
        live_service.as_deref(),
        uid,
    )
    .await?;
    disruption_budget(
        &Api::namespaced(client.clone(), ns),
        validated,
        pdb,
        live_pdb.as_deref(),
        uid,
    )
    .await?;

    // 4. APIServices, one per version, then any stale ones of ours.
    let apis: Api<APIService> = Api::all(client.clone());
    let adopting = live_api_services.iter().any(|(name, live)| {
        adoptable.contains(name)
            && live
                .as_deref()
                .is_some_and(|a| registration::serving_unmanaged(a, &validated.names))
    });
    let backend_answers = !adopting || {
        // Verified against the bundle the APIServices will trust (none in mode Insecure).
        let bundle = api_services
            .first()
            .and_then(|a| a.spec.ca_bundle.as_ref())
            .map(|b| b.0.clone());
        super::probe::service_answers(ctx, validated, &service, bundle)
    };
    let (registrations, api_services) = registration::register_all(
        &apis,
        validated,
        &api_services,
        live_api_services,
        gate,
        adoptable,
        backend_answers,
    )
    .await?;
    for stale in stale_api_services {
        registration::delete(&apis, stale).await?;
    }
    // A missing binding is worth telling only for a server that was running before.
    if live_deployment.is_none() {
        restored.clear();
    }
    Ok(Children {
        deployment,
        service: Some(service),
        registrations,
        api_services,
        restored,
    })
}

/// Writes one child if it is ours to write.
async fn put<K>(api: &Api<K>, desired: &K, cached: Option<&K>, owner: Owner<'_>) -> Result<K, Stop>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    match ownership::ensure(api, desired, cached, owner).await? {
        Written::Done(live) => Ok(live),
        Written::Blocked(why) => Err(Stop::Blocked(why)),
    }
}

/// spec.serviceAccountName is bound, never created or owned: it must exist. Checked live (only
/// labelled ServiceAccounts are cached), and only before a binding is written.
async fn named_account_exists(
    ctx: &Context,
    ns: &str,
    binding: &ClusterRoleBinding,
) -> Result<(), Stop> {
    let account = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .next()
        .unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    match ownership::live(&api, &account).await? {
        Some(_) => Ok(()),
        None => Err(Stop::Blocked(format!(
            "ServiceAccount {ns}/{account} (spec.serviceAccountName) does not exist; create it: the operator binds it but never creates, owns or deletes it"
        ))),
    }
}

/// Applies the bindings of the granted ClusterRoles and removes ours that are no longer wanted.
async fn granted_roles(
    ctx: &Context,
    validated: &Validated,
    desired: Vec<ClusterRoleBinding>,
    live: &[Arc<ClusterRoleBinding>],
) -> Result<(), Stop> {
    let api: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let owner = Owner::Annotated(&validated.names);
    let named = |b: &ClusterRoleBinding, name: &Option<String>| &b.metadata.name == name;
    for binding in &desired {
        let cached = live.iter().find(|l| named(l, &binding.metadata.name));
        put(&api, binding, cached.map(|b| b.as_ref()), owner).await?;
    }
    for stale in live
        .iter()
        .filter(|l| !desired.iter().any(|d| named(l, &d.metadata.name)))
    {
        if owner.owns(stale.as_ref()) {
            let name = stale.metadata.name.as_deref().unwrap_or_default();
            ssa::delete(&api, name, Some(preconditions_of(stale.as_ref()))).await?;
        }
    }
    Ok(())
}

/// Applies the PDB, or deletes ours when none is wanted.
async fn disruption_budget(
    api: &Api<PodDisruptionBudget>,
    validated: &Validated,
    desired: Option<PodDisruptionBudget>,
    live: Option<&PodDisruptionBudget>,
    uid: Owner<'_>,
) -> Result<(), Stop> {
    match (desired, live) {
        (Some(pdb), live) => {
            put(api, &pdb, live, uid).await?;
        }
        (None, Some(live)) if uid.owns(live) => {
            let name = validated.names.workload();
            ssa::delete(api, name, Some(preconditions_of(live))).await?;
        }
        (None, _) => {}
    }
    Ok(())
}
