//! TLS modes Secret and Insecure, and `registration.unregisterAfter`, against the real control
//! plane.

use extension_server_operator::apiservice::APIService;
use extension_server_operator::tls::certs;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::conditions;

use crate::support;
use crate::support::fixture::{Server, sample_args};
use crate::support::{Harness, wait_for};

#[tokio::test]
async fn secret_mode_uses_the_users_certificate_and_reports_a_bad_secret() {
    let h = Harness::start("es-secret").await;
    let group = format!("{}.custom.api", h.ns.name);

    // Missing Secret: a clear condition, and nothing registered.
    h.create(&Server::in_group("byo", &group).tls("{mode: Secret, secretName: byo-cert}"))
        .await;
    let waiting = h
        .wait_condition("byo", "CertificateReady", "False", Some("SecretInvalid"))
        .await;
    let message = &waiting.status.as_ref().unwrap().conditions[2].message;
    assert!(
        message.contains("byo-cert") && message.contains("does not exist"),
        "{message}"
    );
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    assert!(
        api_services
            .get_opt(&format!("v1.{group}"))
            .await
            .unwrap()
            .is_none()
    );

    // The user's own CA and certificate.
    let now = Timestamp::now();
    let lifetime = std::time::Duration::from_secs(3600);
    let ca = certs::generate_ca("user CA", now, lifetime).unwrap();
    let names = vec![format!("byo.{}.svc", h.ns.name)];
    let serving = certs::issue_serving(&ca, &names, now, lifetime).unwrap();
    let data = [
        ("ca.crt", ca.cert_pem.as_str()),
        ("tls.crt", serving.cert_pem.as_str()),
        ("tls.key", serving.key_pem.as_str()),
    ];
    support::create_secret(&h.ns, "byo-cert", &data).await;
    let secrets: Api<Secret> = h.ns.api();
    // Nudge the server so it re-reads the Secret now rather than at the next resync.
    h.servers()
        .patch(
            "byo",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"nudge": "1"}}})),
        )
        .await
        .unwrap();
    h.wait_condition("byo", "Registered", "True", None).await;
    let api_service = api_services.get(&format!("v1.{group}")).await.unwrap();
    assert_eq!(
        api_service.spec.ca_bundle.unwrap().0,
        ca.cert_pem.into_bytes()
    );
    let deployments: Api<Deployment> = h.ns.api();
    let pod = deployments
        .get("byo")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("byo-cert")
    );
    assert!(
        secrets.get_opt("byo-ca").await.unwrap().is_none(),
        "no managed CA in Secret mode"
    );
}

#[tokio::test]
async fn insecure_mode_is_explicit() {
    let h = Harness::start("es-insecure").await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("lax", &group).tls("{mode: Insecure}"))
        .await;
    let server = h.wait_condition("lax", "Registered", "True", None).await;
    let certificate = server
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "CertificateReady")
        .unwrap();
    assert_eq!(certificate.reason, "InsecureSkipVerify");
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let api_service = api_services.get(&format!("v1.{group}")).await.unwrap();
    assert_eq!(api_service.spec.insecure_skip_tls_verify, Some(true));
    assert!(api_service.spec.ca_bundle.is_none());
}

/// Switching a registered server between Managed and Insecure changes its APIService's trust
/// both ways (the API server refuses a caBundle next to insecureSkipTLSVerify).
#[tokio::test]
async fn switching_between_managed_and_insecure_moves_the_api_services_trust() {
    let h = Harness::start("es-switch").await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("flip", &group).tls("{mode: Managed}"))
        .await;
    h.wait_condition("flip", "Registered", "True", None).await;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let name = format!("v1.{group}");
    for (mode, insecure) in [("Insecure", true), ("Managed", false)] {
        let patch = serde_json::json!({"spec": {"tls": {"mode": mode}}});
        h.servers()
            .patch("flip", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let trusted = move |a: Option<&APIService>| {
            a.is_some_and(|a| {
                a.spec.insecure_skip_tls_verify.unwrap_or(false) == insecure
                    && a.spec.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty()) != insecure
            })
        };
        wait_for(api_services.clone(), &name, trusted).await;
        let server = h.wait_condition("flip", "Ready", "False", None).await;
        let ready = support::condition(&server, "Ready");
        assert!(
            !ready.reason.ends_with("ApplyFailed"),
            "{mode}: {}: {}",
            ready.reason,
            ready.message
        );
    }
}

#[tokio::test]
async fn unregister_after_removes_an_unavailable_api_service_until_its_backend_answers() {
    let h = Harness::start("es-unreg").await;
    let group = format!("{}.custom.api", h.ns.name);
    let name = format!("v1.{group}");
    let mut args = sample_args(443).to_vec();
    args.push(format!("--group={group}"));
    h.create(
        &Server::in_group("flaky", &group)
            .tls("{mode: Managed}")
            .port(443)
            .args(&args)
            .unregister_after("3s"),
    )
    .await;
    h.wait_condition("flaky", "Registered", "True", None).await;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let uid = api_services.get(&name).await.unwrap().metadata.uid.unwrap();

    // Nothing serves it, so the aggregator marks it unavailable and the operator removes it.
    h.wait_condition("flaky", "Registered", "False", Some("Unregistered"))
        .await;
    wait_for(api_services.clone(), &name, conditions::is_deleted(&uid)).await;

    // It stays out while nothing answers: neither a forced reconcile nor a spec change brings
    // it back.
    let mut reconciles = h.ctx.metrics.watch_reconciles();
    for patch in [
        serde_json::json!({"metadata": {"annotations": {"nudge": "1"}}}),
        serde_json::json!({"spec": {"registration": {"unregisterAfter": "4s"}}}),
    ] {
        let seen = *reconciles.borrow_and_update();
        h.servers()
            .patch("flaky", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
        reconciles.wait_for(|n| *n > seen).await.unwrap();
        assert!(api_services.get_opt(&name).await.unwrap().is_none());
    }

    // Once the backend answers a probe, it is registered again, and available.
    let _pod = testenv::runtime::start(&h.ns.cluster, &h.ns.name, "flaky")
        .await
        .unwrap();
    h.wait_condition("flaky", "Registered", "True", None).await;
    h.wait_condition("flaky", "Available", "True", None).await;
}

#[tokio::test]
async fn secret_mode_says_nothing_of_a_secret_beyond_what_the_server_needs() {
    let h = Harness::start("es-secret-echo").await;
    let group = format!("{}.custom.api", h.ns.name);
    // Another workload's TLS Secret in the namespace, for names of its own.
    let now = Timestamp::now();
    let lifetime = std::time::Duration::from_secs(3600);
    let ca = certs::generate_ca("another CA", now, lifetime).unwrap();
    let hidden = "payments.internal.example".to_string();
    let serving = certs::issue_serving(&ca, std::slice::from_ref(&hidden), now, lifetime).unwrap();
    let data = [
        ("ca.crt", ca.cert_pem.as_str()),
        ("tls.crt", serving.cert_pem.as_str()),
        ("tls.key", serving.key_pem.as_str()),
    ];
    support::create_secret(&h.ns, "payments-tls", &data).await;
    h.create(&Server::in_group("peek", &group).tls("{mode: Secret, secretName: payments-tls}"))
        .await;
    let s = h
        .wait_condition("peek", "CertificateReady", "False", Some("SecretInvalid"))
        .await;
    let message = &support::condition(&s, "CertificateReady").message;
    assert!(
        message.contains(&format!("peek.{}.svc", h.ns.name)),
        "{message}"
    );
    assert!(
        !message.contains(&hidden),
        "the Secret's own names stay out: {message}"
    );
    let events = support::warnings(&h.ns, "SecretInvalid").await;
    assert!(events.keys().all(|e| !e.contains(&hidden)), "{events:?}");
    h.delete_and_wait("peek").await;
}
