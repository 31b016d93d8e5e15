//! Apply: the desired children in the documented order, each written only when the cached
//! object differs. The result, [`Applied`], holds everything status needs.
//!
//! Order: ServiceAccount and delegated-auth RBAC, TLS Secret, Deployment, Service, PDB, then
//! the APIServices (as the registration gate allows), then any stale APIServices of ours.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::desired::Desired;
use crate::error::Result;
use crate::names::{ApiServiceName, KUBE_SYSTEM};
use crate::observe::Observed;
use crate::ownership::{self, Owner, Written};
use crate::reconcile::registration::{self, Gate};
use crate::reconcile::validate::Validated;
use crate::ssa::{self, preconditions_of};
use crate::status::Registration;

/// A delegated-auth binding that had vanished and was put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    AuthDelegator,
    AuthReader,
}

/// What the apply step leaves behind, for status.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub deployment: Option<Deployment>,
    pub service: Option<Service>,
    pub registrations: Vec<Registration>,
    /// The requested APIServices as they stand after this pass.
    pub api_services: Vec<(ApiServiceName, Option<APIService>)>,
    pub restored: Vec<Restored>,
}

impl Applied {
    /// Nothing could be applied (the certificate is not usable): report what is there.
    pub fn waiting_for_certificate(observed: Observed) -> Self {
        Self::stopped(observed, |name| {
            Registration::WaitingForCertificate(name.clone())
        })
    }

    /// A same-named object that is not ours is in the way: report it for every version.
    pub fn in_the_way(observed: Observed, why: &str) -> Self {
        Self::stopped(observed, |name| Registration::Conflict {
            name: name.clone(),
            reason: why.to_string(),
        })
    }

    fn stopped(observed: Observed, outcome: impl Fn(&ApiServiceName) -> Registration) -> Self {
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
                .into_iter()
                .map(|(n, a)| (n, a.as_deref().cloned()))
                .collect(),
            restored: Vec::new(),
        }
    }
}

/// Writes one child if it is ours to write; stops the pass at the first one in the way.
macro_rules! ensure {
    ($api:expr, $desired:expr, $cached:expr, $owner:expr, $stop:expr) => {
        match ownership::ensure($api, $desired, $cached, $owner).await? {
            Written::Done(live) => live,
            Written::Blocked(why) => return Ok($stop(why)),
        }
    };
}

/// The ServiceAccount a delegated-auth binding names.
fn subject_name(binding: &ClusterRoleBinding) -> String {
    binding
        .subjects
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .next()
        .unwrap_or_default()
}

/// Applies `desired` over what was `observed`.
pub async fn apply(
    ctx: &Context,
    validated: &Validated,
    desired: Desired,
    observed: Observed,
    gate: Gate,
    adopt_existing: bool,
) -> Result<Applied> {
    // Both destructured without `..`: a child kind that is built or observed but not applied
    // fails to compile.
    let Desired {
        service_account,
        auth_delegator,
        auth_reader,
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
        ca_secret: _written_by_the_tls_step,
        tls_secret: live_tls_secret,
        deployment: live_deployment,
        service: live_service,
        pdb: live_pdb,
        api_services: live_api_services,
        stale_api_services,
    } = observed;
    let client = &ctx.client;
    let names = &validated.names;
    let ns = names.namespace.as_str();
    let uid = Owner::Uid(&validated.uid);
    let cluster = Owner::Annotated(names);
    let mut restored = Vec::new();
    // Kept to report what is there if an object in the way stops the pass.
    let observed_api_services = live_api_services.clone();
    let (observed_deployment, observed_service) = (live_deployment.clone(), live_service.clone());
    let stop = |why: String| {
        let observed = Observed {
            deployment: observed_deployment.clone(),
            service: observed_service.clone(),
            api_services: observed_api_services.clone(),
            ..Observed::default()
        };
        Applied::in_the_way(observed, &why)
    };

    // 1. Identity and delegated-auth RBAC (none for an external server).
    if let Some(account) = service_account {
        let api = Api::namespaced(client.clone(), ns);
        ensure!(&api, &account, live_service_account.as_deref(), uid, stop);
    } else if let Some(binding) = &auth_delegator
        && (live_auth_delegator.is_none() || live_auth_reader.is_none())
    {
        // spec.serviceAccountName is bound, never created or owned: it must exist. Checked live
        // (only labelled ServiceAccounts are cached), and only before a binding is written.
        let account = subject_name(binding);
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        if ownership::live(&api, &account).await?.is_none() {
            return Ok(stop(format!(
                "ServiceAccount {ns}/{account} (spec.serviceAccountName) does not exist; create it: the operator binds it but never creates, owns or deletes it"
            )));
        }
    }
    if let Some(binding) = auth_delegator {
        if live_auth_delegator.is_none() {
            restored.push(Restored::AuthDelegator);
        }
        let api = Api::all(client.clone());
        ensure!(
            &api,
            &binding,
            live_auth_delegator.as_deref(),
            cluster,
            stop
        );
    }
    if let Some(binding) = auth_reader {
        if live_auth_reader.is_none() {
            restored.push(Restored::AuthReader);
        }
        let api = Api::namespaced(client.clone(), KUBE_SYSTEM);
        ensure!(&api, &binding, live_auth_reader.as_deref(), cluster, stop);
    }

    // 2. TLS Secret (the CA Secret is written, create-only, by the TLS step).
    if let Some(secret) = tls_secret {
        let api = Api::namespaced(client.clone(), ns);
        ensure!(&api, &secret, live_tls_secret.as_deref(), uid, stop);
    }

    // 3. Workload.
    let deployment = match deployment {
        Some(deployment) => {
            let api = Api::namespaced(client.clone(), ns);
            Some(ensure!(
                &api,
                &deployment,
                live_deployment.as_deref(),
                uid,
                stop
            ))
        }
        None => None,
    };
    let api = Api::namespaced(client.clone(), ns);
    let service = ensure!(&api, &service, live_service.as_deref(), uid, stop);
    let pdbs = Api::namespaced(client.clone(), ns);
    match (pdb, live_pdb) {
        (Some(pdb), live) => {
            ensure!(&pdbs, &pdb, live.as_deref(), uid, stop);
        }
        (None, Some(live)) if uid.owns(live.as_ref()) => {
            ssa::delete(
                &pdbs,
                names.workload(),
                Some(preconditions_of(live.as_ref())),
            )
            .await?
        }
        (None, _) => {}
    }

    // 4. APIServices, one per version, then any stale ones of ours.
    let apis: Api<APIService> = Api::all(client.clone());
    let now = Timestamp::now();
    let mut registrations = Vec::new();
    let mut after = Vec::new();
    for (desired, (name, live)) in api_services.iter().zip(live_api_services) {
        let live = live.as_deref();
        let expired = live.is_some_and(|a| {
            registration::unavailable_too_long(a, validated.unregister_after, now)
        });
        let decide = |existing: Option<&APIService>| {
            registration::decide(&name, existing, names, gate, adopt_existing, expired)
        };
        let decision = decide(live);
        let (outcome, live) =
            registration::execute(&apis, &name, desired, live, decision, |l| decide(Some(l)))
                .await?;
        registrations.push(outcome);
        after.push((name, live));
    }
    for stale in &stale_api_services {
        registration::delete(&apis, stale).await?;
    }
    // A missing binding is worth telling only for a server that was running before.
    if live_deployment.is_none() {
        restored.clear();
    }
    Ok(Applied {
        deployment,
        service: Some(service),
        registrations,
        api_services: after,
        restored,
    })
}
