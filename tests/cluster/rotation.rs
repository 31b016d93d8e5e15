//! Certificate renewal and CA rotation with short lifetimes: at every observed step the
//! APIService's caBundle verifies the certificate the Secret holds, and the old CA leaves the
//! bundle only after the pods carry a certificate from the new one.

use std::time::Duration;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::tls::certs;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

use crate::support::fixture::Server;
use crate::support::{Harness, bundle_verifies};

#[tokio::test]
async fn renewal_and_ca_rotation_keep_trust_at_every_step() {
    let h = Harness::start("es-rotate").await;
    let ns = h.ns.name.clone();
    let group = format!("{ns}.custom.api");
    let api_service = format!("v1.{group}");
    h.create(
        &Server::new("rotor")
            .group(&group)
            .tls("{certificateDuration: 15s, caDuration: 45s}"),
    )
    .await;
    h.wait_condition("rotor", "Registered", "True", None).await;

    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let secrets: Api<Secret> = h.ns.api();
    let pods: Api<Pod> = h.ns.api();
    let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
    let changes = stream::select(
        watcher(api_services.clone(), by_name(&api_service)).map(|_| ()),
        watcher(secrets.clone(), by_name("rotor-tls")).map(|_| ()),
    );
    let host = format!("rotor.{ns}.svc");
    let original_ca = {
        let a = api_services.get(&api_service).await.unwrap();
        certs::inspect_bundle(&a.spec.ca_bundle.unwrap().0).unwrap()[0]
            .fingerprint
            .clone()
    };

    let mut steps = 0u32;
    let mut serving_certs = std::collections::BTreeSet::new();
    let mut saw_overlap = false;
    let outcome = tokio::time::timeout(Duration::from_secs(150), async {
        let mut changes = Box::pin(changes);
        while changes.next().await.is_some() {
            let secret = secrets.get("rotor-tls").await.unwrap().data.unwrap();
            let served = secret["tls.crt"].0.clone();
            let live = api_services.get(&api_service).await.unwrap();
            let bundle = live.spec.ca_bundle.unwrap().0;
            steps += 1;
            assert!(
                bundle_verifies(&bundle, &served, &host),
                "step {steps}: the caBundle does not verify the Secret's certificate"
            );
            serving_certs.insert(certs::sha256_hex(&served));
            let cas = certs::inspect_bundle(&bundle).unwrap();
            if cas.len() == 2 {
                saw_overlap = true;
            }
            if saw_overlap && cas.len() == 1 && cas[0].fingerprint != original_ca {
                // The old CA is gone: every running pod must carry the new certificate.
                let hash = certs::sha256_hex(&served)[..16].to_string();
                let selector = "app.kubernetes.io/instance=rotor";
                for pod in pods
                    .list(&ListParams::default().labels(selector))
                    .await
                    .unwrap()
                {
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let annotations = pod.metadata.annotations.unwrap_or_default();
                    assert_eq!(
                        annotations.get("aggregation.dev/serving-cert-hash"),
                        Some(&hash),
                        "a pod still serves the old certificate after the old CA left the bundle"
                    );
                }
                return;
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "CA rotation did not complete in 150 s (overlap seen: {saw_overlap}, {steps} steps)"
    );
    assert!(
        serving_certs.len() >= 2,
        "the serving certificate was never renewed"
    );
    eprintln!(
        "rotation: {steps} observed steps, {} serving certificates",
        serving_certs.len()
    );
}
