//! The demo's third part: the other two metrics APIs. KEDA (examples/keda.yaml) takes the
//! workload over from the HPA with a ScaledObject (examples/keda-scaledobject.yaml) whose
//! metric its metrics server, under the operator, serves as `external.metrics.k8s.io`; and
//! metrics-server (examples/metrics-server.yaml) serves `metrics.k8s.io` to `kubectl top`.

use std::time::Duration;

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::wait::await_condition;
use testenv::runtime::{PodRuntime, Server};
use testenv::{Cluster, manifest, upstream};

use crate::demo_show::{kubectl, ready};

const HPA_FILE: &str = "examples/sample-workload-hpa.yaml";
const KEDA_FILES: [&str; 2] = ["examples/keda.yaml", "examples/keda-scaledobject.yaml"];
const METRICS_SERVER_FILE: &str = "examples/metrics-server.yaml";
const WORKLOAD: &str = "sample-workload";

/// metrics-server's pod, until dropped.
pub struct RunningMetricsServer {
    _pod: PodRuntime,
}

/// Replaces the HPA with the ScaledObject and waits until it is Ready.
pub async fn run_keda(cluster: &Cluster, client: &Client) -> Result<()> {
    eprintln!("==> building KEDA (first run only: about 11 minutes on 2 cores)");
    tokio::task::spawn_blocking(|| testenv::tools::upstream_server("keda")).await??;
    eprintln!("==> applying KEDA's CRDs (server-side: one is too large for kubectl apply)");
    manifest::apply(client, &upstream::keda_crds()?, "keda").await?;
    kubectl(cluster, &["delete", "-f", HPA_FILE], true)?;
    for file in KEDA_FILES {
        kubectl(cluster, &["apply", "-f", file], true)?;
    }
    let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), "keda");
    let name = "keda-metrics-apiserver";
    tokio::time::timeout(
        Duration::from_secs(180),
        await_condition(servers, name, ready),
    )
    .await
    .with_context(|| format!("{name} did not become Ready within 180 s"))??;
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    let scaled_objects: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), WORKLOAD, &ApiResource::from_gvk(&gvk));
    let scaled_object_ready = |o: Option<&DynamicObject>| {
        o.and_then(|o| o.data["status"]["conditions"].as_array().cloned())
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(scaled_objects, WORKLOAD, scaled_object_ready),
    )
    .await
    .context("the ScaledObject did not become Ready within 120 s")??;
    // KEDA's HPA reads the trigger through the aggregator: it holds the workload at 4 once it
    // has read it.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), WORKLOAD);
    let hpa = format!("keda-hpa-{WORKLOAD}");
    let reading = |h: Option<&HorizontalPodAutoscaler>| {
        h.and_then(|h| h.status.as_ref()).is_some_and(|s| {
            s.current_replicas == Some(4)
                && s.current_metrics.as_ref().is_some_and(|m| !m.is_empty())
        })
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(hpas, &hpa, reading),
    )
    .await
    .with_context(|| format!("{hpa} read no metric within 120 s"))??;
    upstream::wait_scaled(client, WORKLOAD, WORKLOAD, 4).await?;
    kubectl(cluster, &["get", "scaledobject", "-n", WORKLOAD], true)?;
    kubectl(cluster, &["get", "hpa", "-n", WORKLOAD], true)?;
    Ok(())
}

/// Runs metrics-server and prints `kubectl top pods` of the workload.
pub async fn run_metrics_server(
    cluster: &Cluster,
    client: &Client,
) -> Result<RunningMetricsServer> {
    eprintln!("==> building metrics-server (first run only)");
    let image = "registry.k8s.io/metrics-server/metrics-server:v0.8.0";
    tokio::task::spawn_blocking(move || Server::for_image(image).binary()).await??;
    eprintln!(
        "==> applying {METRICS_SERVER_FILE}, with --kubelet-preferred-address-types=ExternalIP and --kubelet-insecure-tls for kwok's emulated kubelet"
    );
    let mut objects = manifest::read(std::path::Path::new(METRICS_SERVER_FILE))?;
    upstream::metrics_server_for_kwok(&mut objects)?;
    manifest::apply(client, &objects, "kube-system").await?;
    let pod = testenv::runtime::start(cluster, "kube-system", "metrics-server").await?;
    let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), "kube-system");
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(servers, "metrics-server", ready),
    )
    .await
    .context("metrics-server did not become Ready within 120 s")??;
    // metrics.k8s.io has no watch: metrics-server answers once it has scraped twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut ticks = tokio::time::interval(Duration::from_secs(2));
    loop {
        ticks.tick().await;
        let top = kubectl(cluster, &["top", "pods", "-n", WORKLOAD], false);
        if let Ok(top) = top
            && top.contains(WORKLOAD)
        {
            println!("$ kubectl top pods -n {WORKLOAD}\n{top}");
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "kubectl top pods showed no pod within 90 s"
        );
    }
    crate::demo_show::print_metrics_api_services(cluster)?;
    Ok(RunningMetricsServer { _pod: pod })
}

/// Deletes KEDA's and metrics-server's examples; returns once the operator has removed their
/// servers.
pub async fn remove(cluster: &Cluster, client: &Client) -> Result<()> {
    for file in KEDA_FILES.iter().rev().chain([&METRICS_SERVER_FILE]) {
        kubectl(cluster, &["delete", "-f", file, "--wait=false"], false)?;
    }
    for (namespace, name) in [
        ("keda", "keda-metrics-apiserver"),
        ("kube-system", "metrics-server"),
    ] {
        let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), namespace);
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(servers, name, |s: Option<&ExtensionServer>| s.is_none()),
        )
        .await
        .with_context(|| format!("{name} was not cleaned up within 60 s"))??;
    }
    Ok(())
}
