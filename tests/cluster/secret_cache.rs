//! Unrelated Secrets never reach the operator: its Secret list and watch carry its label
//! selector, so the API server filters them out (the watch that wakes servers in mode Secret
//! asks for metadata only), and many large unrelated Secrets in the
//! namespace it watches do not grow the resident memory of the real operator process.

use std::collections::BTreeMap;
use std::time::Duration;

use extension_server_operator::crd::ExtensionServer;
use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::conditions;
use testenv::TestNamespace;

use crate::support;
use crate::support::fixture::Server;

const UNRELATED: usize = 200;
const SECRET_BYTES: usize = 64 * 1024;

#[tokio::test]
async fn unrelated_secrets_never_enter_the_operators_memory() {
    let ns = TestNamespace::create("es-secrets").await.unwrap();
    support::install_crd(&ns.client).await;
    let operator = support::operator::start(&ns, "operator", &[]);
    operator.wait_listening().await.unwrap();

    let server = Server::new("cached")
        .namespace(&ns.name)
        .group(&format!("{}.custom.api", ns.name))
        .build();
    let servers: Api<ExtensionServer> = ns.api();
    servers
        .create(&PostParams::default(), &server)
        .await
        .unwrap();
    support::wait_for(servers.clone(), "cached", support::is_true("Registered")).await;
    let before = operator.rss_kib().unwrap();

    let secrets: Api<Secret> = ns.api();
    stream::iter(0..UNRELATED)
        .for_each_concurrent(16, |i| {
            let secrets = secrets.clone();
            async move {
                let payload: Vec<u8> = (0..SECRET_BYTES).map(|b| (b * 31 + i) as u8).collect();
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(format!("unrelated-{i}")),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([("blob".to_string(), ByteString(payload))])),
                    ..Default::default()
                };
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .unwrap();
            }
        })
        .await;

    // A barrier on the same watch stream: the operator recreates its serving Secret only after
    // it has seen the deletion, which the API server sends after every creation above.
    support::delete_and_wait_recreated(secrets.clone(), "cached-tls").await;
    let after = operator.rss_kib().unwrap();

    let data_kib = (UNRELATED * SECRET_BYTES / 1024) as u64;
    println!(
        "operator RSS: {before} KiB before, {after} KiB after {UNRELATED} unrelated Secrets ({data_kib} KiB of data)"
    );
    assert!(
        after < before + data_kib / 4,
        "RSS grew from {before} KiB to {after} KiB: unrelated Secrets were cached"
    );

    // The same controller in-process, with every request recorded: the API server is asked only
    // for Secrets carrying the operator's label.
    let (client, mut seen) = support::requests::recording_client(support::config_for(&ns).await);
    let ctx = std::sync::Arc::new(extension_server_operator::context::Context::from_parts(
        client,
        Default::default(),
        Default::default(),
    ));
    let in_process = tokio::spawn(extension_server_operator::controller::run(
        ctx,
        Some(ns.name.clone()),
    ));
    let selector = format!(
        "labelSelector={}",
        extension_server_operator::names::managed_selector()
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    for verb in ["list", "watch"] {
        let op = (String::new(), "secrets".to_string(), verb.to_string());
        // Mode Secret adds a metadata-only watch of Secrets: no data, and nothing cached.
        let whole_objects = |s: &support::requests::Seen| {
            s.get(&op)
                .is_some_and(|e| !e.ends_with(support::requests::METADATA_ONLY))
        };
        let seen = tokio::time::timeout(Duration::from_secs(30), seen.wait_for(whole_objects))
            .await
            .unwrap()
            .unwrap();
        let request = &seen[&op];
        assert!(
            request.contains(&selector),
            "{verb} without the label selector: {request}"
        );
    }
    in_process.abort();

    let uid = servers.get("cached").await.unwrap().metadata.uid.unwrap();
    servers
        .delete("cached", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(servers, "cached", conditions::is_deleted(&uid)).await;
}
