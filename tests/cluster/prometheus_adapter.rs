//! prometheus-adapter under the operator (examples/prometheus-adapter.yaml) on a dedicated
//! instance: Prometheus scrapes the sample workload, the adapter serves the rate of its
//! requests as `http_requests_per_second` through the aggregator, and kube-controller-manager's
//! HPA (examples/sample-workload-hpa.yaml) scales the workload to the load and back down; every
//! panel of the chart's Grafana dashboard has data in that Prometheus.

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

    // The operator runs in the test, not as a pod: its metrics are served here and Prometheus
    // scrapes them with a static job, as the chart's ServiceMonitor would have it scrape the pod.
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_address = metrics.local_addr().unwrap();
    tokio::spawn(extension_server_operator::http::serve(
        metrics,
        h.ctx.clone(),
    ));
    let prometheus = moved("prometheus.yaml", &ns).replace(
        "    scrape_configs:\n",
        &format!(
            "    scrape_configs:\n      - job_name: extension-server-operator\n        static_configs:\n          - targets: [\"{metrics_address}\"]\n"
        ),
    );
    manifest::apply(&client, &manifest::parse(&prometheus).unwrap(), &ns)
        .await
        .unwrap();
    for file in [
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

    dashboard_panels_have_data(&client, &ns).await;

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

/// Every panel query of the chart's dashboard returns data from the stack's Prometheus.
async fn dashboard_panels_have_data(client: &kube::Client, namespace: &str) {
    let path = testenv::paths::workspace_root()
        .join("charts/extension-server-operator/files/dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let what = format!("data for the panel {} ({expr})", panel["title"]);
            eventually(Duration::from_secs(60), &what, || async {
                testenv::prometheus::query(client, namespace, expr)
                    .await
                    .is_ok_and(|result| !result.is_empty())
            })
            .await;
        }
    }
}
