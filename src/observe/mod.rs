//! Observe: the children of one ExtensionServer as the reflector caches hold them. No API
//! requests; a pass reads live only where freshness is required, and says why there.

mod admit;
mod facts;
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

pub use facts::Facts;
pub use servers::Servers;
pub use stores::{Stores, owner_of};

use crate::apiservice::APIService;
use crate::names::{ApiServiceName, KUBE_SYSTEM, OWNER_ANNOTATION, ServerNames};

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
        owner_annotation(a) == Some(owner.as_str())
            && requested
                .iter()
                .all(|r| Some(r.as_str()) != a.meta().name.as_deref())
    });
    let prefix = names.granted_role_binding_prefix();
    let role_bindings = stores.cluster_role_bindings.state_filter(|b| {
        owner_annotation(b) == Some(owner.as_str())
            && b.meta()
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix))
    });
    Observed {
        role_bindings,
        service_account: namespaced(&stores.service_accounts, ns, names.workload()),
        auth_delegator: cluster(&stores.cluster_role_bindings, &names.cluster_role_binding()),
        auth_reader: namespaced(
            &stores.role_bindings,
            KUBE_SYSTEM,
            &names.auth_reader_binding(),
        ),
        ca_secret: namespaced(&stores.secrets, ns, &names.ca_secret()),
        tls_secret: namespaced(&stores.secrets, ns, &names.tls_secret()),
        deployment: namespaced(&stores.deployments, ns, names.workload()),
        service: namespaced(&stores.services, ns, names.workload()),
        pdb: namespaced(&stores.pdbs, ns, names.workload()),
        api_services,
        stale_api_services,
    }
}

/// The `aggregation.dev/owner` annotation of an object, if any.
pub fn owner_annotation<K: Resource>(object: &K) -> Option<&str> {
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

fn cluster<K>(store: &Store<K>, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name))
}
