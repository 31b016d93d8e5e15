//! Checks against real upstream aggregated API servers run by the pod-runtime stand-in
//! ([`crate::runtime`]): the reference custom and external metrics adapter of
//! sigs.k8s.io/custom-metrics-apiserver, and metrics-server. Their APIServices are cluster-wide:
//! run them on a dedicated instance, or on a cluster where nothing else serves those groups.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::NODE_NAME;

/// The port of the reference adapter's `POST /write-metrics/...` endpoint (hard-coded upstream).
pub const ADAPTER_WRITE_PORT: u16 = 8080;
/// How long the HPA controller may take to act on a metric (it syncs every 5 s here).
const SCALE_TIMEOUT: Duration = Duration::from_secs(90);

/// `GET path` through the API server (and so through the aggregator), as JSON.
pub async fn get_raw(client: &Client, path: &str) -> Result<Value> {
    let request = http::Request::get(path).body(Vec::new())?;
    client
        .request::<Value>(request)
        .await
        .with_context(|| format!("GET {path}"))
}

/// Sets the reference adapter's custom metric `metric` of its own Service `adapter` in
/// `namespace` to `value`; returns the metric's path (`namespaces/<ns>/services/<adapter>/<metric>`).
pub async fn write_adapter_metric(
    client: &Client,
    namespace: &str,
    adapter: &str,
    metric: &str,
    value: &str,
) -> Result<String> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let address = services
        .get(adapter)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .with_context(|| format!("Service {namespace}/{adapter} has no ClusterIP"))?;
    let path = format!("namespaces/{namespace}/services/{adapter}/{metric}");
    write_metric(&address, &path, value).await?;
    Ok(path)
}

/// Sets custom metric `path` to `value` with the reference adapter's
/// `POST /write-metrics/<path>` on its pod's port 8080 (the stand-in binds the pod on its
/// Service's ClusterIP).
async fn write_metric(pod_address: &str, path: &str, value: &str) -> Result<()> {
    let mut stream = tokio::net::TcpStream::connect((pod_address, ADAPTER_WRITE_PORT))
        .await
        .context("connecting to the adapter's write port")?;
    let body = serde_json::to_string(value)?;
    let request = format!(
        "POST /write-metrics/{path} HTTP/1.1\r\nHost: {pod_address}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        len = body.len(),
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        bail!("POST /write-metrics/{path}: {response}");
    }
    Ok(())
}

/// Waits until HorizontalPodAutoscaler `name`'s controller has scaled Deployment `name` to
/// `replicas`; on timeout, fails with the HPA's status (its conditions say why).
pub async fn wait_scaled(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let scaled = move |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref())
            .is_some_and(|s| s.replicas == Some(replicas))
    };
    if tokio::time::timeout(SCALE_TIMEOUT, await_condition(deployments, name, scaled))
        .await
        .is_ok()
    {
        return Ok(());
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let hpa = hpas.get_opt(name).await?.and_then(|h| h.status);
    bail!(
        "the HPA did not scale {name} to {replicas} replicas within {SCALE_TIMEOUT:?}; its status: {hpa:?}"
    )
}

/// metrics-server reports the fake Node through the aggregator: kwok's emulated kubelet
/// resource metrics reach it. metrics.k8s.io has no watch, so this polls until `timeout`.
pub async fn check_node_metrics(client: &Client, timeout: Duration) -> Result<Value> {
    let path = "/apis/metrics.k8s.io/v1beta1/nodes";
    let reported = |list: &Value| {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|item| item["metadata"]["name"] == NODE_NAME)
    };
    let mut last = Value::Null;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let polled = tokio::time::timeout(timeout, async {
        loop {
            tick.tick().await;
            match get_raw(client, path).await {
                Ok(list) if reported(&list) => return list,
                Ok(list) => last = list,
                Err(error) => last = Value::String(format!("{error:#}")),
            }
        }
    })
    .await;
    polled.map_err(|_| {
        anyhow::anyhow!("{path} did not report Node {NODE_NAME} within {timeout:?}; last: {last}")
    })
}

/// Whether the Node carries what metrics-server needs from kwok (a cluster started before
/// kwok emulated resource metrics lacks it).
pub async fn node_serves_resource_metrics(client: &Client) -> Result<bool> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = nodes.get(NODE_NAME).await?;
    Ok(node
        .annotations()
        .contains_key("metrics.k8s.io/resource-metrics-path"))
}

/// KEDA's CRDs (`config/crd/bases` of the pinned module's source), to apply server-side: one
/// is larger than client-side apply allows.
pub fn keda_crds() -> Result<Vec<kube::api::DynamicObject>> {
    let output = std::process::Command::new("go")
        .args([
            "list",
            "-m",
            "-f",
            "{{.Dir}}",
            "github.com/kedacore/keda/v2",
        ])
        .current_dir(crate::paths::go_modules_dir().join("keda"))
        .env("GOFLAGS", "-mod=readonly")
        .output()
        .context("go list")?;
    if !output.status.success() {
        bail!("go list: {}", String::from_utf8_lossy(&output.stderr));
    }
    let dir = String::from_utf8(output.stdout)?;
    let bases = std::path::Path::new(dir.trim()).join("config/crd/bases");
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(&bases).with_context(|| format!("{}", bases.display()))? {
        crds.extend(crate::manifest::read(&entry?.path())?);
    }
    Ok(crds)
}

/// metrics-server's example with what kwok's emulated kubelet needs: it answers at the Node's
/// ExternalIP, with a throwaway certificate.
pub fn metrics_server_for_kwok(objects: &mut [kube::api::DynamicObject]) -> Result<()> {
    let server = objects
        .iter_mut()
        .find(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == "ExtensionServer")
        })
        .context("no ExtensionServer")?;
    let args = server.data["spec"]["args"]
        .as_array_mut()
        .context("an ExtensionServer without args")?;
    for arg in args.iter_mut() {
        if arg
            .as_str()
            .is_some_and(|a| a.starts_with("--kubelet-preferred-address-types="))
        {
            *arg = "--kubelet-preferred-address-types=ExternalIP".into();
        }
    }
    args.push("--kubelet-insecure-tls".into());
    Ok(())
}
