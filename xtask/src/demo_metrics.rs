//! The demo's second part: the custom metrics stack a cluster runs. Prometheus
//! (examples/prometheus.yaml) scrapes the sample workload (examples/sample-workload.yaml),
//! prometheus-adapter under the operator (examples/prometheus-adapter.yaml) serves the rate of
//! its requests, and kube-controller-manager's HPA (examples/sample-workload-hpa.yaml) scales
//! the workload on it; then KEDA and metrics-server ([`crate::demo_keda`]). The cluster's
//! kubelet stand-in runs their pods.

use std::time::Duration;

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use kube::api::Api;
use kube::runtime::wait::{await_condition, conditions};
use testenv::Cluster;
use testenv::upstream;

use crate::demo_show::{kubectl, ready};

/// Applied in this order, deleted in the reverse one.
const FILES: [&str; 4] = [
    "examples/prometheus.yaml",
    "examples/sample-workload.yaml",
    "examples/prometheus-adapter.yaml",
    "examples/sample-workload-hpa.yaml",
];
const MONITORING: &str = "monitoring";
const WORKLOAD: &str = "sample-workload";
const ADAPTER: &str = "prometheus-adapter";

/// The running stack, until [`RunningStack::remove`].
pub struct RunningStack {
    _metrics_server: crate::demo_keda::RunningMetricsServer,
}

/// Runs the stack and waits until the HPA scaled the workload from 1 to 4 pods on the load
/// generator's 8 requests per second, then KEDA and metrics-server; prints what a user would
/// look at.
pub async fn run(cluster: &Cluster, client: &Client) -> Result<RunningStack> {
    eprintln!("==> building prometheus-adapter (first run only)");
    tokio::task::spawn_blocking(|| testenv::tools::upstream_server("prometheus-adapter")).await??;
    for file in FILES {
        kubectl(cluster, &["apply", "-f", file], true)?;
    }
    let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), MONITORING);
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(servers, ADAPTER, ready),
    )
    .await
    .with_context(|| format!("{ADAPTER} did not become Ready within 120 s"))??;
    crate::demo_show::print_metrics_api_services(cluster)?;

    eprintln!("==> waiting for the HPA to scale {WORKLOAD} on http_requests_per_second");
    upstream::wait_scaled(client, WORKLOAD, WORKLOAD, 4).await?;
    // The HPA records the new count at its next sync; print it then.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), WORKLOAD);
    let recorded = |h: Option<&HorizontalPodAutoscaler>| {
        h.and_then(|h| h.status.as_ref())
            .is_some_and(|s| s.current_replicas == Some(4))
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(hpas, WORKLOAD, recorded),
    )
    .await
    .with_context(|| format!("the HPA {WORKLOAD} did not record 4 replicas within 30 s"))??;
    kubectl(cluster, &["get", "hpa", "-n", WORKLOAD], true)?;
    kubectl(cluster, &["get", "deployments", "-n", WORKLOAD], true)?;
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{WORKLOAD}/pods/*/http_requests_per_second"
    );
    kubectl(cluster, &["get", "--raw", &path], true)?;
    crate::demo_keda::run_keda(cluster, client).await?;
    let metrics_server = crate::demo_keda::run_metrics_server(cluster, client).await?;
    Ok(RunningStack {
        _metrics_server: metrics_server,
    })
}

impl RunningStack {
    /// Deletes the examples; returns once the operator has removed the adapter's APIServices
    /// and the server is gone.
    pub async fn remove(self, cluster: &Cluster, client: &Client) -> Result<()> {
        let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), MONITORING);
        let uid = servers.get(ADAPTER).await?.metadata.uid.unwrap_or_default();
        crate::demo_keda::remove(cluster, client).await?;
        for file in FILES.iter().rev() {
            kubectl(
                cluster,
                &["delete", "-f", file, "--wait=false", "--ignore-not-found"],
                false,
            )?;
        }
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(servers, ADAPTER, conditions::is_deleted(&uid)),
        )
        .await
        .with_context(|| format!("{ADAPTER} was not cleaned up within 60 s"))??;
        Ok(())
    }
}
