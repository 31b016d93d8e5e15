//! The demo's second part: the reference custom metrics adapter under the operator
//! (examples/custom-metrics-adapter.yaml), and two HPAs that kube-controller-manager scales on
//! its custom and external metrics (examples/custom-metrics-hpa.yaml).

use std::time::Duration;

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use kube::api::Api;
use kube::runtime::wait::{await_condition, conditions};
use testenv::Cluster;
use testenv::runtime::{PodRuntime, Server};
use testenv::upstream;

use crate::demo_show::{kubectl, ready};

const ADAPTER_FILE: &str = "examples/custom-metrics-adapter.yaml";
const HPA_FILE: &str = "examples/custom-metrics-hpa.yaml";
const NAMESPACE: &str = "custom-metrics";
const ADAPTER: &str = "custom-metrics-apiserver";
const IMAGE: &str = "registry.k8s.io/custom-metrics-apiserver/test-adapter:v1.36.0";

/// The running adapter, until [`RunningAdapter::remove`].
pub struct RunningAdapter {
    _pod: PodRuntime,
}

/// Runs the adapter example, sets the custom metric and waits until both HPAs scaled their
/// Deployments from 1 to 4; prints what a user would look at.
pub async fn run(cluster: &Cluster, client: &Client) -> Result<RunningAdapter> {
    eprintln!("==> building the reference custom metrics adapter (first run only)");
    tokio::task::spawn_blocking(|| Server::for_image(IMAGE).binary()).await??;

    eprintln!("==> applying {ADAPTER_FILE}");
    kubectl(cluster, &["apply", "-f", ADAPTER_FILE], true)?;
    let pod = testenv::runtime::start(cluster, NAMESPACE, ADAPTER).await?;
    let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), NAMESPACE);
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(servers, ADAPTER, ready),
    )
    .await
    .with_context(|| format!("{ADAPTER} did not become Ready within 120 s"))??;
    let api_services = kubectl(cluster, &["get", "apiservices"], false)?;
    println!("$ kubectl get apiservices | grep metrics");
    for line in api_services.lines() {
        if line.starts_with("NAME") || line.contains("metrics.k8s.io") {
            println!("{line}");
        }
    }
    println!();

    eprintln!("==> applying {HPA_FILE}; setting queue-depth to 40 through the adapter's port 8080");
    kubectl(cluster, &["apply", "-f", HPA_FILE], true)?;
    upstream::write_adapter_metric(client, NAMESPACE, ADAPTER, "queue-depth", "40").await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NAMESPACE);
    for worker in ["custom-metric-worker", "external-metric-worker"] {
        upstream::wait_scaled(client, NAMESPACE, worker, 4).await?;
        // The HPA records the new count at its next sync; print it then.
        let recorded = |h: Option<&HorizontalPodAutoscaler>| {
            h.and_then(|h| h.status.as_ref())
                .is_some_and(|s| s.current_replicas == Some(4))
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(hpas.clone(), worker, recorded),
        )
        .await
        .with_context(|| format!("the HPA {worker} did not record 4 replicas within 30 s"))??;
    }
    kubectl(cluster, &["get", "hpa", "-n", NAMESPACE], true)?;
    kubectl(cluster, &["get", "deployments", "-n", NAMESPACE], true)?;
    Ok(RunningAdapter { _pod: pod })
}

impl RunningAdapter {
    /// Deletes the HPAs and the adapter example; returns once the operator has removed the
    /// adapter's APIServices and the server is gone.
    pub async fn remove(self, cluster: &Cluster, client: &Client) -> Result<()> {
        let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), NAMESPACE);
        let uid = servers.get(ADAPTER).await?.metadata.uid.unwrap_or_default();
        kubectl(cluster, &["delete", "-f", HPA_FILE, "--wait=false"], false)?;
        kubectl(
            cluster,
            &["delete", "-f", ADAPTER_FILE, "--wait=false"],
            false,
        )?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(servers, ADAPTER, conditions::is_deleted(&uid)),
        )
        .await
        .with_context(|| format!("{ADAPTER} was not cleaned up within 60 s"))??;
        Ok(())
    }
}
