//! The metrics APIs served by real upstream servers under the operator, each on a dedicated
//! instance (their APIServices are cluster-wide), from the examples as a user applies them:
//! the reference adapter drives kube-controller-manager's HPA on a custom and an external
//! metric, and metrics-server reports the kwok Node and its pods to `kubectl top`.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::DynamicObject;
use testenv::runtime::Server as Binary;
use testenv::{manifest, upstream};

use crate::support::grants::GrantsFile;
use crate::support::{Harness, eventually};

const ADAPTER: &str = "custom-metrics-apiserver";
const METRICS_SERVER: &str = "metrics-server";

fn example(file: &str) -> PathBuf {
    testenv::paths::workspace_root().join("examples").join(file)
}

/// The examples' grants, with the test's namespace in place of the one an example names.
fn grants_moved(example_namespace: &str, namespace: &str) -> String {
    std::fs::read_to_string(example("grants/examples.yaml"))
        .unwrap()
        .replace(
            &format!("namespaces: [{example_namespace}]"),
            &format!("namespaces: [{namespace}]"),
        )
}

/// The ExtensionServer among `objects`.
fn extension_server(objects: &mut [DynamicObject]) -> &mut DynamicObject {
    objects
        .iter_mut()
        .find(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == "ExtensionServer")
        })
        .unwrap()
}

/// Builds the binary the stand-in runs for the example's image: minutes on first use, so
/// before any timeout starts.
async fn build_for(objects: &mut [DynamicObject]) {
    let image = extension_server(objects).data["spec"]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let binary = Binary::for_image(&image);
    assert_ne!(binary, Binary::Sample, "{image} runs an upstream server");
    tokio::task::spawn_blocking(move || binary.binary())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_adapter_drives_the_hpa_on_a_custom_and_an_external_metric() {
    let grants = GrantsFile::new("custom-metrics", "grants: []\n");
    let (_instance, h) = Harness::on_instance("custom-metrics", "adapter", grants.settings()).await;
    let (ns, client) = (h.ns.name.clone(), h.ns.client.clone());
    grants.write(&grants_moved("custom-metrics", &ns));

    let mut adapter = manifest::read(&example("custom-metrics-adapter.yaml")).unwrap();
    build_for(&mut adapter).await;
    manifest::apply(&client, &adapter, &ns).await.unwrap();
    let _pod = testenv::runtime::start(&h.ns.cluster, &ns, ADAPTER)
        .await
        .unwrap();
    let ready = h.wait_condition(ADAPTER, "Ready", "True", None).await;
    let listed: Vec<String> = ready
        .status
        .unwrap()
        .api_services
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        listed,
        [
            "v1beta2.custom.metrics.k8s.io",
            "v1beta1.custom.metrics.k8s.io",
            "v1beta1.external.metrics.k8s.io"
        ]
    );

    manifest::apply(
        &client,
        &manifest::read(&example("custom-metrics-hpa.yaml")).unwrap(),
        &ns,
    )
    .await
    .unwrap();
    // The adapter's fixed external metric: 42 against 11 per pod.
    upstream::wait_scaled(&client, &ns, "external-metric-worker", 4)
        .await
        .unwrap();

    // The custom metric exists once written: 40 against 10 per pod.
    let metric = upstream::write_adapter_metric(&client, &ns, ADAPTER, "queue-depth", "40")
        .await
        .unwrap();
    upstream::wait_scaled(&client, &ns, "custom-metric-worker", 4)
        .await
        .unwrap();
    let read_back = upstream::get_raw(
        &client,
        &format!("/apis/custom.metrics.k8s.io/v1beta2/{metric}"),
    )
    .await
    .unwrap();
    assert_eq!(read_back["items"][0]["value"], "40", "{read_back}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_server_under_the_operator_reports_the_kwok_node_and_its_pods() {
    let grants = GrantsFile::new("metrics-server", "grants: []\n");
    let (_instance, h) = Harness::on_instance("metrics-server", "metrics", grants.settings()).await;
    let (ns, client) = (h.ns.name.clone(), h.ns.client.clone());
    assert!(
        upstream::node_serves_resource_metrics(&client)
            .await
            .unwrap(),
        "kwok emulates the kubelet's resource metrics"
    );
    grants.write(&grants_moved("kube-system", &ns));

    let mut objects = manifest::read(&example("metrics-server.yaml")).unwrap();
    build_for(&mut objects).await;
    upstream::metrics_server_for_kwok(&mut objects).unwrap();
    manifest::apply(&client, &objects, &ns).await.unwrap();
    let _pod = testenv::runtime::start(&h.ns.cluster, &ns, METRICS_SERVER)
        .await
        .unwrap();
    h.wait_condition(METRICS_SERVER, "Ready", "True", None)
        .await;

    let nodes = upstream::check_node_metrics(&client, Duration::from_secs(90))
        .await
        .unwrap();
    eprintln!("{nodes}");
    eventually(Duration::from_secs(90), "kubectl top pods", || async {
        let out = h.ns.kubectl(&["top", "pods", "-n", &ns]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(METRICS_SERVER)
    })
    .await;
}
