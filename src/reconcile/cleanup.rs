//! Deletion: our APIServices first (and wait until they are gone), then the cluster-scoped and
//! kube-system RBAC. Namespaced children go with garbage collection.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::wait::{await_condition, conditions};

use super::apply_all::ours;
use super::registration;
use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::error::{Error, Result};
use crate::names::{ApiServiceName, KUBE_SYSTEM, ServerNames};

pub async fn run(server: &ExtensionServer, ctx: &Context) -> Result<Action> {
    let names = ServerNames::of(server);
    let apis: Api<APIService> = Api::all(ctx.client.clone());
    let mut targets = ours(&apis, &names).await?;
    for name in super::requested_api_services(server) {
        if let Some(live) = crate::apply::get_opt(&apis, name.as_str()).await?
            && registration::holder(&live, &names) == registration::Holder::Us
            && targets
                .iter()
                .all(|t| t.metadata.name != live.metadata.name)
        {
            targets.push(live);
        }
    }
    for target in &targets {
        let name = target.metadata.name.clone().unwrap_or_default();
        let uid = target.metadata.uid.clone().unwrap_or_default();
        let version = target.spec.version.clone().unwrap_or_default();
        let group = target.spec.group.clone().unwrap_or_default();
        registration::delete(
            &apis,
            &ApiServiceName::new(&crate::names::Version(version), &crate::names::Group(group)),
        )
        .await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(apis.clone(), &name, conditions::is_deleted(&uid)),
        )
        .await
        .map_err(|_| Error::InvalidSpec(format!("APIService {name} is still being deleted")))?
        .map_err(|e| Error::InvalidSpec(format!("waiting for APIService {name}: {e}")))?;
    }
    delete_ignoring_missing(
        &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
        &names.cluster_role_binding(),
        "ClusterRoleBinding",
    )
    .await?;
    delete_ignoring_missing(
        &Api::<RoleBinding>::namespaced(ctx.client.clone(), KUBE_SYSTEM),
        &names.auth_reader_binding(),
        "RoleBinding",
    )
    .await?;
    let requested: Vec<String> = super::requested_api_services(server)
        .iter()
        .map(|n| n.to_string())
        .collect();
    ctx.metrics
        .forget_server(&names.namespace, &names.name, &requested);
    if let Ok(mut held) = ctx.held_back.lock() {
        held.remove(&names.owner_key());
    }
    Ok(Action::await_change())
}

async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str, kind: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: kind.into(),
            name: name.into(),
            source,
        }),
    }
}
