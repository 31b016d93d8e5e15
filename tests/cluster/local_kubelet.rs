//! The local cluster runs pods as `cargo xtask cluster up` starts it: the kubelet stand-in, a
//! process of its own (`xtask cluster kubelet`), serves an ExtensionServer applied by hand in
//! a namespace of the user's, leaves test namespaces to their tests' own stand-ins, and stops
//! with its containers when the cluster goes down.

use std::time::Duration;

use extension_server_operator::context::Settings;
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use testenv::kubelet::daemon;
use testenv::{manifest, process};

use crate::support::fixture::Server;
use crate::support::{Harness, eventually};

const INSTANCE: &str = "local-kubelet";
const USERS_NAMESPACE: &str = "hand-applied";

fn available(server: Option<&ExtensionServer>) -> bool {
    server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    })
}

#[tokio::test]
async fn the_clusters_kubelet_serves_a_hand_applied_server_and_stops_with_the_cluster() {
    let xtask = testenv::paths::workspace_root()
        .join("target")
        .join("debug")
        .join("xtask");
    assert!(
        xtask.exists(),
        "{} is missing: run `cargo build -p xtask`",
        xtask.display()
    );
    let (_instance, h) = Harness::watching_all(INSTANCE, "kubelet", Settings::default()).await;
    let cluster = h.ns.cluster.clone();
    let args = ["cluster", "kubelet", "--instance", INSTANCE];
    let kubelet = daemon::ensure_running(&cluster, &xtask, &args).unwrap();
    assert_eq!(
        daemon::ensure_running(&cluster, &xtask, &args).unwrap(),
        kubelet,
        "a running stand-in is kept, not started twice"
    );

    // A test namespace: kwok runs its pod, the stand-in leaves it to the test.
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("left-to-the-test", &group).replicas(1))
        .await;
    h.wait_condition("left-to-the-test", "DeploymentAvailable", "True", None)
        .await;

    // The user's namespace: examples/basic.yaml as it is, but for its namespace.
    let namespaces: Api<Namespace> = Api::all(h.ns.client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(USERS_NAMESPACE.into());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let basic = std::fs::read_to_string(
        testenv::paths::workspace_root()
            .join("examples")
            .join("basic.yaml"),
    )
    .unwrap()
    .replace(
        "namespace: default",
        &format!("namespace: {USERS_NAMESPACE}"),
    );
    let objects = manifest::parse(&basic).unwrap();
    manifest::apply(&h.ns.client, &objects, USERS_NAMESPACE)
        .await
        .unwrap();
    let servers: Api<ExtensionServer> = Api::namespaced(h.ns.client.clone(), USERS_NAMESPACE);
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(servers, "my-extension-server", available),
    )
    .await
    .expect("the hand-applied server did not become Available within 120 s")
    .unwrap();
    // The sample server's objects (alpha, beta, gamma), through the aggregator, once
    // kube-apiserver's aggregated discovery lists the new group (it follows availability).
    eventually(
        Duration::from_secs(60),
        "kubectl get myresources",
        || async {
            let listed =
                h.ns.kubectl(&["get", "myresources.my.custom.api", "--all-namespaces"]);
            listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("alpha")
        },
    )
    .await;
    let pods = cluster.dir.join("kubelet");
    assert!(pods.join(USERS_NAMESPACE).is_dir());
    assert!(
        !pods.join(&h.ns.name).exists(),
        "the stand-in ran a pod of a test namespace"
    );

    // `cluster down` stops the stand-in and its containers.
    let running = process::processes_mentioning(&cluster.dir);
    assert!(running.contains(&kubelet));
    let containers: Vec<u32> = running
        .iter()
        .copied()
        .filter(|pid| process::rooted_in(*pid, &pods.join(USERS_NAMESPACE)))
        .collect();
    assert!(!containers.is_empty(), "no container process found");
    drop(h);
    let left = testenv::cluster::down(INSTANCE).unwrap();
    assert!(left.is_empty(), "processes left after down: {left:?}");
    assert!(
        running.iter().all(|pid| !process::alive(*pid)),
        "{running:?}"
    );
}
