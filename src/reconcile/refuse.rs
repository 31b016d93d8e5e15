//! A refused claim gets nothing but its status: what this server had registered or bound
//! before (a grant since withdrawn) is removed, APIServices first, then its workload (the
//! Deployment and PDB; the Service and the certificate Secrets stay, so the CA is not minted
//! again when the grant returns). The pass goes on as any other, with no children applied.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Api;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::error::Result;
use crate::names::{KUBE_SYSTEM, ServerNames};
use crate::observe::{Observed, owning_server};
use crate::outcome::{Applied, CertificateOutcome, Workload};
use crate::ownership::Owner;
use crate::probe::Handshake;
use crate::reconcile::registration::{self, Holder};
use crate::ssa::{self, preconditions_of};
use crate::trust::Refusal;
use crate::validated::{Backend, Validated};

/// Removes what the server had; what it applied is nothing.
pub async fn run(
    ctx: &Context,
    validated: &Validated,
    observed: Observed,
    refusal: &Refusal,
) -> Result<Applied> {
    unregister(ctx, &validated.names, &observed).await?;
    let workload = match validated.backend {
        Backend::Pods(_) => {
            remove_workload(ctx, validated, &observed).await?;
            Workload::Pods { deployment: None }
        }
        Backend::External { .. } => Workload::External { probe: None },
    };
    Ok(Applied {
        subject: validated.subject(),
        refusal: Some(refusal.clone()),
        workload,
        service: None,
        certificate: CertificateOutcome::NotIssued,
        registrations: Vec::new(),
        api_services: Vec::new(),
        handshake: Handshake::Inconclusive,
        restored: Vec::new(),
        tls_events: Vec::new(),
        tls_due: None,
        rotating: false,
    })
}

/// Removes the Deployment and PDB this server controls; they come back with the grant.
async fn remove_workload(ctx: &Context, validated: &Validated, observed: &Observed) -> Result<()> {
    let owner = Owner::Uid(&validated.uid);
    let (client, names) = (&ctx.client, &validated.names);
    if let Some(deployment) = observed.deployment.as_deref().filter(|d| owner.owns(*d)) {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &names.namespace);
        ssa::delete(&api, names.workload(), Some(preconditions_of(deployment))).await?;
    }
    if let Some(pdb) = observed.pdb.as_deref().filter(|p| owner.owns(*p)) {
        let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &names.namespace);
        ssa::delete(&api, names.workload(), Some(preconditions_of(pdb))).await?;
    }
    Ok(())
}

/// Removes this server's APIServices and delegated-auth bindings, as the caches show them.
/// Returns true if anything was removed.
pub async fn unregister(ctx: &Context, names: &ServerNames, observed: &Observed) -> Result<bool> {
    let apis: Api<APIService> = Api::all(ctx.client.clone());
    let ours = observed
        .api_services
        .iter()
        .filter_map(|(_, live)| live.as_deref())
        .filter(|a| registration::holder(a, names) == Holder::Us)
        .chain(observed.stale_api_services.iter().map(|a| a.as_ref()));
    let mut removed = false;
    for api_service in ours {
        registration::delete(&apis, api_service).await?;
        removed = true;
    }
    let owner = names.owner_key();
    let role_bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    for binding in &observed.role_bindings {
        let name = binding.metadata.name.as_deref().unwrap_or_default();
        ssa::delete(
            &role_bindings,
            name,
            Some(preconditions_of(binding.as_ref())),
        )
        .await?;
        removed = true;
    }
    if let Some(binding) = observed
        .auth_delegator
        .as_deref()
        .filter(|b| owning_server(*b) == Some(owner.as_str()))
    {
        let api: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
        ssa::delete(
            &api,
            &names.cluster_role_binding(),
            Some(preconditions_of(binding)),
        )
        .await?;
        removed = true;
    }
    if let Some(binding) = observed
        .auth_reader
        .as_deref()
        .filter(|b| owning_server(*b) == Some(owner.as_str()))
    {
        let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), KUBE_SYSTEM);
        ssa::delete(
            &api,
            &names.auth_reader_binding(),
            Some(preconditions_of(binding)),
        )
        .await?;
        removed = true;
    }
    Ok(removed)
}
