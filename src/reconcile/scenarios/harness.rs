//! A Reconciler over the fake API: its caches are filled from the fake before every pass.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;
use kube::{Resource, api::ObjectMeta};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::fake_api::FakeApi;
use crate::context::{Context, Settings};
use crate::crd::ExtensionServer;
use crate::metrics::Metrics;
use crate::observe::{ClusterFacts, Packed, Servers, Stores};
use crate::reconcile::{Reconciler, run};

/// One cache and what fills it: the fake's collection prefix and plural.
struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: std::sync::Mutex<Writer<K>>,
    prefix: &'static str,
    plural: &'static str,
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + 'static,
{
    fn new(prefix: &'static str, plural: &'static str) -> (Store<K>, Self) {
        let (store, writer) = reflector::store();
        let cache = Self {
            writer: std::sync::Mutex::new(writer),
            prefix,
            plural,
        };
        (store, cache)
    }

    fn fill(&self, fake: &FakeApi) {
        let mut writer = self.writer.lock().expect("writer");
        writer.apply_watcher_event(&watcher::Event::Init);
        for object in fake.all(self.prefix, self.plural) {
            let object: K = serde_json::from_value(object).expect("a stored object");
            writer.apply_watcher_event(&watcher::Event::InitApply(object));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }
}

/// Every cache the Reconciler reads.
struct Caches {
    service_accounts: Cache<Packed<k8s_openapi::api::core::v1::ServiceAccount>>,
    cluster_role_bindings: Cache<k8s_openapi::api::rbac::v1::ClusterRoleBinding>,
    role_bindings: Cache<k8s_openapi::api::rbac::v1::RoleBinding>,
    secrets: Cache<Packed<k8s_openapi::api::core::v1::Secret>>,
    deployments: Cache<Packed<k8s_openapi::api::apps::v1::Deployment>>,
    services: Cache<Packed<k8s_openapi::api::core::v1::Service>>,
    pdbs: Cache<Packed<k8s_openapi::api::policy::v1::PodDisruptionBudget>>,
    api_services: Cache<crate::apiservice::APIService>,
    servers: Cache<ExtensionServer>,
    crds: std::sync::Mutex<Writer<PartialObjectMeta<CustomResourceDefinition>>>,
}

pub struct Scenario {
    pub fake: FakeApi,
    reconciler: Arc<Reconciler>,
    caches: Caches,
}

impl Scenario {
    pub fn new(fake: FakeApi) -> Self {
        fake.put(
            "/api/v1/namespaces/default/services",
            serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.1"},
            }),
        );
        let ctx = Context::from_parts(
            fake.client(),
            Arc::new(Metrics::default()),
            Settings::default(),
        );
        let (service_accounts, sa) = Cache::new("/api/v1", "serviceaccounts");
        let (cluster_role_bindings, crb) =
            Cache::new("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings");
        let (role_bindings, rb) = Cache::new("/apis/rbac.authorization.k8s.io/v1", "rolebindings");
        let (secrets, secret) = Cache::new("/api/v1", "secrets");
        let (deployments, deployment) = Cache::new("/apis/apps/v1", "deployments");
        let (services, service) = Cache::new("/api/v1", "services");
        let (pdbs, pdb) = Cache::new("/apis/policy/v1", "poddisruptionbudgets");
        let (api_services, apis) = Cache::new("/apis/apiregistration.k8s.io/v1", "apiservices");
        let (server_store, servers) =
            Cache::new("/apis/aggregation.dev/v1alpha1", "extensionservers");
        let (crd_store, crds) = reflector::store();
        let stores = Stores {
            service_accounts,
            cluster_role_bindings,
            role_bindings,
            secrets,
            deployments,
            services,
            pdbs,
            api_services,
        };
        let facts = ClusterFacts {
            namespaces: reflector::store().0,
            crds: crd_store,
            authentication: reflector::store().0,
        };
        let reconciler = Reconciler {
            ctx: Arc::new(ctx),
            stores,
            servers: Servers::from_store(server_store),
            facts,
            backoffs: Default::default(),
        };
        let caches = Caches {
            service_accounts: sa,
            cluster_role_bindings: crb,
            role_bindings: rb,
            secrets: secret,
            deployments: deployment,
            services: service,
            pdbs: pdb,
            api_services: apis,
            servers,
            crds: std::sync::Mutex::new(crds),
        };
        Self {
            fake,
            reconciler: Arc::new(reconciler),
            caches,
        }
    }

    /// The servers the prober wakes.
    pub fn wakes(
        &self,
    ) -> impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<ExtensionServer>> + use<>
    {
        self.reconciler.ctx.prober.wakes().expect("wakes")
    }

    /// Puts `grants` (a grants file) in force.
    pub fn grants(&self, grants: &str) {
        let grants = crate::trust::grants::Grants::parse(grants).expect("grants");
        *self.reconciler.ctx.grants.write().expect("grants") = Some(Arc::new(grants));
    }

    /// Creates the ExtensionServer in the fake, as `kubectl apply` would.
    pub fn create(&self, server: Value) {
        self.fake.put(
            "/apis/aggregation.dev/v1alpha1/namespaces/ns/extensionservers",
            server,
        );
    }

    /// A CustomResourceDefinition named `name` in the CRD cache.
    pub fn crd(&self, name: &str) {
        let crd = PartialObjectMeta::<CustomResourceDefinition> {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Default::default()
        };
        let mut writer = self.caches.crds.lock().expect("writer");
        writer.apply_watcher_event(&watcher::Event::Apply(crd));
    }

    /// One reconcile pass of `name`, from caches that show the fake as it is now.
    pub async fn pass(&self, name: &str) {
        let c = &self.caches;
        c.service_accounts.fill(&self.fake);
        c.cluster_role_bindings.fill(&self.fake);
        c.role_bindings.fill(&self.fake);
        c.secrets.fill(&self.fake);
        c.deployments.fill(&self.fake);
        c.services.fill(&self.fake);
        c.pdbs.fill(&self.fake);
        c.api_services.fill(&self.fake);
        c.servers.fill(&self.fake);
        let server = self
            .fake
            .get(
                "/apis/aggregation.dev/v1alpha1/namespaces/ns/extensionservers",
                name,
            )
            .expect("the server");
        let server: ExtensionServer = serde_json::from_value(server).expect("a server");
        run(Arc::new(server), &self.reconciler)
            .await
            .expect("a pass");
    }
}

/// A pod-backed server in namespace `ns` serving `group` v1.
pub fn server(name: &str, group: &str) -> Value {
    json!({
        "apiVersion": "aggregation.dev/v1alpha1",
        "kind": "ExtensionServer",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"group": group, "versions": [{"name": "v1"}], "image": "img"}
    })
}

/// The condition `type_` of server `name` as the fake holds it.
pub fn condition(fake: &FakeApi, name: &str, type_: &str) -> Value {
    let server = fake
        .get(
            "/apis/aggregation.dev/v1alpha1/namespaces/ns/extensionservers",
            name,
        )
        .expect("the server");
    server["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_else(|| panic!("no {type_} condition in {}", server["status"]))
}
