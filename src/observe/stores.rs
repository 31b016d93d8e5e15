//! The reflector caches of every child kind. The only way to build [`Stores`] is
//! [`Stores::watch`], which also feeds each cache's changes to the controller, so a kind that is
//! cached is always watched (and a new field here must be wired there to compile).

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::admit;
use super::packed::{Packed, packing};
use crate::apiservice::APIService;
use crate::crd::ExtensionServer;
use crate::names::{
    KUBE_SYSTEM, OWNER_ANNOTATION, SERVER_LABEL, SERVER_NAMESPACE_LABEL, managed_selector,
    requested_api_services,
};

/// One cache per child kind. The namespaced children, read by name only, are kept packed.
#[derive(Clone)]
pub struct Stores {
    pub service_accounts: Store<Packed<ServiceAccount>>,
    pub cluster_role_bindings: Store<ClusterRoleBinding>,
    pub role_bindings: Store<RoleBinding>,
    pub secrets: Store<Packed<Secret>>,
    pub deployments: Store<Packed<Deployment>>,
    pub services: Store<Packed<Service>>,
    pub pdbs: Store<Packed<PodDisruptionBudget>>,
    /// Every APIService in the cluster (a few dozen small objects): ownership and conflicts
    /// are decided from it.
    pub api_services: Store<APIService>,
}

impl Stores {
    /// Starts a reflector per kind and makes each change re-reconcile its ExtensionServer.
    /// A change to an APIService also wakes every server in `servers` that asks for it, so a
    /// claimant waiting in `Conflict` retries as soon as the holder lets go.
    /// With `namespace`, namespaced kinds are watched there only.
    pub fn watch(
        controller: Controller<ExtensionServer>,
        client: &Client,
        namespace: Option<&str>,
        servers: Store<ExtensionServer>,
    ) -> (Self, Controller<ExtensionServer>) {
        let cluster_scoped = || match namespace {
            Some(ns) => watcher::Config::default().labels(&format!(
                "{},{SERVER_NAMESPACE_LABEL}={ns}",
                managed_selector()
            )),
            None => watcher::Config::default().labels(&managed_selector()),
        };
        let (service_accounts, s) = owned(client, namespace, slim);
        let controller = controller.owns_stream(s);
        let config = watcher::Config::default().labels(&managed_selector());
        let (secrets, s) =
            super::secrets::controlled(client.clone(), namespace, config, slim_secret);
        let controller = controller.owns_stream(s);
        let (deployments, s) = owned(client, namespace, slim);
        let controller = controller.owns_stream(s);
        let (services, s) = owned(client, namespace, slim);
        let controller = controller.owns_stream(s);
        let (pdbs, s) = owned(client, namespace, slim);
        let controller = controller.owns_stream(s);
        let (cluster_role_bindings, s) = reflect_admitted(
            Api::all(client.clone()),
            cluster_scoped(),
            admit::annotated,
            slim,
        );
        let controller = controller.watches_stream(s, |b| owner_of(&b));
        let (role_bindings, s) = reflect_admitted(
            Api::namespaced(client.clone(), KUBE_SYSTEM),
            cluster_scoped(),
            admit::annotated,
            slim,
        );
        let controller = controller.watches_stream(s, |b| owner_of(&b));
        let (api_services, s) = reflect(Api::all(client.clone()), watcher::Config::default());
        let controller = controller.watches_stream(s, move |a: APIService| {
            let mut woken: Vec<_> = owner_of(&a).into_iter().collect();
            woken.extend(claimants(&servers, &a.name_any()));
            woken
        });
        let stores = Self {
            service_accounts,
            cluster_role_bindings,
            role_bindings,
            secrets,
            deployments,
            services,
            pdbs,
            api_services,
        };
        (stores, controller)
    }

    /// The kinds cached, named by destructuring, so a new field must be listed here.
    #[cfg(test)]
    pub fn kinds(&self) -> std::collections::BTreeSet<String> {
        let Self {
            service_accounts,
            cluster_role_bindings,
            role_bindings,
            secrets,
            deployments,
            services,
            pdbs,
            api_services,
        } = self;
        [
            kind_of(service_accounts),
            kind_of(cluster_role_bindings),
            kind_of(role_bindings),
            kind_of(secrets),
            kind_of(deployments),
            kind_of(services),
            kind_of(pdbs),
            kind_of(api_services),
        ]
        .into_iter()
        .collect()
    }

    /// True once every cache has listed its objects.
    pub async fn ready(&self) -> bool {
        is_ready(&self.service_accounts).await
            && is_ready(&self.cluster_role_bindings).await
            && is_ready(&self.role_bindings).await
            && is_ready(&self.secrets).await
            && is_ready(&self.deployments).await
            && is_ready(&self.services).await
            && is_ready(&self.pdbs).await
            && is_ready(&self.api_services).await
    }
}

/// A ready store answers at once; one that is still listing times out.
pub(super) async fn is_ready<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    tokio::time::timeout(Duration::from_millis(1), store.wait_until_ready())
        .await
        .is_ok_and(|r| r.is_ok())
}

#[cfg(test)]
fn kind_of<K: Resource<DynamicType = ()> + Clone>(_: &Store<K>) -> String {
    K::kind(&()).into_owned()
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A cache of every object of `api`, and the stream of changed objects that keeps it.
pub(super) fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflect_admitted(api, config, admit::everything, slim)
}

/// A cache of the objects of `api` that `admit` lets in, each trimmed by `trim`, and the stream
/// of changed objects that keeps it.
fn reflect_admitted<K>(
    api: Api<K>,
    config: watcher::Config,
    admit: fn(&K) -> bool,
    trim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = admitted(api, config, admit, trim)
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// The watch events of `api` for the objects `admit` lets in, each trimmed by `trim`.
fn admitted<K>(
    api: Api<K>,
    config: watcher::Config,
    admit: fn(&K) -> bool,
    trim: fn(&mut K),
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            std::future::ready(match event {
                Ok(event) => admit::filter(event, admit).map(Ok),
                Err(error) => Some(Err(error)),
            })
        })
        .modify(trim)
}

/// The namespaced children an ExtensionServer controls (in `namespace`, or everywhere), cached
/// packed, and the stream of changed objects that keeps the cache.
fn owned<K>(
    client: &Client,
    namespace: Option<&str>,
    trim: fn(&mut K),
) -> (
    Store<Packed<K>>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&managed_selector());
    let stream = admitted(scoped(client, namespace), config, admit::controlled, trim)
        .inspect_ok(packing(writer))
        .touched_objects();
    (reader, stream)
}

/// [`slim`], and only the data keys the operator reads.
fn slim_secret(secret: &mut Secret) {
    slim(secret);
    admit::trim_secret(secret);
}

/// Drops what the operator never reads, to keep the caches small.
pub(super) fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The servers that ask for the APIService `name`.
fn claimants(servers: &Store<ExtensionServer>, name: &str) -> Vec<ObjectRef<ExtensionServer>> {
    servers
        .state()
        .iter()
        .filter(|s| requested_api_services(s).iter().any(|r| r.as_str() == name))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Maps a cluster-scoped or kube-system child back to its ExtensionServer.
pub fn owner_of<K: Resource>(child: &K) -> Option<ObjectRef<ExtensionServer>> {
    let meta = child.meta();
    if let Some((namespace, name)) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .and_then(|o| o.split_once('/'))
    {
        return Some(ObjectRef::new(name).within(namespace));
    }
    let labels = meta.labels.as_ref()?;
    Some(ObjectRef::new(labels.get(SERVER_LABEL)?).within(labels.get(SERVER_NAMESPACE_LABEL)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{TlsInput, desired};

    fn empty<K>() -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        reflector::store().0
    }

    #[test]
    fn every_desired_kind_is_cached_and_watched() {
        let stores = Stores {
            service_accounts: empty(),
            cluster_role_bindings: empty(),
            role_bindings: empty(),
            secrets: empty(),
            deployments: empty(),
            services: empty(),
            pdbs: empty(),
            api_services: empty(),
        };
        let server = crate::fixtures::server(
            "apiVersion: aggregation.dev/v1alpha1\nkind: ExtensionServer\nmetadata: {name: s, namespace: n}\nspec: {group: g.example.com, versions: [{name: v1}], image: i}\n",
        );
        let tls = TlsInput {
            managed_serving: None,
            ca_bundle: None,
            cert_hash: String::new(),
            front_proxy_hash: None,
        };
        let validated = crate::fixtures::validated(&server);
        assert_eq!(desired(&validated, &tls).kinds(), stores.kinds());
    }

    #[test]
    fn slim_drops_managed_fields_and_the_last_applied_copy_only() {
        let mut server: ExtensionServer = serde_yaml::from_str(
            "apiVersion: aggregation.dev/v1alpha1\nkind: ExtensionServer\nmetadata:\n  name: s\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}', keep: me}\n  managedFields: [{manager: kubectl, operation: Apply}]\nspec: {group: g.example.com, versions: [{name: v1}], image: i}\n",
        )
        .expect("server");
        slim(&mut server);
        assert_eq!(server.metadata.managed_fields, None);
        let annotations = server.metadata.annotations.expect("annotations");
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["keep"]);
    }
}
