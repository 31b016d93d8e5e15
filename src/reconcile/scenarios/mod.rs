//! The reconcile of the main scenarios against an in-memory API ([`fake_api`]), in
//! milliseconds: each pass fills the caches from the fake, runs the whole pipeline and leaves
//! its writes in the fake's log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken scenario should fail loudly

mod fake_api;
mod harness;

use serde_json::json;

use fake_api::FakeApi;
use harness::{Scenario, condition, server};

const SERVERS: &str = "/apis/aggregation.dev/v1alpha1/namespaces/ns/extensionservers";
const APISERVICES: &str = "/apis/apiregistration.k8s.io/v1/apiservices";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/ns/deployments";
const SECRETS: &str = "/api/v1/namespaces/ns/secrets";

fn children_only(writes: &[String]) -> Vec<&str> {
    writes
        .iter()
        .map(String::as_str)
        .filter(|w| !w.contains("events"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_new_server_gets_its_children_in_order_then_registers_once_a_replica_is_ready() {
    let s = Scenario::new(FakeApi::default());
    s.create(server("srv", "g.example.com"));
    s.pass("srv").await;
    assert_eq!(
        children_only(&s.fake.take_writes()),
        [
            "POST secrets",
            "PATCH serviceaccounts/srv",
            "PATCH clusterrolebindings/aggregation.dev:ns:srv:auth-delegator",
            "PATCH rolebindings/aggregation.dev:ns:srv:auth-reader",
            "PATCH secrets/srv-tls",
            "PATCH deployments/srv",
            "PATCH services/srv",
            "PATCH extensionservers/srv/status",
        ],
        "the CA first (create-only, its labels and applied hash included), then the documented order; no APIService yet"
    );
    let registered = condition(&s.fake, "srv", "Registered");
    assert_eq!(registered["reason"], "WaitingForReadyReplicas");
    assert_eq!(registered["observedGeneration"], 1);
    assert!(
        s.fake
            .all("/apis/apiregistration.k8s.io/v1", "apiservices")
            .is_empty()
    );

    s.fake.edit(DEPLOYMENTS, "srv", |d| {
        d["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1});
    });
    s.pass("srv").await;
    assert_eq!(
        children_only(&s.fake.take_writes()),
        ["POST apiservices", "PATCH extensionservers/srv/status"],
        "created whole (create-only): one write"
    );
    let api_service = s
        .fake
        .get(APISERVICES, "v1.g.example.com")
        .expect("registered");
    let ca = s.fake.get(SECRETS, "srv-ca").expect("the CA Secret");
    assert_eq!(api_service["spec"]["caBundle"], ca["data"]["ca.crt"]);
    assert_eq!(api_service["spec"]["insecureSkipTLSVerify"], false);
    assert_eq!(api_service["spec"]["service"]["name"], "srv");
    assert_eq!(condition(&s.fake, "srv", "Registered")["status"], "True");
}

#[tokio::test(start_paused = true)]
async fn a_steady_state_makes_no_write() {
    let s = Scenario::new(FakeApi::default());
    s.create(server("srv", "g.example.com"));
    s.pass("srv").await;
    s.fake.edit(DEPLOYMENTS, "srv", |d| {
        d["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1});
    });
    s.pass("srv").await;
    s.fake.take_writes();
    s.pass("srv").await;
    s.pass("srv").await;
    assert_eq!(s.fake.take_writes(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_foreign_apiservice_is_reported_and_left_alone() {
    let s = Scenario::new(FakeApi::default());
    s.fake.put(
        APISERVICES,
        json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1.g.example.com"},
            "spec": {"group": "g.example.com", "version": "v1", "groupPriorityMinimum": 100,
                     "versionPriority": 1, "service": {"namespace": "other", "name": "theirs"}}
        }),
    );
    s.create(server("srv", "g.example.com"));
    s.pass("srv").await;
    s.fake.edit(DEPLOYMENTS, "srv", |d| {
        d["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1});
    });
    s.pass("srv").await;
    let writes = s.fake.take_writes();
    assert!(
        !writes.iter().any(|w| w.contains("apiservices")),
        "{writes:?}"
    );
    let registered = condition(&s.fake, "srv", "Registered");
    assert_eq!(registered["reason"], "Conflict");
    assert!(
        registered["message"]
            .as_str()
            .unwrap()
            .contains("not managed by this operator")
    );
    let theirs = s.fake.get(APISERVICES, "v1.g.example.com").unwrap();
    assert_eq!(theirs["spec"]["service"]["name"], "theirs");
}

#[tokio::test(start_paused = true)]
async fn a_group_a_crd_serves_gets_nothing_but_status() {
    let s = Scenario::new(FakeApi::default());
    s.crd("widgets.g.example.com");
    s.create(server("srv", "g.example.com"));
    s.pass("srv").await;
    assert_eq!(
        children_only(&s.fake.take_writes()),
        ["PATCH extensionservers/srv/status"]
    );
    let registered = condition(&s.fake, "srv", "Registered");
    assert_eq!(registered["reason"], "ProtectedGroup");
    assert!(
        registered["message"]
            .as_str()
            .unwrap()
            .contains("widgets.g.example.com")
    );
}

#[tokio::test(start_paused = true)]
async fn an_external_server_gets_a_service_and_no_workload() {
    // A port nothing listens on: the backend is reported unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = Scenario::new(FakeApi::default());
    // A loopback backend opens only to a grant that names it.
    s.grants(&format!(
        "grants: [{{namespaces: [ns], groups: [x.example.com], allowInsecure: true, external: {{hosts: [127.0.0.1], ports: [{port}]}}}}]"
    ));
    let mut external = server("ext", "x.example.com");
    let spec = external["spec"].as_object_mut().unwrap();
    spec.remove("image");
    spec.insert(
        "external".into(),
        json!({"host": "127.0.0.1", "port": port}),
    );
    spec.insert("tls".into(), json!({"mode": "Insecure"}));
    s.create(external);
    let mut wakes = Box::pin(s.wakes());
    // The pass does not wait for the probe: it reports it pending, and its finding wakes the
    // server for another pass.
    s.pass("ext").await;
    let probing = condition(&s.fake, "ext", "BackendReachable");
    assert_eq!(
        (&probing["status"], &probing["reason"]),
        (&json!("Unknown"), &json!("Probing"))
    );
    let woken = futures::StreamExt::next(&mut wakes).await.expect("a wake");
    assert_eq!(woken.name, "ext");
    s.pass("ext").await;
    let writes = children_only(&s.fake.take_writes()).join(" ");
    assert!(writes.contains("PATCH services/ext"), "{writes}");
    for absent in [
        "deployments",
        "serviceaccounts",
        "clusterrolebindings",
        "secrets",
    ] {
        assert!(!writes.contains(absent), "{absent} in {writes}");
    }
    let reachable = condition(&s.fake, "ext", "BackendReachable");
    assert_eq!(reachable["status"], "False");
    assert!(reachable["message"].as_str().unwrap().contains("dial tcp"));
    let service = s.fake.get("/api/v1/namespaces/ns/services", "ext").unwrap();
    assert_eq!(service["spec"]["type"], "ExternalName");
    assert!(s.fake.get(SERVERS, "ext").is_some());
}
