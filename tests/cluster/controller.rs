//! The controller against the real control plane: children, registration, conflicts, drift,
//! steady state and scaling. One namespace (and one in-process operator) per test.

use std::collections::BTreeMap;
use std::time::Duration;

use extension_server_operator::apiservice::{APIService, APIServiceSpec};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::conditions;
use kube::runtime::{WatchStreamExt, watcher};

use crate::support;
use crate::support::fixture::Server;
use crate::support::{Harness, bundle_verifies, wait_for};

fn basic(name: &str, group: &str) -> Server {
    Server::new(name)
        .group(group)
        .priorities(1000, 15)
        .replicas(1)
        .port(443)
}

/// A group no other test uses.
fn group_of(h: &Harness) -> String {
    format!("{}.custom.api", h.ns.name)
}

fn merge(value: serde_json::Value) -> Patch<serde_json::Value> {
    Patch::Merge(value)
}

fn pp() -> PatchParams {
    PatchParams::default()
}

#[tokio::test]
async fn basic_example_is_wired_up_and_registered_only_after_a_replica_is_ready() {
    let h = Harness::start("es-basic").await;
    let group = group_of(&h);
    let api_service_name = format!("v1.{group}");
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());

    // No node matches yet, so no replica can become ready.
    let mut server = basic("my-extension-server", &group).build();
    server.spec.node_selector = BTreeMap::from([("no-such-label".into(), "x".into())]);
    server.metadata.namespace = Some(h.ns.name.clone());
    h.servers()
        .create(&PostParams::default(), &server)
        .await
        .unwrap();
    let waiting = h
        .wait_condition(
            "my-extension-server",
            "Registered",
            "False",
            Some("WaitingForReadyReplicas"),
        )
        .await;
    assert_eq!(
        support::condition(&waiting, "DeploymentAvailable").status,
        "False"
    );
    assert!(
        api_services
            .get_opt(&api_service_name)
            .await
            .unwrap()
            .is_none()
    );

    // Let the pod schedule: the APIService follows the first ready replica.
    h.servers()
        .patch(
            "my-extension-server",
            &pp(),
            &merge(serde_json::json!({"spec": {"nodeSelector": null}})),
        )
        .await
        .unwrap();
    h.wait_condition("my-extension-server", "Registered", "True", None)
        .await;
    let server = h
        .wait_condition(
            "my-extension-server",
            "Available",
            "False",
            Some("FailedDiscoveryCheck"),
        )
        .await;

    // Conditions, as the design's table says (no server process listens yet).
    assert_eq!(
        support::condition(&server, "DeploymentAvailable").status,
        "True"
    );
    assert_eq!(
        support::condition(&server, "CertificateReady").status,
        "True"
    );
    let available = support::condition(&server, "Available");
    assert!(
        available.message.contains("spec.port (443)"),
        "{}",
        available.message
    );
    let ready = support::condition(&server, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "FailedDiscoveryCheck")
    );
    let status = server.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, server.metadata.generation);
    assert_eq!(status.api_services[0].name, api_service_name);
    assert_eq!(status.api_services[0].available, "False");
    assert!(status.certificate.as_ref().unwrap().renewal_time.is_some());

    // Every child, with the right fields.
    let ns = h.ns.name.as_str();
    let account: Api<ServiceAccount> = h.ns.api();
    account.get("my-extension-server").await.unwrap();
    let crb: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = crb
        .get(&format!(
            "aggregation.dev:{ns}:my-extension-server:auth-delegator"
        ))
        .await
        .unwrap();
    assert_eq!(crb.role_ref.name, "system:auth-delegator");
    assert_eq!(crb.subjects.unwrap()[0].namespace.as_deref(), Some(ns));
    let rb: Api<RoleBinding> = Api::namespaced(h.ns.client.clone(), "kube-system");
    let rb = rb
        .get(&format!(
            "aggregation.dev:{ns}:my-extension-server:auth-reader"
        ))
        .await
        .unwrap();
    assert_eq!(
        rb.role_ref.name,
        "extension-apiserver-authentication-reader"
    );

    let deployments: Api<Deployment> = h.ns.api();
    let deployment = wait_for(
        deployments,
        "my-extension-server",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()?.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                })
        },
    )
    .await
    .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 443);
    assert_eq!(
        container
            .security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );

    let services: Api<Service> = h.ns.api();
    let service = services.get("my-extension-server").await.unwrap();
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 443);

    let api_service = api_services.get(&api_service_name).await.unwrap();
    let spec = &api_service.spec;
    // The API server stores `false` by omitting it.
    assert_ne!(spec.insecure_skip_tls_verify, Some(true));
    assert_eq!(
        (spec.group_priority_minimum, spec.version_priority),
        (1000, 15)
    );
    let reference = spec.service.as_ref().unwrap();
    assert_eq!(
        (reference.namespace.as_str(), reference.name.as_str()),
        (ns, "my-extension-server")
    );

    // The caBundle verifies the served certificate for <svc>.<ns>.svc.
    let secrets: Api<Secret> = h.ns.api();
    let tls = secrets
        .get("my-extension-server-tls")
        .await
        .unwrap()
        .data
        .unwrap();
    let host = format!("my-extension-server.{ns}.svc");
    let bundle = &spec.ca_bundle.as_ref().unwrap().0;
    assert!(bundle_verifies(bundle, &tls["tls.crt"].0, &host));
    assert!(!bundle_verifies(
        bundle,
        &tls["tls.crt"].0,
        "other.example.com"
    ));

    // kubectl shows the printer columns.
    let out = h.ns.kubectl(&["get", "extensionservers", "-n", ns]);
    let table = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "GROUP", "READY", "AVAILABLE", "REPLICAS", "AGE"]
    );
    assert!(table.contains(&group));
}

#[tokio::test]
async fn conflicts_leave_foreign_api_services_alone() {
    let h = Harness::start("es-conflict").await;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());

    // A built-in (Local) group.
    let builtin_before = api_services
        .get("v1.rbac.authorization.k8s.io")
        .await
        .unwrap();
    h.create(&basic("hijack", "rbac.authorization.k8s.io"))
        .await;
    let server = h
        .wait_condition("hijack", "Registered", "False", Some("ProtectedGroup"))
        .await;
    assert!(
        support::condition(&server, "Registered")
            .message
            .contains("reserved for Kubernetes")
    );
    let builtin_after = api_services
        .get("v1.rbac.authorization.k8s.io")
        .await
        .unwrap();
    assert_eq!(
        builtin_before.metadata.resource_version,
        builtin_after.metadata.resource_version
    );

    // An APIService somebody else created, with the claimer's owner annotation copied onto it
    // but not our labels: ownership takes both.
    let group = group_of(&h);
    let name = format!("v1.{group}");
    let foreign: APIService = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name, "labels": {
            "aggregation.dev/extension-server-namespace": h.ns.name},
            "annotations": {"aggregation.dev/owner": format!("{}/claimer", h.ns.name)}},
        "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 100,
                 "versionPriority": 1, "insecureSkipTLSVerify": true,
                 "service": {"namespace": h.ns.name, "name": "someone-elses"}}
    }))
    .unwrap();
    api_services
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    // Let the aggregator write its status first; after that nobody may touch it.
    let foreign = wait_for(api_services.clone(), &name, |a: Option<&APIService>| {
        a.is_some_and(|a| a.available().is_some())
    })
    .await
    .unwrap();
    h.create(&basic("claimer", &group)).await;
    let server = h
        .wait_condition("claimer", "Registered", "False", Some("Conflict"))
        .await;
    assert!(
        support::condition(&server, "Registered")
            .message
            .contains("adoptExisting")
    );
    let untouched = api_services.get(&name).await.unwrap();
    assert_eq!(
        untouched.metadata.resource_version,
        foreign.metadata.resource_version
    );

    // Without a grant that allows it, asking to adopt changes nothing either.
    h.servers()
        .patch(
            "claimer",
            &pp(),
            &merge(serde_json::json!({"spec": {"registration": {"adoptExisting": true}}})),
        )
        .await
        .unwrap();
    let server = h
        .wait_condition("claimer", "Registered", "False", Some("AdoptionNotAllowed"))
        .await;
    assert!(
        support::condition(&server, "Ready")
            .message
            .contains("no grant lets namespace")
    );
    let untouched = api_services.get(&name).await.unwrap();
    assert_eq!(
        untouched.metadata.resource_version,
        foreign.metadata.resource_version
    );
    api_services
        .delete(&name, &Default::default())
        .await
        .unwrap();
}

/// An APIService without what the aggregator writes: its status, the resource version,
/// and the managed-fields entry of the status subresource.
fn without_status(api_service: &APIService) -> (ObjectMeta, APIServiceSpec) {
    let mut metadata = api_service.metadata.clone();
    metadata.resource_version = None;
    if let Some(entries) = metadata.managed_fields.as_mut() {
        entries.retain(|entry| entry.subresource.as_deref() != Some("status"));
    }
    (metadata, api_service.spec.clone())
}

#[tokio::test]
async fn two_servers_claiming_one_version_do_not_flap() {
    let h = Harness::start("es-twice").await;
    let group = group_of(&h);
    let name = format!("v1.{group}");
    h.create(&basic("first", &group)).await;
    h.wait_condition("first", "Registered", "True", None).await;
    h.create(&basic("second", &group)).await;
    let second = h
        .wait_condition("second", "Registered", "False", Some("Conflict"))
        .await;
    assert!(
        support::condition(&second, "Registered")
            .message
            .contains("/first")
    );
    // The aggregator settles first: its own status writes are not the operator's.
    let first = h
        .wait_condition("first", "Available", "False", Some("FailedDiscoveryCheck"))
        .await;
    assert_eq!(support::condition(&first, "Registered").status, "True");

    // Watch the APIService for 30 s: the holder never changes and nothing but the
    // aggregator's status updates touches it.
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let start = api_services.get(&name).await.unwrap();
    let owner = start.metadata.annotations.clone().unwrap()["aggregation.dev/owner"].clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api_services.clone(), config)
        .applied_objects()
        .boxed();
    let mut writes = 0;
    let mut last = without_status(&start);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(seen)) = stream.next().await {
            let current = without_status(&seen);
            if current != last {
                writes += 1;
                last = current;
            }
            assert_eq!(
                seen.metadata.annotations.as_ref().unwrap()["aggregation.dev/owner"],
                owner
            );
            assert_eq!(seen.spec, start.spec);
        }
    })
    .await;
    assert_eq!(
        writes, 0,
        "the APIService was rewritten {writes} times in 30 s"
    );
    assert_eq!(owner, format!("{}/first", h.ns.name));

    // The holder goes: the waiting claimant is woken by the APIService's deletion and
    // registers within seconds, not at its next periodic look (30 s).
    let deleted = std::time::Instant::now();
    h.servers()
        .delete("first", &Default::default())
        .await
        .unwrap();
    h.wait_condition("second", "Registered", "True", None).await;
    assert!(
        deleted.elapsed() <= Duration::from_secs(5),
        "the claimant registered {:?} after the holder's deletion",
        deleted.elapsed()
    );
}

#[tokio::test]
async fn drift_is_restored() {
    let h = Harness::start("es-drift").await;
    let group = group_of(&h);
    let name = format!("v1.{group}");
    h.create(&basic("drifty", &group)).await;
    h.wait_condition("drifty", "Registered", "True", None).await;

    // The Deployment: replicas and the securityContext.
    let deployments: Api<Deployment> = h.ns.api();
    deployments
        .patch(
            "drifty",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "server", "securityContext": {"readOnlyRootFilesystem": false}}]}}}
            })),
        )
        .await
        .unwrap();
    wait_for(deployments, "drifty", |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref()).is_some_and(|s| {
            s.replicas == Some(1)
                && s.template.spec.as_ref().unwrap().containers[0]
                    .security_context
                    .as_ref()
                    .unwrap()
                    .read_only_root_filesystem
                    == Some(true)
        })
    })
    .await;

    // The Service and the TLS Secret, deleted.
    support::delete_and_wait_recreated(h.ns.api::<Service>(), "drifty").await;
    let secret = support::delete_and_wait_recreated(h.ns.api::<Secret>(), "drifty-tls").await;

    // The APIService's caBundle, then insecureSkipTLSVerify.
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let restored = |a: Option<&APIService>| {
        a.is_some_and(|a| {
            a.spec.insecure_skip_tls_verify != Some(true)
                && a.spec
                    .ca_bundle
                    .as_ref()
                    .is_some_and(|b| b.0.starts_with(b"-----BEGIN CERTIFICATE"))
        })
    };
    wait_for(api_services.clone(), &name, restored).await;
    api_services
        .patch(
            &name,
            &pp(),
            &merge(serde_json::json!({"spec": {"caBundle": "Zm9v"}})),
        )
        .await
        .unwrap();
    wait_for(api_services.clone(), &name, restored).await;
    api_services
        .patch(
            &name,
            &pp(),
            &merge(serde_json::json!({"spec": {"caBundle": null, "insecureSkipTLSVerify": true}})),
        )
        .await
        .unwrap();
    let api_service = wait_for(api_services, &name, restored).await.unwrap();
    let host = format!("drifty.{}.svc", h.ns.name);
    let bundle = &api_service.spec.ca_bundle.unwrap().0;
    let current = &secret.data.unwrap()["tls.crt"].0;
    assert!(bundle_verifies(bundle, current, &host));
}

#[tokio::test]
async fn steady_state_makes_no_writes() {
    let h = Harness::start("es-steady").await;
    let group = group_of(&h);
    // Quantities the API server stores in another spelling (500m, 1Gi, 250m).
    let resources =
        r#"{resources: {limits: {cpu: "0.5", memory: 1024Mi}, requests: {cpu: "0.25"}}}"#;
    h.create(&basic("steady", &group).extra(resources)).await;
    h.wait_condition("steady", "Registered", "True", None).await;
    let settled = h
        .wait_condition("steady", "Available", "False", Some("FailedDiscoveryCheck"))
        .await;

    let ns = h.ns.name.clone();
    let client = h.ns.client.clone();
    let versions = || {
        let (client, ns, group) = (client.clone(), ns.clone(), group.clone());
        async move {
            let rv = |m: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                m.resource_version.unwrap()
            };
            vec![
                rv(Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                    .get("steady")
                    .await
                    .unwrap()
                    .metadata),
                rv(Api::<Secret>::namespaced(client.clone(), &ns)
                    .get("steady-ca")
                    .await
                    .unwrap()
                    .metadata),
                rv(Api::<Secret>::namespaced(client.clone(), &ns)
                    .get("steady-tls")
                    .await
                    .unwrap()
                    .metadata),
                rv(Api::<Deployment>::namespaced(client.clone(), &ns)
                    .get("steady")
                    .await
                    .unwrap()
                    .metadata),
                rv(Api::<Service>::namespaced(client.clone(), &ns)
                    .get("steady")
                    .await
                    .unwrap()
                    .metadata),
                rv(Api::<ClusterRoleBinding>::all(client.clone())
                    .get(&format!("aggregation.dev:{ns}:steady:auth-delegator"))
                    .await
                    .unwrap()
                    .metadata),
                rv(
                    Api::<RoleBinding>::namespaced(client.clone(), "kube-system")
                        .get(&format!("aggregation.dev:{ns}:steady:auth-reader"))
                        .await
                        .unwrap()
                        .metadata,
                ),
                rv(Api::<APIService>::all(client.clone())
                    .get(&format!("v1.{group}"))
                    .await
                    .unwrap()
                    .metadata),
            ]
        }
    };
    let before = versions().await;
    // An apply that changes nothing keeps the resourceVersion, so count the requests too.
    let writes = h.ctx.metrics.writes();
    let mut reconciles = h.ctx.metrics.watch_reconciles();
    for i in 0..50 {
        let seen = *reconciles.borrow_and_update();
        h.servers()
            .patch(
                "steady",
                &pp(),
                &merge(serde_json::json!({"metadata": {"annotations": {"touch": i.to_string()}}})),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), reconciles.wait_for(|n| *n > seen))
            .await
            .expect("no reconcile after a touch")
            .unwrap();
    }
    assert_eq!(
        versions().await,
        before,
        "a child was rewritten in steady state"
    );
    // The 50 touches are the test's writes, through its own client.
    assert_eq!(
        h.ctx.metrics.writes() - writes,
        0,
        "the operator wrote in steady state"
    );
    let after = h.servers().get("steady").await.unwrap();
    assert_eq!(
        after.status, settled.status,
        "status was rewritten in steady state"
    );
}

#[tokio::test]
async fn scaling_to_zero_unregisters_and_back_registers() {
    let h = Harness::start("es-scale").await;
    let group = group_of(&h);
    let name = format!("v1.{group}");
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    h.create(&basic("scaler", &group)).await;
    h.wait_condition("scaler", "Registered", "True", None).await;
    let uid = api_services.get(&name).await.unwrap().metadata.uid.unwrap();

    h.servers()
        .patch(
            "scaler",
            &pp(),
            &merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let server = h
        .wait_condition("scaler", "Registered", "False", Some("ScaledToZero"))
        .await;
    assert_eq!(
        support::condition(&server, "DeploymentAvailable").reason,
        "ScaledToZero"
    );
    wait_for(api_services.clone(), &name, conditions::is_deleted(&uid)).await;

    h.servers()
        .patch(
            "scaler",
            &pp(),
            &merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    h.wait_condition("scaler", "Registered", "True", None).await;
    assert!(api_services.get_opt(&name).await.unwrap().is_some());
}

#[tokio::test]
async fn converging_one_server_takes_few_writes() {
    let h = Harness::start("es-writes").await;
    let group = group_of(&h);
    let started = std::time::Instant::now();
    h.create(&basic("counted", &group)).await;
    h.wait_condition("counted", "Registered", "True", None)
        .await;
    let registered_after = started.elapsed();
    h.wait_condition(
        "counted",
        "Available",
        "False",
        Some("FailedDiscoveryCheck"),
    )
    .await;
    let writes = h.ctx.metrics.writes();
    eprintln!(
        "converged one ExtensionServer with {writes} API writes (status and Events included); registered {} ms after apply",
        registered_after.as_millis()
    );
    // Finalizer, 7 children, CA, APIService, a few status writes and Events.
    assert!(
        writes <= 24,
        "{writes} writes to converge one ExtensionServer"
    );
}
