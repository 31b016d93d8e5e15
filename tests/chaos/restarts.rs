//! Fault suite, part 3: control-plane restarts. On a dedicated cluster instance, the
//! kube-apiserver is restarted while the operator creates N servers, then etcd while it rolls out
//! a spec change. The same operator task, never restarted, converges every server each time
//! (`Registered=True` at the current generation), and no server's CA changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;
use crate::support::chaos::{self, until};
use crate::support::fixture::Server;

const INSTANCE: &str = "chaos-restarts";
/// How long every server may take to converge once the restarted component is ready again.
const CONVERGE: Duration = Duration::from_secs(90);

/// Registered at the current generation, with every desired replica ready.
fn converged(server: &ExtensionServer) -> bool {
    let Some(status) = &server.status else {
        return false;
    };
    status.observed_generation == server.metadata.generation
        && status.ready_replicas == server.spec.replicas
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Registered" && c.status == "True")
}

/// Each server's `ca.crt` now; panics if one differs from what `seen` recorded earlier.
async fn check_cas(secrets: &Api<Secret>, seen: &mut BTreeMap<String, Vec<u8>>) {
    for secret in secrets.list(&ListParams::default()).await.unwrap() {
        let name = secret.metadata.name.unwrap_or_default();
        let Some(ca) = name
            .strip_suffix("-ca")
            .and(secret.data.as_ref())
            .and_then(|d| d.get("ca.crt"))
        else {
            continue;
        };
        let previous = seen.entry(name.clone()).or_insert_with(|| ca.0.clone());
        assert!(*previous == ca.0, "the CA in Secret {name} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_converges_through_apiserver_and_etcd_restarts() {
    let _cores = crate::sharing_the_cores().await;
    let started = Instant::now();
    // The operator's logs, shown when the test fails (RUST_LOG overrides the level).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,extension_server_operator=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let _instance = testenv::cluster::TearDown(INSTANCE);
    let mut cluster = testenv::cluster::up(INSTANCE).await.unwrap();
    let (ns, operator) = support::operator_on(cluster.clone(), "chaos-restarts").await;

    let n = chaos::sized(5, 20);
    let servers: Api<ExtensionServer> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let managed = "app.kubernetes.io/managed-by=extension-server-operator";
    let mut survived = 0;
    let report = |survived: usize| {
        chaos::record(
            "restarts",
            json!({
                "restarts_survived": survived,
                "servers": n,
                "components": ["kube-apiserver", "etcd"],
                "seconds": started.elapsed().as_secs_f64(),
            }),
        );
    };
    for i in 0..n {
        let group = format!("s{i}.restart.chaos.example.com");
        servers
            .create(
                &PostParams::default(),
                &Server::in_group(&format!("s{i}"), &group)
                    .replicas(1)
                    .port(443)
                    .build(),
            )
            .await
            .unwrap();
    }
    let all_converged =
        |list: &[Arc<ExtensionServer>]| list.len() == n && list.iter().all(|s| converged(s));

    // The kube-apiserver goes down as soon as the operator has written the first CA.
    let first_ca = |list: &[Arc<Secret>]| {
        list.iter()
            .any(|s| s.metadata.name.as_ref().is_some_and(|n| n.ends_with("-ca")))
    };
    until(secrets.clone(), managed, CONVERGE, first_ca)
        .await
        .expect("no CA Secret was written");
    let mut cas = BTreeMap::new();
    check_cas(&secrets, &mut cas).await;
    let before = until(servers.clone(), "", CONVERGE, |_| true)
        .await
        .unwrap();
    eprintln!(
        "restarting kube-apiserver with {} of {n} servers converged",
        before.iter().filter(|s| converged(s)).count()
    );
    let restart = Instant::now();
    cluster.restart("kube-apiserver").await.unwrap();
    let ready = restart.elapsed().as_secs_f64();
    let phase1 = until(servers.clone(), "", CONVERGE, all_converged).await;
    if phase1.is_none() {
        report(survived);
        panic!("not every server converged after the kube-apiserver restart");
    }
    survived += 1;
    eprintln!(
        "kube-apiserver ready {ready:.1}s after the restart began, all converged after {:.1}s",
        restart.elapsed().as_secs_f64()
    );
    assert!(!operator.is_finished(), "the operator task ended");
    check_cas(&secrets, &mut cas).await;
    assert_eq!(cas.len(), n, "one CA Secret per server");

    // A spec change (replicas 2 adds a PodDisruptionBudget); etcd goes down at the first PDB.
    let replicas = Patch::Merge(json!({"spec": {"replicas": 2}}));
    for i in 0..n {
        servers
            .patch(&format!("s{i}"), &PatchParams::default(), &replicas)
            .await
            .unwrap();
    }
    let pdbs: Api<PodDisruptionBudget> = ns.api();
    until(pdbs, managed, CONVERGE, |list| !list.is_empty())
        .await
        .expect("no PodDisruptionBudget was written");
    let restart = Instant::now();
    cluster.restart("etcd").await.unwrap();
    let ready = restart.elapsed().as_secs_f64();
    let phase2 = until(servers.clone(), "", CONVERGE, all_converged).await;
    if phase2.is_none() {
        report(survived);
        panic!("not every server converged after the etcd restart");
    }
    survived += 1;
    eprintln!(
        "etcd: apiserver ready {ready:.1}s after the restart began, all converged after {:.1}s",
        restart.elapsed().as_secs_f64()
    );
    assert!(!operator.is_finished(), "the operator task ended");
    check_cas(&secrets, &mut cas).await;
    assert_eq!(cas.len(), n, "one CA Secret per server");
    report(survived);
    // cluster.json names the new processes, so a later `up` finds the instance healthy.
    let on_disk = testenv::cluster::existing(INSTANCE).await.unwrap();
    assert_eq!(on_disk.state.pids, cluster.state.pids);
    let alive = |pids: &[(String, u32)]| pids.iter().all(|(_, p)| testenv::process::alive(*p));
    assert!(alive(&on_disk.state.pids), "a component is down");

    // The finalizers clear: every server is gone before the instance is torn down.
    servers
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    until(servers, "", CONVERGE, |list| list.is_empty())
        .await
        .expect("ExtensionServers were not deleted");
    operator.abort();
    eprintln!(
        "{survived} restarts survived with {n} servers in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
