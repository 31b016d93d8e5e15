//! Unrelated Secrets never reach the operator: every list and watch of Secrets asks for
//! metadata only, the cache's carries the operator's label selector, and only a Secret with an
//! ExtensionServer's controller ownerRef is then read whole, by name. So many large unrelated
//! Secrets, or Secrets that only carry the operator's labels, do not grow the resident memory
//! of the real operator process.
use std::collections::BTreeMap;
use std::time::Duration;

use extension_server_operator::crd::ExtensionServer;
use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::conditions;
use testenv::TestNamespace;
use testenv::operator::OperatorProcess;

use crate::support;
use crate::support::fixture::Server;

/// The real operator binary on a new namespace, with ExtensionServer `name` Registered.
async fn registered_under_the_binary(
    prefix: &str,
    name: &str,
) -> (TestNamespace, OperatorProcess, Api<ExtensionServer>) {
    let ns = TestNamespace::create(prefix).await.unwrap();
    support::install_crd(&ns.client).await;
    let operator = support::operator::start(crate::OPERATOR, &ns, "operator", &[]);
    operator.wait_listening().await.unwrap();
    let server = Server::new(name)
        .namespace(&ns.name)
        .group(&format!("{}.custom.api", ns.name))
        .build();
    let servers: Api<ExtensionServer> = ns.api();
    servers
        .create(&PostParams::default(), &server)
        .await
        .unwrap();
    support::wait_for(servers.clone(), name, support::is_true("Registered")).await;
    (ns, operator, servers)
}

const UNRELATED: usize = 200;
const SECRET_BYTES: usize = 64 * 1024;

#[tokio::test]
async fn unrelated_secrets_never_enter_the_operators_memory() {
    let (ns, operator, servers) = registered_under_the_binary("es-secrets", "cached").await;
    let before = operator.rss_kib().unwrap();

    let secrets: Api<Secret> = ns.api();
    create_secrets(
        &secrets,
        "unrelated",
        UNRELATED,
        SECRET_BYTES,
        BTreeMap::new(),
    )
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
    let mut synced = ctx.synced.subscribe();
    let in_process = tokio::spawn(extension_server_operator::controller::run(
        ctx,
        Some(ns.name.clone()),
    ));
    tokio::time::timeout(Duration::from_secs(30), synced.wait_for(|s| *s))
        .await
        .unwrap()
        .unwrap();
    // Every list and watch of Secrets asks for metadata only (a whole-object request would
    // replace the example kept here); the cache reads whole only the Secrets it controls, by
    // name.
    for verb in ["list", "watch"] {
        let op = (String::new(), "secrets".to_string(), verb.to_string());
        let seen = tokio::time::timeout(
            Duration::from_secs(30),
            seen.wait_for(|s| s.contains_key(&op)),
        )
        .await
        .unwrap()
        .unwrap();
        let request = &seen[&op];
        assert!(
            request.ends_with(support::requests::METADATA_ONLY),
            "{verb} of whole Secrets: {request}"
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

/// Creates `count` Secrets `<prefix>-<i>` of `bytes` bytes of data each, with `labels`.
async fn create_secrets(
    secrets: &Api<Secret>,
    prefix: &str,
    count: usize,
    bytes: usize,
    labels: BTreeMap<String, String>,
) {
    stream::iter(0..count)
        .for_each_concurrent(8, |i| {
            let (secrets, labels) = (secrets.clone(), labels.clone());
            async move {
                let payload: Vec<u8> = (0..bytes).map(|b| (b * 31 + i) as u8).collect();
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(format!("{prefix}-{i}")),
                        labels: Some(labels),
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
}

const LABELLED: usize = 100;
const LABELLED_BYTES: usize = 700 * 1024;

#[tokio::test]
async fn secrets_that_only_carry_the_operators_labels_stay_out_of_its_memory() {
    let (ns, operator, servers) = registered_under_the_binary("es-labelled", "target").await;
    let secrets: Api<Secret> = ns.api();
    // Settle the first burst of allocations before the baseline.
    support::delete_and_wait_recreated(secrets.clone(), "target-tls").await;
    let before = operator.rss_kib().unwrap();

    // The labels the operator puts on its own Secrets, even naming the server; no ownerRef.
    let labels = secrets.get("target-tls").await.unwrap().metadata.labels;
    let server_object = servers.get("target").await.unwrap();
    create_secrets(
        &secrets,
        "labelled",
        LABELLED,
        LABELLED_BYTES,
        labels.unwrap(),
    )
    .await;
    support::delete_and_wait_recreated(secrets.clone(), "target-tls").await;
    let after = operator.rss_kib().unwrap();
    let data_kib = (LABELLED * LABELLED_BYTES / 1024) as u64;
    println!(
        "operator RSS: {before} KiB before, {after} KiB after {LABELLED} labelled foreign Secrets ({data_kib} KiB of data)"
    );
    // Cached, they would add their 70 MiB; their data is never even sent to the operator.
    assert!(
        after < before + 5 * 1024,
        "RSS grew from {before} KiB to {after} KiB: labelled foreign Secrets were cached"
    );

    let uid = server_object.metadata.uid.unwrap();
    servers
        .delete("target", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(servers, "target", conditions::is_deleted(&uid)).await;
}
