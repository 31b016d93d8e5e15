//! The test kit of the operator's three integration test binaries (`tests/cluster`,
//! `tests/chaos`, `tests/pure`): the CRD installed, an in-process operator scoped to the test's
//! namespace ([`Harness`]), waits on conditions (never sleeps), the ExtensionServer fixture
//! builder with its presets ([`fixture::Server`]), and the fault suite's parts.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

pub mod backend;
pub mod chaos;
pub mod chart;
pub mod faults;
pub mod fixture;
pub mod grants;
pub mod operator;
pub mod policy;
pub mod requests;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use extension_server_operator::context::{Context, Settings};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{CustomResourceExt, Resource};
use testenv::TestNamespace;
use tokio::task::JoinHandle;

/// A test namespace with an operator watching it.
pub struct Harness {
    pub ns: TestNamespace,
    pub ctx: Arc<Context>,
    operator: JoinHandle<()>,
    pub settings: Settings,
    make_client: Option<MakeClient>,
    /// The operator watches every namespace (on a dedicated instance), not only the test's.
    watch_all: bool,
}

/// Builds the operator's client from the test cluster's config (to put a layer on it).
pub type MakeClient = Arc<dyn Fn(kube::Config) -> kube::Client + Send + Sync>;

impl Drop for Harness {
    fn drop(&mut self) {
        self.operator.abort();
        if std::thread::panicking() {
            self.ns.dump();
        }
        remove_debris(&self.ns);
    }
}

/// Never leaves an unavailable APIService or a stuck finalizer of `ns` behind for other tests:
/// deletes the APIServices and bindings labelled for it and clears its servers' finalizers.
pub fn remove_debris(ns: &TestNamespace) {
    let selector = format!("aggregation.dev/extension-server-namespace={}", ns.name);
    // APIServices first, then the bindings the finalizer would have removed.
    for kind in ["apiservices", "clusterrolebindings"] {
        let _ = ns.kubectl(&["delete", kind, "-l", &selector, "--wait=false"]);
    }
    let _ = ns.kubectl(&[
        "delete",
        "rolebindings",
        "-n",
        "kube-system",
        "-l",
        &selector,
        "--wait=false",
    ]);
    let listed = ns.kubectl(&["get", "extensionservers", "-n", &ns.name, "-o", "name"]);
    for name in String::from_utf8_lossy(&listed.stdout).lines() {
        let _ = ns.kubectl(&[
            "patch",
            name,
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
    }
}

/// The sample server serves one fixed group (`my.custom.api`) and its APIService is
/// cluster-wide, so the tests that register it take turns: each holds this while it runs.
pub async fn sample_group_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

pub async fn install_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ExtensionServer::crd();
    let name = crd.meta().name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply("extension-server-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .unwrap()
    .unwrap();
}

impl Harness {
    pub async fn start(prefix: &str) -> Self {
        Self::start_with(prefix, Settings::default()).await
    }

    pub async fn start_with(prefix: &str, settings: Settings) -> Self {
        Self::start_with_client(prefix, settings, None).await
    }

    /// Like [`Harness::start_with`], with the operator's client built by `make_client` (each
    /// start of the operator calls it again).
    pub async fn start_with_client(
        prefix: &str,
        settings: Settings,
        make_client: Option<MakeClient>,
    ) -> Self {
        let ns = TestNamespace::create(prefix).await.unwrap();
        Self::start_in(ns, settings, make_client, false).await
    }

    /// Like [`Harness::start`], with the operator's client behind the fault layer `faults`.
    pub async fn start_behind(prefix: &str, faults: &faults::Faults) -> Self {
        Self::start_with_client(prefix, Settings::default(), Some(faults.make_client())).await
    }

    /// Like [`Harness::start_with`], on dedicated instance `instance` (for tests whose objects
    /// are cluster-wide), with the guard that tears the instance down. Bind the guard first,
    /// `let (_instance, h) = ...`, so that it drops after the Harness.
    pub async fn on_instance(
        instance: &'static str,
        prefix: &str,
        settings: Settings,
    ) -> (testenv::cluster::TearDown, Self) {
        Self::instance(instance, prefix, settings, false).await
    }

    /// Like [`Harness::on_instance`], with an operator that watches every namespace of the
    /// instance, as one deployed with the chart does.
    pub async fn watching_all(
        instance: &'static str,
        prefix: &str,
        settings: Settings,
    ) -> (testenv::cluster::TearDown, Self) {
        Self::instance(instance, prefix, settings, true).await
    }

    async fn instance(
        instance: &'static str,
        prefix: &str,
        settings: Settings,
        watch_all: bool,
    ) -> (testenv::cluster::TearDown, Self) {
        let guard = testenv::cluster::TearDown(instance);
        let cluster = testenv::cluster::up(instance).await.unwrap();
        let ns = TestNamespace::create_on(cluster, prefix).await.unwrap();
        (guard, Self::start_in(ns, settings, None, watch_all).await)
    }

    async fn start_in(
        ns: TestNamespace,
        settings: Settings,
        make_client: Option<MakeClient>,
        watch_all: bool,
    ) -> Self {
        install_crd(&ns.client).await;
        let watch = (!watch_all).then(|| ns.name.clone());
        let (ctx, operator) = spawn_operator(&ns, &settings, make_client.as_ref(), watch).await;
        Self {
            ns,
            ctx,
            operator,
            settings,
            make_client,
            watch_all,
        }
    }

    /// Replaces how the next [`Harness::start_operator`] builds its client.
    pub fn set_client(&mut self, make_client: Option<MakeClient>) {
        self.make_client = make_client;
    }

    /// Stops the operator, as if its process had died.
    pub async fn stop_operator(&mut self) {
        if self.operator.is_finished() {
            return;
        }
        self.operator.abort();
        let _ = (&mut self.operator).await;
    }

    /// Starts a fresh operator (new caches, new metrics) with the same settings.
    pub async fn start_operator(&mut self) {
        let watch = (!self.watch_all).then(|| self.ns.name.clone());
        let (ctx, operator) =
            spawn_operator(&self.ns, &self.settings, self.make_client.as_ref(), watch).await;
        self.ctx = ctx;
        self.operator = operator;
    }

    pub fn servers(&self) -> Api<ExtensionServer> {
        self.ns.api()
    }

    /// Creates the ExtensionServer `server` describes in the test's namespace.
    pub async fn create(&self, server: &fixture::Server) -> ExtensionServer {
        let server = server.clone().namespace(&self.ns.name).build();
        self.servers()
            .create(&PostParams::default(), &server)
            .await
            .unwrap()
    }

    /// Waits until the named ExtensionServer has condition `type_` with `status` (and reason).
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> ExtensionServer {
        let (type_, status, reason) = (
            type_.to_string(),
            status.to_string(),
            reason.map(str::to_string),
        );
        let matches = move |server: Option<&ExtensionServer>| {
            server
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
                .is_some_and(|c| {
                    c.status == status && reason.as_ref().is_none_or(|r| *r == c.reason)
                })
        };
        self.wait(name, matches).await
    }

    /// Waits until the named ExtensionServer's condition `type_` has a message containing `text`.
    pub async fn wait_message(&self, name: &str, type_: &str, text: &str) -> ExtensionServer {
        let (type_, text) = (type_.to_string(), text.to_string());
        self.wait(name, move |server: Option<&ExtensionServer>| {
            server
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
                .is_some_and(|c| c.message.contains(&text))
        })
        .await
    }

    /// Deletes the named ExtensionServer and waits until it is gone.
    pub async fn delete_and_wait(&self, name: &str) {
        let uid = self.servers().get(name).await.unwrap().metadata.uid;
        self.servers()
            .delete(name, &Default::default())
            .await
            .unwrap();
        let uid = uid.unwrap_or_default();
        let gone = kube::runtime::wait::conditions::is_deleted(&uid);
        wait_for(self.servers(), name, gone).await;
    }

    pub async fn wait(
        &self,
        name: &str,
        condition: impl Condition<ExtensionServer>,
    ) -> ExtensionServer {
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(self.servers(), name, condition),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out waiting on ExtensionServer {name}"))
        .unwrap()
        .unwrap()
    }
}

/// A test namespace on `cluster` (a dedicated instance) with the CRD and an in-process
/// operator watching it.
pub async fn operator_on(
    cluster: testenv::Cluster,
    prefix: &str,
) -> (TestNamespace, JoinHandle<()>) {
    let ns = TestNamespace::create_on(cluster, prefix).await.unwrap();
    install_crd(&ns.client).await;
    let watch = Some(ns.name.clone());
    let (_, operator) = spawn_operator(&ns, &Settings::default(), None, watch).await;
    (ns, operator)
}

/// Runs an operator on `ns`'s cluster that watches namespace `watch` (every one with `None`).
async fn spawn_operator(
    ns: &TestNamespace,
    settings: &Settings,
    make_client: Option<&MakeClient>,
    watch: Option<String>,
) -> (Arc<Context>, JoinHandle<()>) {
    let config = config_for(ns).await;
    let ctx = Arc::new(match make_client {
        None => Context::connect(config, settings.clone()).unwrap(),
        Some(make) => Context::from_parts(make(config), Default::default(), settings.clone()),
    });
    let operator = tokio::spawn(extension_server_operator::controller::run(
        ctx.clone(),
        watch,
    ));
    (ctx, operator)
}

/// The admin kubeconfig of the test cluster as a client config.
pub async fn config_for(ns: &TestNamespace) -> kube::Config {
    let kubeconfig = kube::config::Kubeconfig::read_from(&ns.cluster.kubeconfig).unwrap();
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap()
}

/// Waits until `condition` holds for the named object of any kind.
pub async fn wait_for<K>(api: Api<K>, name: &str, condition: impl Condition<K>) -> Option<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api, name, condition),
    )
    .await
    .unwrap_or_else(|_| panic!("timed out waiting on {name}"))
    .unwrap()
}

/// The ExtensionServer's condition `type_`; panics if it has none.
pub fn condition<'a>(
    server: &'a ExtensionServer,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    server
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

/// A wait condition: the ExtensionServer has condition `type_` with status True.
pub fn is_true(type_: &'static str) -> impl Fn(Option<&ExtensionServer>) -> bool + Send + 'static {
    move |server| {
        server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
        })
    }
}

/// Deletes the named object and waits until one with a new uid (recreated) exists.
pub async fn delete_and_wait_recreated<K>(api: Api<K>, name: &str) -> K
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let old = api.get(name).await.unwrap().meta().uid.clone().unwrap();
    api.delete(name, &Default::default()).await.unwrap();
    let recreated =
        move |k: Option<&K>| k.is_some_and(|k| k.meta().uid.as_deref() != Some(old.as_str()));
    wait_for(api, name, recreated).await.unwrap()
}

/// Re-checks `check` every 250 ms until it passes or `timeout` elapses. Only for state that has
/// no watch API, such as the aggregated discovery documents kubectl reads.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            ticks.tick().await;
            if check().await {
                return;
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "timed out waiting for {what}");
}

fn der_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .map(|p| rustls_pki_types::CertificateDer::from(p.unwrap().contents))
        .collect()
}

/// rustls verifies `serving` for `host` against the CA bundle, now.
pub fn bundle_verifies(bundle: &[u8], serving: &[u8], host: &str) -> bool {
    use rustls::client::danger::ServerCertVerifier;
    let mut roots = rustls::RootCertStore::empty();
    for ca in der_certs(bundle) {
        roots.add(ca).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let chain = der_certs(serving);
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &rustls_pki_types::ServerName::try_from(host.to_string()).unwrap(),
            &[],
            rustls_pki_types::UnixTime::now(),
        )
        .is_ok()
}

/// The Warning Events with `reason` in the test's namespace: name and series count.
pub async fn warnings(ns: &TestNamespace, reason: &str) -> std::collections::BTreeMap<String, i32> {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = ns.api();
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            let count = e.series.as_ref().map_or(1, |s| s.count);
            (e.metadata.name.unwrap_or_default(), count)
        })
        .collect()
}

/// Creates or replaces the Secret `name` as cert-manager writes it: type `kubernetes.io/tls`
/// with `ca.crt`, `tls.crt` and `tls.key`.
pub async fn write_cert_manager_secret(
    ns: &TestNamespace,
    name: &str,
    ca: &extension_server_operator::tls::certs::KeyedCert,
    serving: &extension_server_operator::tls::certs::KeyedCert,
) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let bytes = |pem: &str| ByteString(pem.as_bytes().to_vec());
    let mut secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(std::collections::BTreeMap::from([
            ("ca.crt".to_string(), bytes(&ca.cert_pem)),
            ("tls.crt".to_string(), bytes(&serving.cert_pem)),
            ("tls.key".to_string(), bytes(&serving.key_pem)),
        ])),
        ..Default::default()
    };
    let secrets: Api<Secret> = ns.api();
    match secrets.get_opt(name).await.unwrap() {
        None => secrets.create(&PostParams::default(), &secret).await,
        Some(live) => {
            secret.metadata.resource_version = live.metadata.resource_version;
            secrets.replace(name, &PostParams::default(), &secret).await
        }
    }
    .unwrap();
}

/// Creates Secret `name` in `ns` with these keys (PEM text and the like).
pub async fn create_secret(ns: &TestNamespace, name: &str, data: &[(&str, &str)]) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}
