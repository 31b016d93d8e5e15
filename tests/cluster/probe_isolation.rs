//! Probes never hold reconcile slots: 150 external servers whose host accepts TCP but never
//! answers TLS (each probe waits out its timeouts) do not hold back another server's
//! registration.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::tls::certs;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};

use crate::support::Harness;
use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;

/// Loopback, outside the cluster's Service range; listed exactly in the test's grant.
const SILENT_HOST: &str = "127.0.9.5";
const SILENT_SERVERS: usize = 150;

/// Servers whose first probe finding is not in yet.
fn still_probing(servers: &[ExtensionServer]) -> usize {
    servers
        .iter()
        .filter(|s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "BackendReachable" && c.reason == "Probing")
            })
        })
        .count()
}

#[tokio::test]
async fn unreachable_external_servers_do_not_hold_back_another_servers_registration() {
    // Accepts connections (the kernel does) and never speaks TLS.
    let silent = std::net::TcpListener::bind((SILENT_HOST, 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    let grants = GrantsFile::new("probe-isolation", "grants: []\n");
    let h = Harness::start_with("probe-isolation", grants.settings()).await;
    grants.write(&format!(
        "grants: [{{namespaces: [{}], groups: ['*.custom.api'], external: {{hosts: [{SILENT_HOST}], ports: [{port}]}}}}]\n",
        h.ns.name
    ));
    let ca = certs::generate_ca("silent ca", Timestamp::now(), Duration::from_secs(3600)).unwrap();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("silent-ca".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "ca.crt".to_string(),
            ByteString(ca.cert_pem.into_bytes()),
        )])),
        ..Default::default()
    };
    h.ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    // A baseline: one server's registration with nothing else going on.
    let started = Instant::now();
    h.create(&Server::new("baseline").group("baseline.custom.api"))
        .await;
    h.wait_condition("baseline", "Registered", "True", None)
        .await;
    let baseline = started.elapsed();

    let servers = futures::stream::iter(0..SILENT_SERVERS)
        .map(|i| {
            let server = Server::new(&format!("silent-{i}"))
                .group(&format!("silent-{i}.custom.api"))
                .external(SILENT_HOST, port)
                .tls("{mode: Secret, secretName: silent-ca}");
            let h = &h;
            async move { h.create(&server).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(servers.len(), SILENT_SERVERS);
    // Every one has had a pass: its probe is pending, and status says so.
    crate::support::eventually(
        Duration::from_secs(120),
        "every silent server reports its probe pending",
        || {
            let h = &h;
            async move {
                let listed = h.servers().list(&Default::default()).await.unwrap().items;
                let silent: Vec<_> = listed
                    .into_iter()
                    .filter(|s| {
                        s.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("silent-"))
                    })
                    .filter(|s| s.status.is_some())
                    .collect();
                silent.len() == SILENT_SERVERS
            }
        },
    )
    .await;

    let started = Instant::now();
    h.create(&Server::new("witness").group("witness.custom.api"))
        .await;
    h.wait_condition("witness", "Registered", "True", None)
        .await;
    let with_silent = started.elapsed();
    let listed = h.servers().list(&Default::default()).await.unwrap().items;
    let probing = still_probing(&listed);
    println!(
        "registration: {baseline:?} alone, {with_silent:?} beside {SILENT_SERVERS} silent external servers ({probing} still on their first probe)"
    );
    // Each silent probe waits out a 3 s timeout, 8 at a time: the first round takes about a
    // minute. The witness registered while most were still on it, so no pass waited for one.
    assert!(
        probing >= SILENT_SERVERS / 2,
        "{probing} of {SILENT_SERVERS} still probing when the witness registered after {with_silent:?}"
    );
    drop(silent);
}
