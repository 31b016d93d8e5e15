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
use crate::names::{
    KUBE_SYSTEM, SERVER_LABEL, SERVER_NAMESPACE_LABEL, ServerNames, is_label_value,
};
use crate::observe::owning_server;
use crate::ssa::{self, preconditions_of};

/// How long deletion waits for one APIService to be gone before retrying.
const APISERVICE_GONE: Duration = Duration::from_secs(30);

pub async fn run(server: &ExtensionServer, ctx: &Context) -> Result<Action> {
    let names = ServerNames::of(server);
    let apis: Api<APIService> = Api::all(ctx.client.clone());
    let ours = list_ours(&apis, &names).await?;
    for target in ours
        .into_iter()
        .filter(|a| registration::holder(a, &names) == Holder::Us)
    {
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
    delete_ours(&Api::<ClusterRoleBinding>::all(ctx.client.clone()), &names).await?;
    delete_ours(
        &Api::<RoleBinding>::namespaced(ctx.client.clone(), KUBE_SYSTEM),
        &names,
    )
    .await?;
    ctx.metrics.forget_server(&names.namespace, &names.name);
    if let Ok(mut held) = ctx.held_back.lock() {
        held.remove(&names.owner_key());
    }
    Ok(Action::await_change())
}

/// Deletes the objects of this kind that are ours (listed live), each only as the uid listed.
async fn delete_ours<K>(api: &Api<K>, names: &ServerNames) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for object in list_ours(api, names).await? {
        let name = object.meta().name.clone().unwrap_or_default();
        ssa::delete(api, &name, Some(preconditions_of(&object))).await?;
    }
    Ok(())
}

/// The objects of this kind with this server's labels and owner annotation, listed live:
/// deletion must not miss one created a moment ago that the cache has not seen yet.
async fn list_ours<K>(api: &Api<K>, names: &ServerNames) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !is_label_value(&names.name) {
        // Only a CRD older than its name rules admits such a name; the API server refuses any
        // object labelled with it, and would refuse the selector too.
        return Ok(Vec::new());
    }
    let selector = format!(
        "{SERVER_LABEL}={},{SERVER_NAMESPACE_LABEL}={}",
        names.name, names.namespace
    );
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Get {
            kind: K::kind(&()),
            name: selector.clone(),
            source,
        })?;
    let owner = names.owner_key();
    Ok(list
        .items
        .into_iter()
        .filter(|o| owning_server(o) == Some(owner.as_str()))
        .collect())
}
