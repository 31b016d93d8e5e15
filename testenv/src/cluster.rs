//! `up`, `down` and `env` for a named local cluster: etcd, kube-apiserver (with the aggregator),
//! kube-controller-manager, kube-scheduler, kwok and one fake Node, all on loopback.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use serde::{Deserialize, Serialize};

use crate::pod_network::{self, PodNetwork};
use crate::{paths, pki, process, tools};

/// Service ClusterIPs come from loopback, so the aggregator dials 127.x addresses only.
pub const SERVICE_CIDR: &str = "127.64.0.0/16";
/// The `kubernetes` Service's ClusterIP (the first address of [`SERVICE_CIDR`]).
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 1);
/// The fake Node's InternalIP (only data: pods get addresses from the cluster's
/// [`crate::pod_network`]).
const KWOK_NODE_IP: &str = "10.244.0.1";
/// The fake Node's name.
pub const NODE_NAME: &str = "kwok-node-0";
/// The fake Node's address where its kubelet, kwok's server, answers; metrics-server reaches
/// it with `--kubelet-preferred-address-types=ExternalIP --kubelet-use-node-status-port`.
pub const NODE_KUBELET_ADDRESS: &str = "127.0.0.1";
/// kwok's configuration emulating the kubelet's resource metrics.
const KWOK_METRICS: [(&str, &str); 2] = [
    (
        "kwok-metrics-resource.yaml",
        include_str!("../kwok/metrics-resource.yaml"),
    ),
    (
        "kwok-usage-from-annotation.yaml",
        include_str!("../kwok/usage-from-annotation.yaml"),
    ),
];

/// What a running cluster looks like on disk (`cluster.json` in its state directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    pub apiserver_port: u16,
    pub etcd_port: u16,
    pub pids: Vec<(String, u32)>,
    /// How each component was started, for [`Cluster::restart`] (empty in state files written
    /// before it existed).
    #[serde(default)]
    pub components: Vec<Component>,
    /// The Kubernetes version it runs, such as `v1.35.4` (empty in older state files).
    #[serde(default)]
    pub kubernetes: String,
    /// The pod network, `10.<n>.0.0/16` ([`crate::pod_network`]; empty in older state files).
    #[serde(default)]
    pub pod_cidr: String,
    /// Whether the pod network is routed to loopback, so pods' processes can listen there.
    #[serde(default)]
    pub pod_network_routed: bool,
}

/// One component's command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
}

impl ClusterState {
    /// Starts `component`, logging to `<logs>/<name>.log`, and records its pid and command.
    fn launch(&mut self, component: Component, logs: &Path) -> Result<()> {
        let pid = process::spawn(&component.name, &component.binary, &component.args, logs)?;
        self.pids.push((component.name.clone(), pid));
        self.components.push(component);
        Ok(())
    }
}

/// A running cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub instance: String,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub state: ClusterState,
    pub tools: tools::Tools,
}

impl Cluster {
    /// The directory where each component writes `<component>.log`.
    pub fn logs(&self) -> PathBuf {
        process::logs_dir(&self.dir)
    }

    /// Restarts one component (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler` or `kwok`) with the binary and flags it was started with: SIGTERM
    /// (SIGKILL after 10 s), start it again (appending to its log), record the new pid in
    /// `cluster.json`, and wait until the kube-apiserver's `/readyz` is ok (after an etcd
    /// restart, that means the apiserver reaches etcd again). Holds the instance lock meanwhile,
    /// so a concurrent [`up`] waits instead of recreating a cluster that has a process down.
    pub async fn restart(&mut self, component: &str) -> Result<()> {
        let command = self
            .state
            .components
            .iter()
            .find(|c| c.name == component)
            .cloned()
            .with_context(|| {
                let instance = &self.instance;
                format!("cluster {instance} has no recorded command for {component} (recreate it)")
            })?;
        let slot = self
            .state
            .pids
            .iter()
            .position(|(name, _)| name == component)
            .with_context(|| format!("cluster {} has no {component} process", self.instance))?;
        let _lock = lock_async(&self.instance).await?;
        let old = self.state.pids[slot].1;
        tokio::task::spawn_blocking(move || process::terminate(&[old], Duration::from_secs(10)))
            .await?;
        if process::alive(old) {
            bail!("{component} (pid {old}) did not stop");
        }
        let pid = process::spawn(&command.name, &command.binary, &command.args, &self.logs())?;
        self.state.pids[slot].1 = pid;
        write_state(&self.dir, &self.state)?;
        let client = self.client().await?;
        wait_for(
            &format!("kube-apiserver /readyz after restarting {component}"),
            Duration::from_secs(120),
            self,
            || readyz(&client),
        )
        .await
    }

    /// Rotates the front-proxy CA and the aggregator's client certificate, as a cluster
    /// operator would, and restarts kube-apiserver to use them. kube-apiserver then publishes
    /// the new CA in `kube-system/extension-apiserver-authentication`.
    pub async fn rotate_front_proxy_ca(&mut self) -> Result<()> {
        pki::front_proxy(&self.dir.join("pki"))?;
        self.restart("kube-apiserver").await
    }

    /// An admin client for this cluster.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig).await
    }

    /// A client that impersonates `user` (with `groups`), to test what RBAC allows.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let mut config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        Ok(Client::try_from(config)?)
    }

    /// `export` lines for a shell: KUBECONFIG, and PATH with kubectl and helm first.
    pub fn env_lines(&self) -> String {
        let bins: Vec<String> = self
            .tools
            .bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!(
            "export KUBECONFIG={}\nexport PATH={}:\"$PATH\"\n",
            self.kubeconfig.display(),
            bins.join(":")
        )
    }
}

/// Builds a client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let config = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Waits for the cluster's lock file without blocking the async task: two futures of one task
/// (a `join_all` of tests) may both ask, and the one holding the lock must still be polled.
async fn lock_async(instance: &str) -> Result<File> {
    let instance = instance.to_string();
    tokio::task::spawn_blocking(move || lock(&instance)).await?
}

fn lock(instance: &str) -> Result<File> {
    let dir = paths::cluster_dir(instance);
    let parent = dir.parent().context("cluster dir has no parent")?;
    std::fs::create_dir_all(parent)?;
    let file = File::create(parent.join(format!("{instance}.lock")))?;
    file.lock().context("locking the cluster state")?;
    Ok(file)
}

fn write_state(dir: &Path, state: &ClusterState) -> Result<()> {
    std::fs::write(dir.join("cluster.json"), serde_json::to_vec_pretty(state)?)?;
    Ok(())
}

fn read_state(dir: &Path) -> Option<ClusterState> {
    let raw = std::fs::read(dir.join("cluster.json")).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Brings the cluster up with the selected Kubernetes minor ([`tools::KUBERNETES_ENV`]), or
/// reuses it if it is already up, healthy and on that version. Safe to call concurrently from
/// several processes: they serialise on a lock file.
pub async fn up(instance: &str) -> Result<Cluster> {
    up_with(instance, &tools::selected_kubernetes()?).await
}

/// Like [`up`], with Kubernetes `minor` (such as `1.33`).
pub async fn up_with(instance: &str, minor: &str) -> Result<Cluster> {
    let tools = tools::ensure_built_for(minor)?;
    let _lock = lock_async(instance).await?;
    let dir = paths::cluster_dir(instance);
    if let Some(state) = read_state(&dir) {
        let cluster = Cluster {
            instance: instance.to_string(),
            kubeconfig: dir.join("admin.kubeconfig"),
            dir: dir.clone(),
            state,
            tools: tools.clone(),
        };
        if cluster.state.kubernetes != tools.kubernetes_version {
            eprintln!(
                "==> cluster {instance} runs Kubernetes {:?}, not {}; recreating it",
                cluster.state.kubernetes, tools.kubernetes_version
            );
        } else if cluster.state.pod_cidr.is_empty() {
            eprintln!("==> cluster {instance} has no pod network; recreating it");
        } else if healthy(&cluster).await {
            return Ok(cluster);
        } else {
            eprintln!("==> cluster {instance} is not healthy; recreating it");
        }
    }
    stop_and_remove(&dir);
    let started = Instant::now();
    let cluster = start(instance, &dir, tools).await?;
    eprintln!(
        "==> cluster {instance} (Kubernetes {}) is up in {:.1}s (logs in {})",
        cluster.state.kubernetes,
        started.elapsed().as_secs_f64(),
        cluster.logs().display()
    );
    Ok(cluster)
}

/// The running cluster, without starting anything.
pub async fn existing(instance: &str) -> Result<Cluster> {
    let dir = paths::cluster_dir(instance);
    let state = read_state(&dir)
        .with_context(|| format!("cluster {instance} is not up; run `cargo xtask cluster up`"))?;
    // The binaries of the minor the cluster runs (`v1.33.13` is minor 1.33).
    let minor = state
        .kubernetes
        .trim_start_matches('v')
        .rsplit_once('.')
        .map(|(minor, _)| minor.to_string())
        .unwrap_or_else(|| tools::DEFAULT_KUBERNETES.to_string());
    let tools = tools::built_for(&minor)?;
    Ok(Cluster {
        instance: instance.to_string(),
        kubeconfig: dir.join("admin.kubeconfig"),
        dir,
        state,
        tools,
    })
}

/// Tears a dedicated instance down when dropped, also when a test fails.
pub struct TearDown(pub &'static str);

impl Drop for TearDown {
    fn drop(&mut self) {
        let instance = self.0;
        match down(instance) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => eprintln!("cluster {instance}: processes still running: {left:?}"),
            Err(error) => eprintln!("cluster {instance}: tearing down failed: {error:#}"),
        }
    }
}

/// Stops every process of the cluster and removes its state. Returns the processes that were
/// still running afterwards (empty on success).
pub fn down(instance: &str) -> Result<Vec<u32>> {
    let _lock = lock(instance)?;
    let dir = paths::cluster_dir(instance);
    stop_and_remove(&dir);
    Ok(process::processes_mentioning(&dir))
}

fn stop_and_remove(dir: &Path) {
    let state = read_state(dir);
    let mut pids: Vec<u32> = state
        .as_ref()
        .map(|s| s.pids.iter().map(|(_, p)| *p).collect())
        .unwrap_or_default();
    pids.extend(process::processes_mentioning(dir));
    pids.sort_unstable();
    pids.dedup();
    // Clients first, etcd last, so nothing logs a storm of connection errors.
    pids.reverse();
    process::terminate(&pids, Duration::from_secs(10));
    if let Some(state) = state {
        pod_network::release(&PodNetwork {
            cidr: state.pod_cidr,
            routed: state.pod_network_routed,
        });
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A pod network no other cluster's state records, and the lock shared by all clusters:
/// hold it until this cluster's state records the network.
fn allocate_pod_network(dir: &Path) -> Result<(PodNetwork, File)> {
    let clusters = dir
        .parent()
        .context("a cluster directory without a parent")?;
    std::fs::create_dir_all(clusters)?;
    let lock = File::create(clusters.join("pod-network.lock"))?;
    lock.lock().context("locking the pod networks")?;
    let taken: Vec<String> = std::fs::read_dir(clusters)?
        .flatten()
        .filter(|entry| entry.path() != dir)
        .filter_map(|entry| read_state(&entry.path()))
        .map(|state| state.pod_cidr)
        .collect();
    Ok((pod_network::allocate(&taken)?, lock))
}

async fn healthy(cluster: &Cluster) -> bool {
    if !cluster
        .state
        .pids
        .iter()
        .all(|(_, pid)| process::alive(*pid))
    {
        return false;
    }
    let Ok(client) = cluster.client().await else {
        return false;
    };
    readyz(&client).await
}

async fn readyz(client: &Client) -> bool {
    let request = http_get("/readyz");
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = http::Uri::from_maybe_shared(path.to_owned().into_bytes())
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    request
}

fn kubeconfig(dir: &Path, user: &str, port: u16) -> String {
    let file = |name: &str| dir.join("pki").join(name).display().to_string();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: {user}\ncurrent-context: local\nusers:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n",
        ca = file("ca.crt"),
        cert = file(&format!("{user}.crt")),
        key = file(&format!("{user}.key")),
    )
}

async fn start(instance: &str, dir: &Path, tools: tools::Tools) -> Result<Cluster> {
    let pki_dir = dir.join("pki");
    let logs = process::logs_dir(dir);
    pki::generate(&pki_dir, KUBERNETES_SERVICE_IP)?;
    let etcd_port = process::free_port()?;
    let etcd_peer_port = process::free_port()?;
    let apiserver_port = process::free_port()?;
    let kwok_port = process::free_port()?;
    let (network, network_lock) = allocate_pod_network(dir)?;
    for (user, _, _) in pki::CLIENTS {
        std::fs::write(
            dir.join(format!("{user}.kubeconfig")),
            kubeconfig(dir, user, apiserver_port),
        )?;
    }
    let p = |name: &str| pki_dir.join(name).display().to_string();
    let kc = |user: &str| dir.join(format!("{user}.kubeconfig")).display().to_string();
    let mut state = ClusterState {
        apiserver_port,
        etcd_port,
        pids: Vec::new(),
        components: Vec::new(),
        kubernetes: tools.kubernetes_version.clone(),
        pod_cidr: network.cidr.clone(),
        pod_network_routed: network.routed,
    };
    write_state(dir, &state)?;
    drop(network_lock);
    let component = |name: &str, binary: &Path, args: Vec<String>| Component {
        name: name.to_string(),
        binary: binary.to_path_buf(),
        args,
    };

    let etcd_client = format!("http://127.0.0.1:{etcd_port}");
    let etcd_peer = format!("http://127.0.0.1:{etcd_peer_port}");
    let etcd_args = vec![
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={etcd_client}"),
        format!("--advertise-client-urls={etcd_client}"),
        format!("--listen-peer-urls={etcd_peer}"),
        format!("--initial-advertise-peer-urls={etcd_peer}"),
        format!("--initial-cluster=default={etcd_peer}"),
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ];
    state.launch(component("etcd", &tools.etcd, etcd_args), &logs)?;

    let apiserver_args = vec![
        format!("--etcd-servers={etcd_client}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={apiserver_port}"),
        "--endpoint-reconciler-type=none".into(),
        "--authorization-mode=RBAC".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        format!("--requestheader-allowed-names={}", pki::FRONT_PROXY_CLIENT),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
        format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
        "--enable-aggregator-routing=false".into(),
        "--v=1".into(),
    ];
    state.launch(
        component("kube-apiserver", &tools.kube_apiserver, apiserver_args),
        &logs,
    )?;

    let kubeconfig_path = dir.join("admin.kubeconfig");
    let mut cluster = Cluster {
        instance: instance.to_string(),
        dir: dir.to_path_buf(),
        kubeconfig: kubeconfig_path,
        state,
        tools: tools.clone(),
    };
    let client = cluster.client().await?;
    wait_for(
        "kube-apiserver /readyz",
        Duration::from_secs(120),
        &cluster,
        || readyz(&client),
    )
    .await?;

    let kcm_args = vec![
        format!("--kubeconfig={}", kc("kube-controller-manager")),
        format!("--authentication-kubeconfig={}", kc("kube-controller-manager")),
        format!("--authorization-kubeconfig={}", kc("kube-controller-manager")),
        "--use-service-account-credentials=true".into(),
        format!("--root-ca-file={}", p("ca.crt")),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
        "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller".into(),
        // An HPA test scales within seconds instead of waiting for the 15 s default; with no
        // HorizontalPodAutoscaler in the cluster the controller has nothing to do.
        "--horizontal-pod-autoscaler-sync-period=5s".into(),
    ];
    cluster.state.launch(
        component(
            "kube-controller-manager",
            &tools.kube_controller_manager,
            kcm_args,
        ),
        &logs,
    )?;
    let scheduler_args = vec![
        format!("--kubeconfig={}", kc("kube-scheduler")),
        format!("--authentication-kubeconfig={}", kc("kube-scheduler")),
        format!("--authorization-kubeconfig={}", kc("kube-scheduler")),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
    ];
    cluster.state.launch(
        component("kube-scheduler", &tools.kube_scheduler, scheduler_args),
        &logs,
    )?;
    let mut kwok_args = vec![
        format!("--kubeconfig={}", kc("kwok")),
        "--manage-all-nodes=false".into(),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
        format!("--cidr={}", pod_network::kwok_cidr(&network.cidr)),
        format!("--node-ip={KWOK_NODE_IP}"),
        format!("--server-address=127.0.0.1:{kwok_port}"),
        // The fake kubelet's port in the Node's status (metrics-server's
        // --kubelet-use-node-status-port): kwok's server, which also answers HTTPS.
        format!("--node-port={kwok_port}"),
        "--node-lease-duration-seconds=40".into(),
    ];
    for stage in tools::kwok_stage_files(&tools)? {
        kwok_args.push(format!("--config={}", stage.display()));
    }
    // Resource metrics for metrics-server, computed only when scraped.
    for (file, content) in KWOK_METRICS {
        let path = dir.join(file);
        std::fs::write(&path, content)?;
        kwok_args.push(format!("--config={}", path.display()));
    }
    cluster
        .state
        .launch(component("kwok", &tools.kwok, kwok_args), &logs)?;
    write_state(dir, &cluster.state)?;

    create_fake_node(&client).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    wait_until(
        "the fake Node to be Ready",
        Duration::from_secs(90),
        &cluster,
        await_condition(nodes, NODE_NAME, node_ready()),
    )
    .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    wait_until(
        "the controller-manager to create default/default ServiceAccount",
        Duration::from_secs(90),
        &cluster,
        await_condition(accounts, "default", conditions::is_created()),
    )
    .await?;
    Ok(cluster)
}

fn node_ready() -> impl kube::runtime::wait::Condition<Node> {
    |node: Option<&Node>| {
        node.and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }
}

async fn create_fake_node(client: &Client) -> Result<()> {
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                // Where kwok serves this Node's resource metrics (read by metrics-server).
                "metrics.k8s.io/resource-metrics-path":
                    format!("/metrics/nodes/{NODE_NAME}/metrics/resource"),
            },
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "environment": "production"
            }
        },
        "status": {
            // Room for the bench's 1,000 servers, each with one pod.
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1500"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1500"},
            // kwok adds none of these once an InternalIP and a Hostname exist.
            "addresses": [
                {"type": "InternalIP", "address": KWOK_NODE_IP},
                {"type": "Hostname", "address": NODE_NAME},
                {"type": "ExternalIP", "address": NODE_KUBELET_ADDRESS}
            ]
        }
    }))?;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .context("creating the fake Node")?;
    Ok(())
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, cluster: &Cluster, check: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    eprintln!("    waiting for {what}...");
    loop {
        if check().await {
            return Ok(());
        }
        if let Some((name, _)) = cluster.state.pids.iter().find(|(_, p)| !process::alive(*p)) {
            bail!(
                "{name} exited while waiting for {what}; see {}",
                cluster.logs().join(format!("{name}.log")).display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for {what}; logs are in {}",
                cluster.logs().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_until<F, T>(what: &str, timeout: Duration, cluster: &Cluster, fut: F) -> Result<()>
where
    F: std::future::Future<Output = T>,
{
    eprintln!("    waiting for {what}...");
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        anyhow::anyhow!(
            "timed out waiting for {what}; logs are in {}",
            cluster.logs().display()
        )
    })?;
    Ok(())
}
