//! Applies the desired children in the documented order and reports what was applied.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams};

use crate::apiservice::APIService;
use crate::apply::{apply, get_opt};
use crate::build::Desired;
use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::error::{Error, Result};
use crate::names::{
    ApiServiceName, KUBE_SYSTEM, SERVER_LABEL, SERVER_NAMESPACE_LABEL, ServerNames,
};
use crate::reconcile::registration::{self, Gate, Holder, holder};
use crate::status::Registration;

/// What the apply step leaves behind, for status.
#[derive(Debug, Clone)]
pub struct Applied {
    pub deployment: Option<Deployment>,
    pub registrations: Vec<Registration>,
    pub api_services: Vec<(ApiServiceName, Option<APIService>)>,
}

impl Applied {
    /// Nothing could be applied (the certificate is not usable): report what is there.
    pub fn blocked(
        _server: &ExtensionServer,
        deployment: Option<Deployment>,
        observed: Vec<(ApiServiceName, Option<APIService>)>,
    ) -> Self {
        Self {
            deployment,
            registrations: observed
                .iter()
                .map(|(n, _)| Registration::WaitingForCertificate(n.clone()))
                .collect(),
            api_services: observed,
        }
    }
}

pub async fn apply_all(
    ctx: &Context,
    server: &ExtensionServer,
    names: &ServerNames,
    desired: Desired,
    observed_api_services: Vec<(ApiServiceName, Option<APIService>)>,
    gate: Gate,
) -> Result<Applied> {
    // Destructured without `..`: a new child kind that nobody applies fails to compile.
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
    let client = &ctx.client;
    let ns = names.namespace.as_str();

    // 1. Identity and delegated-auth RBAC.
    if let Some(account) = service_account {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let live = get_opt(&api, names.workload()).await?;
        apply(&api, &account, live).await?;
    }
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    let live = get_opt(&api, &names.cluster_role_binding()).await?;
    let delegator_missing = live.is_none();
    apply(&api, &auth_delegator, live).await?;
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), KUBE_SYSTEM);
    let live = get_opt(&api, &names.auth_reader_binding()).await?;
    let reader_missing = live.is_none();
    apply(&api, &auth_reader, live).await?;
    if server.status.is_some() {
        if delegator_missing {
            report_restored(ctx, server, &format!("ClusterRoleBinding {}", names.cluster_role_binding()), "the server could not create TokenReviews or SubjectAccessReviews, so every request through the aggregator failed authorization").await;
        }
        if reader_missing {
            report_restored(ctx, server, &format!("RoleBinding kube-system/{}", names.auth_reader_binding()), "the server could not read kube-system/extension-apiserver-authentication, so it could not authenticate the aggregator; pods that started meanwhile must be restarted").await;
        }
    }

    // 2. TLS Secret.
    if let Some(secret) = tls_secret {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let live = get_opt(&api, &names.tls_secret()).await?;
        apply(&api, &secret, live).await?;
    }

    // 3. Workload.
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let live = get_opt(&api, names.workload()).await?;
    let deployment = apply(&api, &deployment, live).await?;
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let live = get_opt(&api, names.workload()).await?;
    apply(&api, &service, live).await?;
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let live = get_opt(&api, names.workload()).await?;
    match (pdb, live) {
        (Some(pdb), live) => {
            apply(&api, &pdb, live).await?;
        }
        (None, Some(_)) => delete_pdb(&api, names).await?,
        (None, None) => {}
    }

    // 4. APIServices, one per version, then any stale ones of ours.
    let apis: Api<APIService> = Api::all(client.clone());
    let mut registrations = Vec::new();
    let mut live_api_services = Vec::new();
    let adopt = server.spec.registration.adopt_existing;
    let unregister_after = unregister_after(server)?;
    for (desired, (name, live)) in api_services.iter().zip(observed_api_services) {
        let (registration, live) =
            registration::reconcile_one(&apis, desired, live, names, gate, adopt, unregister_after)
                .await?;
        registrations.push(registration);
        live_api_services.push((name, live));
    }
    remove_stale_api_services(&apis, names, &live_api_services).await?;

    Ok(Applied {
        deployment: Some(deployment),
        registrations,
        api_services: live_api_services,
    })
}

/// `registration.unregisterAfter`, if set.
pub fn unregister_after(server: &ExtensionServer) -> Result<Option<std::time::Duration>> {
    match server.spec.registration.unregister_after.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => crate::tls::duration::parse(text).map(Some),
    }
}

/// A delegated-auth binding vanished behind the operator's back: say so.
async fn report_restored(ctx: &Context, server: &ExtensionServer, what: &str, effect: &str) {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType};
    let event = Event {
        type_: EventType::Warning,
        reason: "RBACRestored".into(),
        note: Some(format!(
            "{what} was missing and has been restored; while it was missing {effect}"
        )),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &server.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an Event");
    }
}

async fn delete_pdb(api: &Api<PodDisruptionBudget>, names: &ServerNames) -> Result<()> {
    match api.delete(names.workload(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: "PodDisruptionBudget".into(),
            name: names.workload().to_string(),
            source,
        }),
    }
}

/// Our APIServices for versions no longer in the spec.
pub async fn remove_stale_api_services(
    api: &Api<APIService>,
    names: &ServerNames,
    keep: &[(ApiServiceName, Option<APIService>)],
) -> Result<()> {
    for stale in ours(api, names).await? {
        let name = stale.metadata.name.clone().unwrap_or_default();
        if keep.iter().all(|(k, _)| k.as_str() != name) {
            registration::delete(api, &name_of(&stale)).await?;
        }
    }
    Ok(())
}

/// Every APIService that carries our labels and owner annotation.
pub async fn ours(api: &Api<APIService>, names: &ServerNames) -> Result<Vec<APIService>> {
    let selector = format!(
        "{SERVER_LABEL}={},{SERVER_NAMESPACE_LABEL}={}",
        names.name, names.namespace
    );
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Get {
            kind: "APIService".into(),
            name: selector.clone(),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|a| holder(a, names) == Holder::Us)
        .collect())
}

fn name_of(api_service: &APIService) -> ApiServiceName {
    ApiServiceName::new(
        &crate::names::Version(api_service.spec.version.clone().unwrap_or_default()),
        &crate::names::Group(api_service.spec.group.clone().unwrap_or_default()),
    )
}
