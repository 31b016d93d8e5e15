//! The seed's story end to end: kubectl -> kube-apiserver -> aggregator -> TLS -> the sample
//! extension server (run by the pod-runtime stand-in) and back. The sample server serves one
//! fixed group, so these tests take turns.

use std::collections::BTreeMap;
use std::time::Duration;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::tls::certs;
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::conditions;
use kube::runtime::{WatchStreamExt, watcher};
use testenv::runtime;

use crate::support;
use crate::support::fixture::Server;
use crate::support::{Harness, wait_for};

const NAME: &str = "my-extension-server";
const API_SERVICE: &str = "v1.my.custom.api";

fn args_with_port(port: u16) -> serde_json::Value {
    serde_json::json!({"spec": {"args": [
        format!("--secure-port={port}"),
        "--tls-cert-file=/var/run/extension-server/tls/tls.crt",
        "--tls-private-key-file=/var/run/extension-server/tls/tls.key",
    ]}})
}

async fn available(h: &Harness) -> ExtensionServer {
    h.wait_condition(NAME, "Ready", "True", None).await
}

fn series_count(event: &Event) -> i32 {
    event.series.as_ref().map(|s| s.count).unwrap_or(1)
}

/// Waits (on a watch) for a Warning Event with `reason` that is new or repeated since `known`.
async fn new_warning(h: &Harness, reason: &str, known: &BTreeMap<String, i32>) {
    let events: Api<Event> = h.ns.api();
    let mut stream = watcher(events, watcher::Config::default())
        .applied_objects()
        .boxed();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(event)) = stream.next().await {
            let name = event.metadata.name.clone().unwrap_or_default();
            if event.reason.as_deref() == Some(reason)
                && event.type_.as_deref() == Some("Warning")
                && known.get(&name) != Some(&series_count(&event))
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no new {reason} Warning Event"));
}

/// Waits for Available=False whose message contains `cause`, and a new Warning Event.
async fn broken(h: &Harness, cause: &str, known: &BTreeMap<String, i32>) -> String {
    let cause_owned = cause.to_string();
    let server = h
        .wait(NAME, move |s: Option<&ExtensionServer>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Available"))
                .is_some_and(|c| c.status == "False" && c.message.contains(&cause_owned))
        })
        .await;
    new_warning(h, "DiscoveryFailed", known).await;
    support::condition(&server, "Available").message.clone()
}

#[tokio::test]
async fn happy_path_through_the_real_aggregator() {
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("e2e-happy").await;
    h.create(&Server::sample(NAME).tls("{mode: Managed}")).await;
    let _pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    let server = available(&h).await;
    let status = server.status.unwrap();
    assert_eq!(status.api_services[0].available, "True");

    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let condition = api_services
        .get(API_SERVICE)
        .await
        .unwrap()
        .available()
        .cloned()
        .unwrap();
    assert_eq!(condition.status, "True", "set by the aggregator");

    // kube-apiserver refreshes its discovery documents from the server asynchronously.
    let started = std::time::Instant::now();
    support::eventually(
        Duration::from_secs(60),
        "myresources in discovery",
        || async {
            let out =
                h.ns.kubectl(&["api-resources", "--api-group=my.custom.api"]);
            String::from_utf8_lossy(&out.stdout).contains("myresources")
        },
    )
    .await;
    eprintln!(
        "discovery caught up {} ms after Ready",
        started.elapsed().as_millis()
    );
    let out =
        h.ns.kubectl(&["get", "myresources.my.custom.api", "-n", "default"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for item in ["alpha", "beta", "gamma"] {
        assert!(listed.contains(item), "{listed}");
    }
    let out = h.ns.kubectl(&["get", "--raw", "/apis/my.custom.api/v1"]);
    let discovery: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(discovery["groupVersion"], "my.custom.api/v1");
    assert_eq!(discovery["resources"][0]["name"], "myresources");

    // An authenticated user without RBAC: the sample server's SubjectAccessReview says no.
    let out = h.ns.kubectl(&[
        "--as=nobody",
        "get",
        "myresources.my.custom.api",
        "-n",
        "default",
    ]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        error.contains("forbidden")
            && error.contains(
                r#"User "nobody" cannot list resource "myresources" in API group "my.custom.api""#
            ),
        "{error}"
    );
}

#[tokio::test]
async fn breakages_are_diagnosed_and_clear_after_the_fix() {
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("e2e-break").await;
    h.create(&Server::sample(NAME).tls("{mode: Managed}")).await;
    let pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    available(&h).await;

    // 1. The server stopped.
    let before = support::warnings(&h.ns, "DiscoveryFailed").await;
    drop(pod);
    let message = broken(&h, "nothing answers HTTPS", &before).await;
    assert!(message.contains("spec.port (443)"), "{message}");
    let pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    available(&h).await;

    // 2. The server listens on another port than spec.port.
    let before = support::warnings(&h.ns, "DiscoveryFailed").await;
    h.servers()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(args_with_port(8444)),
        )
        .await
        .unwrap();
    broken(&h, "spec.port (443)", &before).await;
    h.servers()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(args_with_port(443)),
        )
        .await
        .unwrap();
    available(&h).await;

    // 3. The server presents a certificate from another CA. The aggregator's availability
    // check does not verify TLS; the operator's handshake does.
    let before = support::warnings(&h.ns, "DiscoveryFailed").await;
    let now = Timestamp::now();
    let other_ca = certs::generate_ca("someone else's CA", now, Duration::from_secs(3600)).unwrap();
    let names = vec![format!("{NAME}.{}.svc", h.ns.name)];
    let foreign = certs::issue_serving(&other_ca, &names, now, Duration::from_secs(3600)).unwrap();
    pod.serve_certificate(Some((
        foreign.cert_pem.into_bytes(),
        foreign.key_pem.into_bytes(),
    )));
    let message = broken(&h, "TLS verification failed", &before).await;
    assert!(message.contains(&format!("Secret {NAME}-tls")), "{message}");
    pod.serve_certificate(None);
    available(&h).await;

    // 4. The delegated-auth RoleBinding removed behind the operator's back.
    let before = support::warnings(&h.ns, "RBACRestored").await;
    let bindings: Api<RoleBinding> = Api::namespaced(h.ns.client.clone(), "kube-system");
    let binding = format!("aggregation.dev:{}:{NAME}:auth-reader", h.ns.name);
    let uid = bindings.get(&binding).await.unwrap().metadata.uid.unwrap();
    bindings
        .delete(&binding, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(bindings, &binding, move |b: Option<&RoleBinding>| {
        b.is_some_and(|b| b.metadata.uid.as_deref() != Some(uid.as_str()))
    })
    .await;
    new_warning(&h, "RBACRestored", &before).await;
    // A restarted pod can read the authentication ConfigMap again and serves.
    drop(pod);
    let _pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    available(&h).await;
}

/// Sends requests through the aggregator, one after another, until the APIService's caBundle
/// has held two CAs and then holds one CA other than `first_ca`: Ok when that happened within
/// 150 s, the number of requests, and the failures.
async fn traffic_until_bundle_is(
    h: &Harness,
    first_ca: &str,
) -> (Result<(), tokio::time::error::Elapsed>, u32, Vec<String>) {
    let mut overlap_seen = false;
    traffic_until(h, |cas| {
        overlap_seen |= cas.len() == 2;
        overlap_seen && cas.len() == 1 && cas[0].fingerprint != first_ca
    })
    .await
}

/// Sends requests through the aggregator, one after another, until `done` holds for the CAs
/// in the APIService's caBundle: Ok when that happened within 150 s, the number of requests,
/// and the failures.
async fn traffic_until(
    h: &Harness,
    mut done: impl FnMut(&[certs::CertInfo]) -> bool,
) -> (Result<(), tokio::time::error::Elapsed>, u32, Vec<String>) {
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let path = "/apis/my.custom.api/v1/namespaces/default/myresources";
    let (mut requests, mut failures) = (0u32, Vec::new());
    let finished = tokio::time::timeout(Duration::from_secs(150), async {
        loop {
            let mut request = http::Request::new(Vec::new());
            *request.uri_mut() = path.parse().unwrap();
            requests += 1;
            match h.ns.client.request_text(request).await {
                Ok(body) if body.contains("alpha") => {}
                Ok(body) => failures.push(format!("unexpected body: {body:.200}")),
                Err(error) => failures.push(error.to_string()),
            }
            let live = api_services.get(API_SERVICE).await.unwrap();
            let cas = certs::inspect_bundle(&live.spec.ca_bundle.unwrap().0).unwrap();
            if done(&cas) {
                return;
            }
        }
    })
    .await;
    (finished, requests, failures)
}

/// The fingerprint of the first CA in the APIService's caBundle.
async fn first_ca(h: &Harness) -> String {
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let live = api_services.get(API_SERVICE).await.unwrap();
    certs::inspect_bundle(&live.spec.ca_bundle.unwrap().0).unwrap()[0]
        .fingerprint
        .clone()
}

#[tokio::test]
async fn a_deleted_ca_secret_fails_no_request() {
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("e2e-ca-lost").await;
    h.create(&Server::sample(NAME).tls("{mode: Managed}")).await;
    let pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    available(&h).await;
    let old_ca = first_ca(&h).await;
    let starts_before = *pod.starts.borrow();
    let known = support::warnings(&h.ns, "CARecreated").await;

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = h.ns.api();
    secrets
        .delete(&format!("{NAME}-ca"), &DeleteParams::default())
        .await
        .unwrap();
    let (done, requests, failures) = traffic_until_bundle_is(&h, &old_ca).await;
    eprintln!(
        "CA Secret deleted under traffic: {requests} requests, {} failed",
        failures.len()
    );
    assert!(done.is_ok(), "the old CA was not dropped within 150 s");
    assert!(
        *pod.starts.borrow() > starts_before,
        "the pods were not rolled"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    new_warning(&h, "CARecreated", &known).await;
    available(&h).await;
}

#[tokio::test]
async fn rotation_under_traffic_fails_no_request() {
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("e2e-rotate").await;
    h.create(
        &Server::sample(NAME).tls("{mode: Managed, certificateDuration: 15s, caDuration: 45s}"),
    )
    .await;
    let pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    available(&h).await;
    let first_ca = first_ca(&h).await;
    let starts_before = *pod.starts.borrow();
    let (done, requests, failures) = traffic_until_bundle_is(&h, &first_ca).await;
    let restarts = *pod.starts.borrow() - starts_before;
    eprintln!(
        "rotation under traffic: {requests} requests, {} failed, {restarts} server restarts",
        failures.len()
    );
    assert!(
        done.is_ok(),
        "the CA rotation did not complete within 150 s"
    );
    assert!(restarts >= 2, "the pods were not rolled");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}

#[tokio::test]
async fn clean_removal_leaves_discovery_healthy() {
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("e2e-remove").await;
    h.create(&Server::sample(NAME).tls("{mode: Managed}")).await;
    let _pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    let server = available(&h).await;
    let uid = server.metadata.uid.unwrap();
    h.servers()
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(h.servers(), NAME, conditions::is_deleted(&uid)).await;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    assert!(api_services.get_opt(API_SERVICE).await.unwrap().is_none());
    let out = h.ns.kubectl(&["api-resources"]);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");
    h.ns.delete_and_wait(Duration::from_secs(60)).await.unwrap();
}

#[tokio::test]
async fn secret_mode_renewals_fail_no_request() {
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("e2e-issued").await;
    let dns = vec![format!("{NAME}.{}.svc", h.ns.name)];
    let lifetime = Duration::from_secs(3600);
    let issue =
        |ca: &certs::KeyedCert| certs::issue_serving(ca, &dns, Timestamp::now(), lifetime).unwrap();
    let first = certs::generate_ca("issuer one", Timestamp::now(), lifetime).unwrap();
    support::write_cert_manager_secret(&h.ns, "issued", &first, &issue(&first)).await;
    h.create(&Server::sample(NAME).tls("{mode: Secret, secretName: issued}"))
        .await;
    let pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    available(&h).await;
    let first_fingerprint = first_ca(&h).await;

    // A renewal from the same CA: the pods roll onto it.
    let starts = *pod.starts.borrow();
    support::write_cert_manager_secret(&h.ns, "issued", &first, &issue(&first)).await;
    let starts_rx = pod.starts.clone();
    let (rolled, requests, failures) = traffic_until(&h, |_| *starts_rx.borrow() > starts).await;
    eprintln!(
        "same-CA renewal: {requests} requests, {} failed",
        failures.len()
    );
    assert!(
        rolled.is_ok(),
        "the pods did not roll onto the renewed certificate"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    // A renewal from a new CA: trusted before the pods use it, the old one dropped after.
    let second = certs::generate_ca("issuer two", Timestamp::now(), lifetime).unwrap();
    support::write_cert_manager_secret(&h.ns, "issued", &second, &issue(&second)).await;
    let (done, requests, failures) = traffic_until_bundle_is(&h, &first_fingerprint).await;
    eprintln!(
        "new-CA renewal: {requests} requests, {} failed",
        failures.len()
    );
    assert!(done.is_ok(), "the old CA was not dropped within 150 s");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}
