//! Deletion: our APIServices first (and wait until they are gone), then the cluster-scoped and
//! kube-system RBAC. Namespaced children go with garbage collection.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::wait::{await_condition, conditions};

use super::registration::{self, Holder};
use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::ExtensionServer;
use crate::error::{Error, Result};
use crate::names::{KUBE_SYSTEM, SERVER_LABEL, SERVER_NAMESPACE_LABEL, ServerNames};
use crate::ssa;

/// How long deletion waits for one APIService to be gone before retrying.
const APISERVICE_GONE: Duration = Duration::from_secs(30);

pub async fn run(server: &ExtensionServer, ctx: &Context) -> Result<Action> {
    let names = ServerNames::of(server);
    let apis: Api<APIService> = Api::all(ctx.client.clone());
    for target in ours_live(&apis, &names).await? {
        let name = target.metadata.name.clone().unwrap_or_default();
        let uid = target.metadata.uid.clone().unwrap_or_default();
        registration::delete(&apis, &target).await?;
        let still_deleting = || Error::StillDeleting {
            kind: "APIService".into(),
            name: name.clone(),
        };
        tokio::time::timeout(
            APISERVICE_GONE,
            await_condition(apis.clone(), &name, conditions::is_deleted(&uid)),
        )
        .await
        .map_err(|_| still_deleting())?
        .map_err(|_| still_deleting())?;
    }
    ssa::delete(
        &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
        &names.cluster_role_binding(),
        None,
    )
    .await?;
    ssa::delete(
        &Api::<RoleBinding>::namespaced(ctx.client.clone(), KUBE_SYSTEM),
        &names.auth_reader_binding(),
        None,
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

/// Every APIService of ours, listed live: deletion must not miss one created a moment ago
/// that the cache has not seen yet.
async fn ours_live(apis: &Api<APIService>, names: &ServerNames) -> Result<Vec<APIService>> {
    let selector = format!(
        "{SERVER_LABEL}={},{SERVER_NAMESPACE_LABEL}={}",
        names.name, names.namespace
    );
    let list = apis
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
        .filter(|a| registration::holder(a, names) == Holder::Us)
        .collect())
}
