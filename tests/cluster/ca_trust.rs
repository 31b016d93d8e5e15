//! Trust is never dropped: a damaged CA Secret is reported and rolls nothing, Insecure mode
//! completes its CA rotation, and mode Secret follows its Secret within seconds.

use std::time::{Duration, Instant};

use extension_server_operator::apiservice::APIService;
use extension_server_operator::names::CERT_HASH_ANNOTATION;
use extension_server_operator::tls::certs::{self, KeyedCert};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};

use crate::support;
use crate::support::fixture::Server;
use crate::support::{Harness, condition};

fn bundle_of(api_service: &APIService) -> Vec<String> {
    let bundle = api_service.spec.ca_bundle.as_ref().unwrap();
    certs::inspect_bundle(&bundle.0)
        .unwrap()
        .into_iter()
        .map(|c| c.fingerprint)
        .collect()
}

fn fingerprint(pem: &str) -> String {
    certs::inspect(pem.as_bytes()).unwrap().fingerprint
}

/// Waits at most `limit` for `check` on the named object; panics with `what` otherwise.
async fn within<K>(
    limit: Duration,
    api: Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(&K) -> bool + Send + 'static,
) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::time::timeout(
        limit,
        await_condition(api, name, move |k: Option<&K>| k.is_some_and(&check)),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen within {limit:?}"))
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn a_ca_key_from_another_ca_is_reported_and_rolls_nothing() {
    let h = Harness::start("tls-key").await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("keyed", &group).tls("{mode: Managed}"))
        .await;
    h.wait_condition("keyed", "Registered", "True", None).await;
    let deployments: Api<Deployment> = h.ns.api();
    let generation = deployments.get("keyed").await.unwrap().metadata.generation;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let trusted = bundle_of(&api_services.get(&format!("v1.{group}")).await.unwrap());

    let other = certs::generate_ca("other", Timestamp::now(), Duration::from_secs(3600)).unwrap();
    let secrets: Api<Secret> = h.ns.api();
    let key = serde_json::to_value(ByteString(other.key_pem.into_bytes())).unwrap();
    secrets
        .patch(
            "keyed-ca",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"ca.key": key}})),
        )
        .await
        .unwrap();
    let reported = h
        .wait_condition("keyed", "CertificateReady", "False", Some("SecretInvalid"))
        .await;
    let message = &condition(&reported, "CertificateReady").message;
    assert!(
        message.contains("ca.key does not belong to ca.crt") && message.contains("keyed-ca"),
        "{message}"
    );

    // For a minute: the Deployment does not roll and the APIService keeps its trust.
    let config = watcher::Config::default().fields("metadata.name=keyed");
    let mut rolls = watcher(deployments.clone(), config)
        .applied_objects()
        .boxed();
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(seen)) = rolls.next().await {
            assert_eq!(
                seen.metadata.generation, generation,
                "the Deployment rolled"
            );
        }
    })
    .await;
    assert_eq!(
        bundle_of(&api_services.get(&format!("v1.{group}")).await.unwrap()),
        trusted
    );
    let warnings = support::warnings(&h.ns, "SecretInvalid").await;
    assert_eq!(warnings.into_values().collect::<Vec<_>>(), [1]);
}

#[tokio::test]
async fn insecure_mode_completes_its_ca_rotation() {
    let h = Harness::start("tls-insecure").await;
    let group = format!("{}.custom.api", h.ns.name);
    let events: Api<Event> = h.ns.api();
    let mut completed = watcher(events, watcher::Config::default())
        .applied_objects()
        .boxed();
    h.create(
        &Server::in_group("loose", &group)
            .tls("{mode: Insecure, certificateDuration: 10s, caDuration: 30s}"),
    )
    .await;
    // The CA is renewed at 2/3 of its 30 s; the rotation then finishes once the pods roll.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(Ok(event)) = completed.next().await {
            if event.reason.as_deref() == Some("CARotationCompleted") {
                return;
            }
        }
    })
    .await
    .expect("the CA rotation did not complete");
    eprintln!(
        "Insecure CA rotation completed {:?} after creation",
        started.elapsed()
    );
}

#[tokio::test]
async fn secret_mode_follows_its_secret_within_seconds() {
    let h = Harness::start("tls-follow").await;
    let group = format!("{}.custom.api", h.ns.name);
    let api_service = format!("v1.{group}");
    let names = vec![format!("follow.{}.svc", h.ns.name)];
    let lifetime = Duration::from_secs(3600);
    let issue = |ca: &KeyedCert| certs::issue_serving(ca, &names, Timestamp::now(), lifetime);
    let first_ca = certs::generate_ca("issuer one", Timestamp::now(), lifetime).unwrap();
    support::write_cert_manager_secret(&h.ns, "follow-cert", &first_ca, &issue(&first_ca).unwrap())
        .await;
    h.create(&Server::in_group("follow", &group).tls("{mode: Secret, secretName: follow-cert}"))
        .await;
    h.wait_condition("follow", "Registered", "True", None).await;
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let deployments: Api<Deployment> = h.ns.api();

    // A renewal from the same CA: the pods get the new certificate within seconds.
    let renewed = issue(&first_ca).unwrap();
    let hash = certs::sha256_hex(renewed.cert_pem.as_bytes())[..16].to_string();
    support::write_cert_manager_secret(&h.ns, "follow-cert", &first_ca, &renewed).await;
    within(
        Duration::from_secs(5),
        deployments,
        "follow",
        "the renewal's rollout",
        move |d| {
            let annotations = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref()?.annotations.as_ref());
            annotations.and_then(|a| a.get(CERT_HASH_ANNOTATION)) == Some(&hash)
        },
    )
    .await;

    // A renewal from a new CA: trusted within seconds, next to the old one until the pods roll.
    let second_ca = certs::generate_ca("issuer two", Timestamp::now(), lifetime).unwrap();
    let (old, new) = (
        fingerprint(&first_ca.cert_pem),
        fingerprint(&second_ca.cert_pem),
    );
    support::write_cert_manager_secret(
        &h.ns,
        "follow-cert",
        &second_ca,
        &issue(&second_ca).unwrap(),
    )
    .await;
    let wanted = new.clone();
    within(
        Duration::from_secs(5),
        api_services.clone(),
        &api_service,
        "trusting the new CA",
        move |a| bundle_of(a).contains(&wanted),
    )
    .await;
    let only_new = vec![new.clone()];
    let settled = within(
        Duration::from_secs(60),
        api_services,
        &api_service,
        "dropping the old CA",
        move |a| bundle_of(a) == only_new,
    )
    .await;
    assert!(!bundle_of(&settled).contains(&old));
}
