//! Observe: the children of one ExtensionServer as the reflector caches hold them. No API
//! requests; a pass reads live only where freshness is required, and says why there.

mod admit;
mod facts;
pub mod listed;
mod packed;
mod secrets;
mod servers;
mod stores;
pub mod user_secrets;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use facts::ClusterFacts;
pub(crate) use packed::Packed;
pub use servers::Servers;
pub use stores::Stores;

use crate::apiservice::APIService;
use crate::names::{
    ApiServiceName, KUBE_SYSTEM, MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION, SERVER_LABEL,
    SERVER_NAMESPACE_LABEL, ServerNames,
};

/// What the caches hold of one ExtensionServer's children.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub service_account: Option<Arc<ServiceAccount>>,
    pub auth_delegator: Option<Arc<ClusterRoleBinding>>,
    pub auth_reader: Option<Arc<RoleBinding>>,
    /// This server's bindings of `spec.clusterRoles`, wanted or not.
    pub role_bindings: Vec<Arc<ClusterRoleBinding>>,
    pub ca_secret: Option<Arc<Secret>>,
    pub tls_secret: Option<Arc<Secret>>,
    pub deployment: Option<Arc<Deployment>>,
    pub service: Option<Arc<Service>>,
    pub pdb: Option<Arc<PodDisruptionBudget>>,
    /// The requested APIServices, in spec order, whoever holds them.
    pub api_services: Vec<(ApiServiceName, Option<Arc<APIService>>)>,
    /// APIServices of this server for versions no longer requested.
    pub stale_api_services: Vec<Arc<APIService>>,
}

/// Reads one server's children from the caches.
pub fn observe(stores: &Stores, names: &ServerNames, requested: &[ApiServiceName]) -> Observed {
    let ns = names.namespace.as_str();
    let api_services = requested
        .iter()
        .map(|name| (name.clone(), cluster(&stores.api_services, name.as_str())))
        .collect();
    let owner = names.owner_key();
    let stale_api_services = stores.api_services.state_filter(|a| {
        owning_server(a) == Some(owner.as_str())
            && requested
                .iter()
                .all(|r| Some(r.as_str()) != a.meta().name.as_deref())
    });
    let prefix = names.granted_role_binding_prefix();
    let role_bindings = stores.cluster_role_bindings.state_filter(|b| {
        owning_server(b) == Some(owner.as_str())
            && b.meta()
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix))
    });
    Observed {
        role_bindings,
        service_account: unpacked(&stores.service_accounts, ns, names.workload()),
        auth_delegator: cluster(&stores.cluster_role_bindings, &names.cluster_role_binding()),
        auth_reader: namespaced(
            &stores.role_bindings,
            KUBE_SYSTEM,
            &names.auth_reader_binding(),
        ),
        ca_secret: unpacked(&stores.secrets, ns, &names.ca_secret()),
        tls_secret: unpacked(&stores.secrets, ns, &names.tls_secret()),
        deployment: unpacked(&stores.deployments, ns, names.workload()),
        service: unpacked(&stores.services, ns, names.workload()),
        pdb: unpacked(&stores.pdbs, ns, names.workload()),
        api_services,
        stale_api_services,
    }
}

/// The ExtensionServer (`<namespace>/<name>`) a cluster-scoped or kube-system object belongs to:
/// the owner annotation, our managed-by label and the server's name and namespace labels must
/// all agree. An annotation alone (say, copied onto a hand-made object) claims nothing.
pub fn owning_server<K: Resource>(object: &K) -> Option<&str> {
    let labels = object.meta().labels.as_ref()?;
    let owner = owner_annotation(object)?;
    let (namespace, name) = owner.split_once('/')?;
    let label_is = |key: &str, value: &str| labels.get(key).is_some_and(|v| v == value);
    let agree = label_is(MANAGED_BY_LABEL, MANAGED_BY)
        && label_is(SERVER_NAMESPACE_LABEL, namespace)
        && label_is(SERVER_LABEL, name);
    agree.then_some(owner)
}

/// The owner annotation alone (see [`owning_server`]).
fn owner_annotation<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .annotations
        .as_ref()?
        .get(OWNER_ANNOTATION)
        .map(String::as_str)
}

fn namespaced<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

/// The cached object `namespace/name`, decoded.
fn unpacked<K>(store: &Store<Packed<K>>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + 'static,
{
    namespaced(store, namespace, name)?.unpack().map(Arc::new)
}

fn cluster<K>(store: &Store<K>, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name))
}
