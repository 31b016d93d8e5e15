//! Real upstream aggregated API servers, installed by hand as their own manifests would install
//! them and run by the pod-runtime stand-in ([`crate::runtime`]): the reference custom and
//! external metrics adapter of sigs.k8s.io/custom-metrics-apiserver, and metrics-server.
//!
//! Each check installs a Deployment, a Service, a ServiceAccount with the delegated
//! authentication and authorization bindings, and the APIServices (skipping TLS verification:
//! the serving certificate is self-signed), starts the stand-in, and waits until the aggregator
//! reports the APIServices Available and a request through it answers. The APIServices are
//! cluster-wide: run a check on a dedicated instance, or on a cluster where nothing else serves
//! those groups. [`Installed::remove`] deletes what the namespace's deletion does not.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{Cluster, NODE_NAME};
use crate::runtime::{self, PodRuntime, Server};

/// The custom metrics adapter's image (any tag runs the pinned `test-adapter`).
pub const ADAPTER_IMAGE: &str = "registry.k8s.io/custom-metrics-apiserver/test-adapter:v1.36.0";
/// metrics-server's image (any tag runs the pinned `metrics-server`).
pub const METRICS_SERVER_IMAGE: &str = "registry.k8s.io/metrics-server/metrics-server:v0.8.0";
/// The external metric the adapter always serves: 42 with label `foo=bar`, 43 with `foo=baz`.
pub const ADAPTER_EXTERNAL_METRIC: &str = "my-external-metric";
/// The port of the adapter's `POST /write-metrics/...` endpoint (hard-coded upstream).
pub const ADAPTER_WRITE_PORT: u16 = 8080;
/// The Service port forwarded to [`ADAPTER_WRITE_PORT`].
pub const ADAPTER_WRITE_SERVICE_PORT: u16 = 80;

/// How long an APIService may take to become Available once its server runs.
const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The field manager of everything applied here.
const MANAGER: &str = "testenv";

/// One aggregated server to install.
struct ServerSpec {
    name: &'static str,
    image: &'static str,
    args: Vec<String>,
    /// (name, container port, Service port); the first is the secure port.
    ports: Vec<(&'static str, u16, u16)>,
    /// (group, version, versionPriority).
    api_services: Vec<(&'static str, &'static str, u16)>,
    /// Rules of a ClusterRole bound to the server's ServiceAccount (none: no ClusterRole).
    rules: Value,
}

/// What an install created, for its checks and its removal.
pub struct Installed {
    pub namespace: String,
    pub name: String,
    /// The Service's ClusterIP, where the stand-in binds the server.
    pub cluster_ip: String,
    /// Names of the APIServices, such as `v1beta1.external.metrics.k8s.io`.
    pub api_services: Vec<String>,
    cluster_role_bindings: Vec<String>,
    cluster_role: Option<String>,
    auth_reader: String,
}

impl Installed {
    /// Deletes the cluster-scoped objects and the RoleBinding in kube-system (the namespace's
    /// deletion takes the rest).
    pub async fn remove(&self, client: &Client) -> Result<()> {
        let params = DeleteParams::default();
        let apis: Api<APIService> = Api::all(client.clone());
        for name in &self.api_services {
            apis.delete(name, &params).await.map(|_| ()).or_else(gone)?;
        }
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        for name in &self.cluster_role_bindings {
            bindings
                .delete(name, &params)
                .await
                .map(|_| ())
                .or_else(gone)?;
        }
        if let Some(name) = &self.cluster_role {
            let roles: Api<ClusterRole> = Api::all(client.clone());
            roles
                .delete(name, &params)
                .await
                .map(|_| ())
                .or_else(gone)?;
        }
        let readers: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-system");
        readers
            .delete(&self.auth_reader, &params)
            .await
            .map(|_| ())
            .or_else(gone)?;
        Ok(())
    }
}

/// A deletion that found nothing is fine.
fn gone(error: kube::Error) -> Result<()> {
    match error {
        kube::Error::Api(status) if status.is_not_found() => Ok(()),
        other => Err(other.into()),
    }
}

/// A running install: the objects and the process serving them (stopped on drop).
pub struct Running {
    pub installed: Installed,
    pub pod: PodRuntime,
}

/// The reference adapter: custom.metrics.k8s.io v1beta1 and v1beta2, external.metrics.k8s.io
/// v1beta1; `/write-metrics` on the container's second port, reached through the Service's
/// second port.
fn adapter_spec() -> ServerSpec {
    ServerSpec {
        name: "custom-metrics-adapter",
        image: ADAPTER_IMAGE,
        args: vec!["--secure-port=6443".into(), "--v=2".into()],
        ports: vec![
            ("https", 6443, 443),
            ("http", ADAPTER_WRITE_PORT, ADAPTER_WRITE_SERVICE_PORT),
        ],
        api_services: vec![
            ("custom.metrics.k8s.io", "v1beta1", 100),
            ("custom.metrics.k8s.io", "v1beta2", 200),
            ("external.metrics.k8s.io", "v1beta1", 100),
        ],
        rules: json!([]),
    }
}

/// metrics-server, scraping kwok's emulated kubelet resource metrics on the fake Node.
fn metrics_server_spec() -> ServerSpec {
    ServerSpec {
        name: "metrics-server",
        image: METRICS_SERVER_IMAGE,
        args: vec![
            "--secure-port=10250".into(),
            // kwok's server answers at the Node's ExternalIP and the port in its status.
            "--kubelet-preferred-address-types=ExternalIP".into(),
            "--kubelet-use-node-status-port".into(),
            // kwok's serving certificate is a throwaway self-signed one.
            "--kubelet-insecure-tls".into(),
            // The shortest it accepts: the first node metrics appear after two scrapes.
            "--metric-resolution=10s".into(),
        ],
        ports: vec![("https", 10250, 443)],
        api_services: vec![("metrics.k8s.io", "v1beta1", 100)],
        // As upstream's manifest: read Nodes and Pods, and scrape the kubelets.
        rules: json!([
            {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}
        ]),
    }
}

/// Applies `value` as a `K` with server-side apply.
async fn apply<K>(api: &Api<K>, value: Value) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(value).context("an object to apply")?;
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {} {name}", K::kind(&Default::default())))
}

/// Creates the server's objects in `namespace` (and its bindings and APIServices).
async fn install(client: &Client, namespace: &str, spec: &ServerSpec) -> Result<Installed> {
    let name = spec.name;
    let ns = namespace;
    let scoped = format!("{ns}:{name}");
    let subject = json!([{"kind": "ServiceAccount", "name": name, "namespace": ns}]);

    apply(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
    )
    .await?;
    let mut cluster_role_bindings = vec![format!("{scoped}:auth-delegator")];
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    apply(
        &crbs,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_role_bindings[0]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:auth-delegator"},
            "subjects": subject,
        }),
    )
    .await?;
    let auth_reader = format!("{scoped}:auth-reader");
    apply(
        &Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": auth_reader, "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "extension-apiserver-authentication-reader"},
            "subjects": subject,
        }),
    )
    .await?;
    let mut cluster_role = None;
    if spec.rules.as_array().is_some_and(|r| !r.is_empty()) {
        apply(
            &Api::<ClusterRole>::all(client.clone()),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": scoped}, "rules": spec.rules,
            }),
        )
        .await?;
        cluster_role_bindings.push(scoped.clone());
        apply(
            &crbs,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": scoped},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": scoped},
                "subjects": subject,
            }),
        )
        .await?;
        cluster_role = Some(scoped.clone());
    }

    let pem = crate::pki::self_signed_serving(&[
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ])?;
    let tls = format!("{name}-tls");
    apply(
        &Api::<Secret>::namespaced(client.clone(), ns),
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": tls},
            "stringData": {"tls.crt": pem.cert, "tls.key": pem.key},
        }),
    )
    .await?;
    let labels = json!({"app": name});
    let container_ports: Vec<Value> = spec
        .ports
        .iter()
        .map(|(port_name, port, _)| json!({"name": port_name, "containerPort": port}))
        .collect();
    apply(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [{
                            "name": name,
                            "image": spec.image,
                            "args": spec.args,
                            "ports": container_ports,
                            // k8s.io/apiserver's default --cert-dir, from a container's `/`.
                            "volumeMounts": [{"name": "serving-cert", "readOnly": true,
                                "mountPath": "/apiserver.local.config/certificates"}],
                        }],
                        "volumes": [{"name": "serving-cert", "secret": {
                            "secretName": tls,
                            "items": [{"key": "tls.crt", "path": "apiserver.crt"},
                                      {"key": "tls.key", "path": "apiserver.key"}],
                        }}],
                    },
                },
            },
        }),
    )
    .await?;
    let service_ports: Vec<Value> = spec
        .ports
        .iter()
        .map(|(port_name, _, port)| json!({"name": port_name, "port": port, "targetPort": port_name}))
        .collect();
    let service = apply(
        &Api::<Service>::namespaced(client.clone(), ns),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": labels, "ports": service_ports},
        }),
    )
    .await?;
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service has no ClusterIP")?;

    let apis: Api<APIService> = Api::all(client.clone());
    let mut api_services = Vec::new();
    for (group, version, priority) in &spec.api_services {
        let api_name = format!("{version}.{group}");
        apply(
            &apis,
            json!({
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": api_name},
                "spec": {
                    "group": group, "version": version,
                    "groupPriorityMinimum": 100, "versionPriority": priority,
                    "insecureSkipTLSVerify": true,
                    "service": {"namespace": ns, "name": name, "port": spec.ports[0].2},
                },
            }),
        )
        .await?;
        api_services.push(api_name);
    }
    Ok(Installed {
        namespace: ns.to_string(),
        name: name.to_string(),
        cluster_ip,
        api_services,
        cluster_role_bindings,
        cluster_role,
        auth_reader,
    })
}

/// Builds (on first use) and installs `spec` in `namespace`, starts it under the stand-in, and
/// waits until its APIServices are Available.
async fn run(cluster: &Cluster, namespace: &str, spec: ServerSpec) -> Result<Running> {
    let server = Server::for_image(spec.image);
    // A cold build takes minutes; it is not part of any timeout below.
    tokio::task::spawn_blocking(move || server.binary()).await??;
    let client = cluster.client().await?;
    let installed = install(&client, namespace, &spec).await?;
    let pod = runtime::start(cluster, namespace, spec.name).await?;
    let running = Running { installed, pod };
    for name in &running.installed.api_services {
        wait_available(&client, name, AVAILABLE_TIMEOUT)
            .await
            .with_context(|| {
                format!(
                    "see {}",
                    runtime::pod_dir(cluster, namespace, spec.name)
                        .join("server.log")
                        .display()
                )
            })?;
    }
    Ok(running)
}

/// Runs the reference custom metrics adapter in `namespace` until the returned value is
/// dropped; returns once its three APIServices are Available.
pub async fn run_custom_metrics_adapter(cluster: &Cluster, namespace: &str) -> Result<Running> {
    run(cluster, namespace, adapter_spec()).await
}

/// Runs metrics-server in `namespace` until the returned value is dropped; returns once
/// `v1beta1.metrics.k8s.io` is Available.
pub async fn run_metrics_server(cluster: &Cluster, namespace: &str) -> Result<Running> {
    run(cluster, namespace, metrics_server_spec()).await
}

/// Waits until APIService `name` is Available, or fails with its last condition.
pub async fn wait_available(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let apis: Api<APIService> = Api::all(client.clone());
    if tokio::time::timeout(timeout, await_condition(apis.clone(), name, is_available()))
        .await
        .is_ok()
    {
        return Ok(());
    }
    let last = apis.get_opt(name).await?;
    bail!(
        "APIService {name} is not Available after {timeout:?}: {:?}",
        available_condition(last.as_ref())
    )
}

/// The Available condition's status and message.
fn available_condition(api: Option<&APIService>) -> Option<(String, String)> {
    api?.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Available")
        .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()))
}

/// `GET path` through the API server (and so through the aggregator), as JSON.
pub async fn get_raw(client: &Client, path: &str) -> Result<Value> {
    let request = http::Request::get(path).body(Vec::new())?;
    client
        .request::<Value>(request)
        .await
        .with_context(|| format!("GET {path}"))
}

/// Sets custom metric `path` (such as `namespaces/ns/services/name/metric`) to `value` with the
/// adapter's `POST /write-metrics/<path>`, through the Service's second port.
pub async fn write_metric(adapter: &Installed, path: &str, value: &str) -> Result<()> {
    let mut stream =
        tokio::net::TcpStream::connect((adapter.cluster_ip.as_str(), ADAPTER_WRITE_SERVICE_PORT))
            .await
            .context("connecting to the adapter's write port")?;
    let body = serde_json::to_string(value)?;
    let request = format!(
        "POST /write-metrics/{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        host = adapter.cluster_ip,
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

/// The adapter's fixed external metric answers through the aggregator, and a custom metric
/// written to it reads back through v1beta2.
pub async fn check_custom_metrics_adapter(client: &Client, adapter: &Installed) -> Result<()> {
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{ADAPTER_EXTERNAL_METRIC}"
    );
    let external = get_raw(client, &path).await?;
    let values: Vec<&str> = external["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["value"].as_str())
        .collect();
    if !values.contains(&"42") {
        bail!("{path} does not carry the adapter's fixed value 42: {external}");
    }

    let ns = &adapter.namespace;
    let target = format!("namespaces/{ns}/services/{}/queue-depth", adapter.name);
    write_metric(adapter, &target, "7").await?;
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/services/{}/queue-depth",
        adapter.name
    );
    // v1beta2 answers a fetch by name with a one-item MetricValueList.
    let custom = get_raw(client, &path).await?;
    if custom["items"][0]["value"] != "7" {
        bail!("{path} does not read back the written 7: {custom}");
    }
    Ok(())
}

/// A HorizontalPodAutoscaler on a one-replica Deployment, with the adapter's external metric
/// (42 for `foo=bar`) against an average value of 11 per pod, makes the HPA controller scale it
/// to ceil(42 / 11) = 4.
pub async fn check_external_metric_scales(client: &Client, namespace: &str) -> Result<()> {
    let name = "scaled-by-external-metric";
    let labels = json!({"app": name});
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    apply(
        &deployments,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                    {"name": "app", "image": "registry.k8s.io/pause:3.10"}
                ]}},
            },
        }),
    )
    .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    apply(
        &hpas,
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 1,
                "maxReplicas": 10,
                "metrics": [{"type": "External", "external": {
                    "metric": {"name": ADAPTER_EXTERNAL_METRIC,
                               "selector": {"matchLabels": {"foo": "bar"}}},
                    "target": {"type": "AverageValue", "averageValue": "11"},
                }}],
            },
        }),
    )
    .await?;
    let scaled = |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref())
            .is_some_and(|s| s.replicas == Some(4))
    };
    if tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(deployments.clone(), name, scaled),
    )
    .await
    .is_err()
    {
        let hpa = hpas.get_opt(name).await?.and_then(|h| h.status);
        bail!("the HPA did not scale {name} to 4 replicas within 90 s; its status: {hpa:?}");
    }
    Ok(())
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

/// The APIService is Available.
pub fn is_available() -> impl Condition<APIService> {
    |api: Option<&APIService>| available_condition(api).is_some_and(|(s, _)| s == "True")
}
