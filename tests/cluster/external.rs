//! External servers: the sample server runs as a plain process at a loopback address outside
//! the Service range, registered through `spec.external` with the user's CA. The aggregator
//! reaches it through the operator's ExternalName Service; stopping it is reported. A loopback
//! host opens only to a grant that names it exactly.

use std::time::Duration;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::context::Settings;
use extension_server_operator::tls::certs;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::wait::conditions;
use kube::runtime::{WatchStreamExt, watcher};

use crate::support;
use crate::support::Harness;
use crate::support::backend::Backend;
use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;

/// Loopback, outside the cluster's Service range (127.64.0.0/16).
const HOST: &str = "127.0.9.1";
const NAME: &str = "outside";
const GROUP: &str = "outside.custom.api";

fn free_port() -> u16 {
    std::net::TcpListener::bind((HOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user's CA in a Secret, and a serving certificate from it for `<name>.<ns>.svc`.
async fn user_ca(h: &Harness) -> certs::KeyedCert {
    let lifetime = Duration::from_secs(24 * 3600);
    let ca = certs::generate_ca("outside ca", Timestamp::now(), lifetime).unwrap();
    support::create_secret(&h.ns, "outside-ca", &[("ca.crt", ca.cert_pem.as_str())]).await;
    let dns = vec![format!("{NAME}.{}.svc", h.ns.name)];
    certs::issue_serving(&ca, &dns, Timestamp::now(), lifetime).unwrap()
}

async fn list_through_aggregator(h: &Harness, group: &str) -> Result<usize, String> {
    let path = format!("/apis/{group}/v1/namespaces/default/myresources");
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    let list: serde_json::Value =
        h.ns.client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
    Ok(list["items"].as_array().map_or(0, Vec::len))
}

/// The sample server as a process at `host:port`, serving `serving`.
async fn spawn_outside(
    h: &Harness,
    host: &str,
    port: u16,
    serving: &certs::KeyedCert,
    group: &str,
) -> tokio::process::Child {
    let dir = testenv::paths::workspace_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let tag = format!("{}-{host}", h.ns.name);
    let (cert, key) = (
        dir.join(format!("{tag}-tls.crt")),
        dir.join(format!("{tag}-tls.key")),
    );
    std::fs::write(&cert, &serving.cert_pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    let args = [
        format!("--bind-address={host}"),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--kubeconfig={}", h.ns.cluster.kubeconfig.display()),
        format!("--group={group}"),
    ];
    let log = dir.join(format!("{tag}-outside.log"));
    testenv::runtime::spawn_sample_server(&args, &log)
        .await
        .unwrap()
}

/// A grant of `group` and `external` (a YAML mapping) to the harness's namespace.
fn grant(h: &Harness, group: &str, external: &str, extra: &str) -> String {
    format!(
        "grants: [{{namespaces: [{}], groups: [{group}], external: {external}{extra}}}]\n",
        h.ns.name
    )
}

#[tokio::test]
async fn an_external_server_is_registered_and_its_outage_reported() {
    let grants = GrantsFile::new("external", "grants: []\n");
    let h = Harness::start_with("external", grants.settings()).await;
    let port = free_port();
    grants.write(&grant(
        &h,
        GROUP,
        &format!("{{hosts: [{HOST}], ports: [{port}]}}"),
        "",
    ));
    let serving = user_ca(&h).await;
    let server = spawn_outside(&h, HOST, port, &serving, GROUP).await;

    h.create(
        &Server::new(NAME)
            .group(GROUP)
            .external(HOST, port)
            .tls("{mode: Secret, secretName: outside-ca}"),
    )
    .await;
    let ready = h.wait_condition(NAME, "Ready", "True", None).await;
    let reachable = support::condition(&ready, "BackendReachable");
    assert_eq!(reachable.reason, "BackendReachable", "{reachable:?}");
    assert!(
        ready
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.type_ != "DeploymentAvailable")
    );

    // Nothing runs in the cluster: an ExternalName Service, no Deployment, no bindings.
    let services: Api<Service> = h.ns.api();
    let spec = services.get(NAME).await.unwrap().spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
    assert_eq!(spec.external_name.as_deref(), Some(HOST));
    let deployments: Api<Deployment> = h.ns.api();
    assert!(deployments.get_opt(NAME).await.unwrap().is_none());
    let bindings = h.ns.kubectl(&[
        "get",
        "clusterrolebindings",
        "-l",
        &format!("aggregation.dev/extension-server-namespace={}", h.ns.name),
        "-o",
        "name",
    ]);
    assert!(String::from_utf8_lossy(&bindings.stdout).trim().is_empty());

    // Requests go through the aggregator to the process, verified against the user's CA.
    support::eventually(
        Duration::from_secs(60),
        "myresources through the aggregator",
        || {
            let h = &h;
            async move { list_through_aggregator(h, GROUP).await == Ok(3) }
        },
    )
    .await;
    let listed =
        h.ns.kubectl(&["get", &format!("myresources.{GROUP}"), "-n", "default"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("alpha"),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // The server stops: status says so, and what to do.
    drop(server);
    // The aggregator's verdict prompts a probe at once (the probe runs outside the pass).
    h.wait_condition(NAME, "Available", "False", None).await;
    let down = h
        .wait_condition(NAME, "BackendReachable", "False", None)
        .await;
    let available = support::condition(&down, "Available");
    let target = format!("{HOST}:{port}");
    assert!(
        available.message.contains(&target) && available.message.contains("start it"),
        "{available:?}"
    );
    let reachable = support::condition(&down, "BackendReachable");
    assert_eq!(reachable.status, "False", "{reachable:?}");
    assert!(
        reachable
            .message
            .to_lowercase()
            .contains("connection refused"),
        "{reachable:?}"
    );

    // Deleting it leaves no unavailable APIService behind.
    let uid = down.metadata.uid.clone().unwrap();
    h.servers().delete(NAME, &Default::default()).await.unwrap();
    support::wait_for(h.servers(), NAME, conditions::is_deleted(&uid)).await;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let name = format!("v1.{GROUP}");
    assert!(api_services.get_opt(&name).await.unwrap().is_none());
}

#[tokio::test]
async fn a_refused_external_server_reports_its_backend_not_a_deployment() {
    let h = Harness::start("external-refused").await;
    // aggregation.dev is a CustomResourceDefinition's group, so the claim is refused.
    h.create(
        &Server::new("refused")
            .group("aggregation.dev")
            .versions(&["v9"])
            .external("192.0.2.10", 9443)
            .tls("{mode: Insecure}"),
    )
    .await;
    let refused = h
        .wait_condition("refused", "Ready", "False", Some("ProtectedGroup"))
        .await;
    let reachable = support::condition(&refused, "BackendReachable");
    assert_eq!(
        (reachable.status.as_str(), reachable.reason.as_str()),
        ("Unknown", "ProtectedGroup"),
        "{reachable:?}"
    );
    let types: Vec<&str> = refused
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert!(!types.contains(&"DeploymentAvailable"), "{types:?}");
}

#[tokio::test]
async fn a_loopback_backend_in_insecure_mode_opens_only_to_a_grant_that_names_it() {
    const LOOPBACK: &str = "127.0.9.3";
    const LOOPBACK_GROUP: &str = "loopback.custom.api";
    let grants = GrantsFile::new("external-loopback", "grants: []\n");
    let h = Harness::start_with("external-loopback", grants.settings()).await;
    let port = free_port();
    let exact = format!("{{hosts: [{LOOPBACK}], ports: [{port}]}}");
    let lifetime = Duration::from_secs(3600);
    let ca = certs::generate_ca("loopback ca", Timestamp::now(), lifetime).unwrap();
    let dns = vec![format!("{NAME}.{}.svc", h.ns.name)];
    let serving = certs::issue_serving(&ca, &dns, Timestamp::now(), lifetime).unwrap();
    let _server = spawn_outside(&h, LOOPBACK, port, &serving, LOOPBACK_GROUP).await;

    // The host is granted exactly, but skipping TLS verification is not.
    grants.write(&grant(&h, LOOPBACK_GROUP, &exact, ""));
    h.create(
        &Server::new(NAME)
            .group(LOOPBACK_GROUP)
            .external(LOOPBACK, port)
            .tls("{mode: Insecure}"),
    )
    .await;
    let refused = h
        .wait_message(NAME, "Ready", "tls.mode Insecure is not granted")
        .await;
    assert_eq!(support::condition(&refused, "Ready").reason, "NotGranted");

    // Insecure is granted, and loopback only through a CIDR: still refused, and the backend is
    // never dialled for the tenant.
    grants.write(&grant(
        &h,
        LOOPBACK_GROUP,
        "{hosts: [127.0.0.0/8]}",
        ", allowInsecure: true",
    ));
    let refused = h.wait_message(NAME, "Ready", "is a loopback address").await;
    let reachable = support::condition(&refused, "BackendReachable");
    assert_eq!(reachable.status, "Unknown", "{reachable:?}");
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let name = format!("v1.{LOOPBACK_GROUP}");
    assert!(api_services.get_opt(&name).await.unwrap().is_none());

    // A grant that lists the address itself opens it.
    grants.write(&grant(&h, LOOPBACK_GROUP, &exact, ", allowInsecure: true"));
    h.wait_condition(NAME, "Ready", "True", None).await;
    support::eventually(
        Duration::from_secs(60),
        "myresources through the aggregator",
        || {
            let h = &h;
            async move { list_through_aggregator(h, LOOPBACK_GROUP).await == Ok(3) }
        },
    )
    .await;
    h.delete_and_wait(NAME).await;
    assert!(api_services.get_opt(&name).await.unwrap().is_none());
}

#[tokio::test]
async fn a_removed_server_comes_back_only_once_discovery_answers() {
    let grants = GrantsFile::new("discovery-hold", "grants: []\n");
    let settings = Settings {
        max_unavailable: Duration::from_secs(5),
        ..grants.settings()
    };
    let h = Harness::start_with("ext-hold", settings).await;
    let group = format!("{}.custom.api", h.ns.name);
    let port = free_port();
    grants.write(&grant(
        &h,
        &group,
        &format!("{{hosts: [{HOST}], ports: [{port}]}}"),
        "",
    ));
    // TLS and /readyz answer; GET /apis/<group>/v1 answers 503.
    let serving = user_ca(&h).await;
    let backend = Backend::start(HOST, port, &serving, 503).await;
    h.create(
        &Server::new(NAME)
            .group(&group)
            .external(HOST, port)
            .tls("{mode: Secret, secretName: outside-ca}"),
    )
    .await;
    let s = h
        .wait_condition(NAME, "Registered", "False", Some("Unregistered"))
        .await;
    let message = &support::condition(&s, "Registered").message;
    assert!(message.contains("GET /apis/<group>/<version>"), "{message}");

    // Four caps long, the APIService stays away: the handshake answers, discovery does not.
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let name = format!("v1.{group}");
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut appearing = watcher(api_services.clone(), config)
        .applied_objects()
        .boxed();
    let came_back = tokio::time::timeout(Duration::from_secs(20), appearing.next()).await;
    assert!(
        came_back.is_err(),
        "registered again while discovery failed: {came_back:?}"
    );

    // Discovery answers: registered again, and available.
    backend.answer_discovery(200);
    h.wait_condition(NAME, "Available", "True", None).await;
    h.delete_and_wait(NAME).await;
}

/// A name (not `localhost`, which is refused by name) that this machine resolves to loopback:
/// its own hostname, which the sandbox's /etc/hosts maps to 127.0.0.1.
fn loopback_name() -> String {
    use std::net::ToSocketAddrs;
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let candidates = [hostname.trim(), "vm", "runsc"];
    candidates
        .into_iter()
        .filter(|name| !name.is_empty() && !name.contains("localhost"))
        .find(|name| {
            (*name, 443)
                .to_socket_addrs()
                .is_ok_and(|mut addresses| addresses.any(|a| a.ip().is_loopback()))
        })
        .expect("a hostname of this machine resolves to a loopback address")
        .to_string()
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_never_registered_even_with_policy_always() {
    // Without grants every host is open but the restricted ones, and Insecure is allowed.
    let h = Harness::start("ext-screen").await;
    let group = format!("{}.custom.api", h.ns.name);
    let host = loopback_name();
    let port = free_port();
    let serving = user_ca(&h).await;
    let _backend = Backend::start("127.0.0.1", port, &serving, 200).await;
    h.create(
        &Server::new(NAME)
            .group(&group)
            .external(&host, port)
            .tls("{mode: Insecure}")
            .extra("{registration: {policy: Always}}"),
    )
    .await;
    let s = h
        .wait_condition(NAME, "BackendReachable", "False", None)
        .await;
    let message = &support::condition(&s, "BackendReachable").message;
    assert!(
        message.contains(&format!("{host} resolves to 127.")),
        "{message}"
    );

    // The aggregator would resolve the name itself and dial loopback: nothing is registered.
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let name = format!("v1.{group}");
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut appearing = watcher(api_services, config).applied_objects().boxed();
    let registered = tokio::time::timeout(Duration::from_secs(15), appearing.next()).await;
    assert!(registered.is_err(), "registered: {registered:?}");
    h.delete_and_wait(NAME).await;
}

/// The `kubernetes` EndpointSlice kube-apiserver's endpoint reconciler would write (the local
/// control plane runs without one), deleted when dropped.
struct ApiserverEndpoints<'a>(&'a testenv::TestNamespace);

impl<'a> ApiserverEndpoints<'a> {
    fn write(ns: &'a testenv::TestNamespace, address: &str) -> Self {
        let slice = format!(
            r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"kubernetes","namespace":"default","labels":{{"kubernetes.io/service-name":"kubernetes"}}}},"addressType":"IPv4","endpoints":[{{"addresses":["{address}"]}}],"ports":[{{"name":"https","port":6443,"protocol":"TCP"}}]}}"#
        );
        let out = support::chart::kubectl_stdin(ns, &["apply", "-f", "-"], slice.as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(ns)
    }
}

impl Drop for ApiserverEndpoints<'_> {
    fn drop(&mut self) {
        self.0.kubectl(&[
            "delete",
            "endpointslice",
            "kubernetes",
            "-n",
            "default",
            "--ignore-not-found",
        ]);
    }
}

#[tokio::test]
async fn kube_apiservers_own_endpoint_addresses_are_restricted() {
    let ns = testenv::TestNamespace::create("ext-apiserver")
        .await
        .unwrap();
    let address = "10.77.0.9";
    let _endpoints = ApiserverEndpoints::write(&ns, address);
    // An operator that starts now reads the addresses when it first judges an external host.
    let h = Harness::start("ext-apiserver").await;
    h.create(
        &Server::own_group("apiserver")
            .external(address, 6443)
            .tls("{mode: Insecure}"),
    )
    .await;
    let s = h
        .wait_condition("apiserver", "Registered", "False", Some("NotGranted"))
        .await;
    let message = &support::condition(&s, "Registered").message;
    assert!(
        message.contains("an address of kube-apiserver itself"),
        "{message}"
    );
    h.delete_and_wait("apiserver").await;
}
