//! prometheus-adapter under the operator (examples/prometheus-adapter.yaml) on a dedicated
//! instance: Prometheus scrapes the sample workload, the adapter serves the rate of its
//! requests as `http_requests_per_second` through the aggregator, and kube-controller-manager's
//! HPA (examples/sample-workload-hpa.yaml) scales the workload to the load and back down.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use testenv::{manifest, upstream};

use crate::support::grants::GrantsFile;
use crate::support::{Harness, eventually};

const ADAPTER: &str = "prometheus-adapter";

fn example(file: &str) -> String {
    let path: PathBuf = testenv::paths::workspace_root().join("examples").join(file);
    std::fs::read_to_string(path).unwrap()
}

/// An example with the namespaces it names (`monitoring`, `sample-workload`) replaced by the
/// test's, in its objects and in the addresses it gives.
fn moved(file: &str, namespace: &str) -> String {
    example(file)
        .replace(
            "namespaces: [monitoring]",
            &format!("namespaces: [{namespace}]"),
        )
        .replace(".monitoring.svc", &format!(".{namespace}.svc"))
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_adapter_serves_the_request_rate_and_the_hpa_follows_the_load() {
    let grants = GrantsFile::new("prometheus-adapter", "grants: []\n");
    let (_instance, h) =
        Harness::on_instance("prometheus-adapter", "adapter", grants.settings()).await;
    let (ns, client) = (h.ns.name.clone(), h.ns.client.clone());
    grants.write(&moved("grants/examples.yaml", &ns));
    // Built before any timeout starts (minutes when cold).
    tokio::task::spawn_blocking(|| testenv::tools::upstream_server("prometheus-adapter"))
        .await
        .unwrap()
        .unwrap();

    for file in [
        "prometheus.yaml",
        "prometheus-adapter.yaml",
        "sample-workload.yaml",
        "sample-workload-hpa.yaml",
    ] {
        let objects = manifest::parse(&moved(file, &ns)).unwrap();
        manifest::apply(&client, &objects, &ns).await.unwrap();
    }
    let _kubelet = testenv::kubelet::start(&h.ns.cluster, &[&ns])
        .await
        .unwrap();
    h.wait_condition(ADAPTER, "Ready", "True", None).await;

    // The rate of each workload pod, through the aggregator.
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/http_requests_per_second"
    );
    eventually(Duration::from_secs(120), &path, || async {
        upstream::get_raw(&client, &path)
            .await
            .is_ok_and(|list| list["items"].as_array().is_some_and(|i| !i.is_empty()))
    })
    .await;

    // 8 requests per second at 2 per pod: 4 pods.
    upstream::wait_scaled(&client, &ns, "sample-workload", 4)
        .await
        .unwrap();

    // Without load the rate falls to 0 and the HPA goes back to its minimum.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .patch(
            "load-generator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    upstream::wait_scaled(&client, &ns, "sample-workload", 1)
        .await
        .unwrap();
}
