//! A stand-in for the container runtime and kube-proxy, for one Deployment whose pods run an
//! aggregated API server. kwok only pretends the pods run; this starts the real process where
//! the aggregator dials: the Service's ClusterIP and port.
//!
//! The container image picks the binary ([`IMAGES`]; the tag or digest does not matter):
//!
//! | image repository                                        | binary                    | built from                             |
//! |---------------------------------------------------------|---------------------------|----------------------------------------|
//! | `registry.k8s.io/custom-metrics-apiserver/test-adapter` | `test-adapter`            | `testenv/go/custom-metrics-adapter`    |
//! | `*/k8s-test-metrics-adapter-<arch>` (upstream's name)   | `test-adapter`            | `testenv/go/custom-metrics-adapter`    |
//! | `registry.k8s.io/metrics-server/metrics-server`         | `metrics-server`          | `testenv/go/metrics-server`            |
//! | anything else                                           | `sample-extension-server` | `cargo build -p sample-extension-server` |
//!
//! The upstream binaries are built on first use ([`crate::tools::upstream_server`]); call
//! [`Server::binary`] before waiting on anything with a timeout, so a cold build is not counted.
//!
//! **The sample server** gets the TLS files from the mounted Secret as flags, runs under the
//! pod's ServiceAccount (a kubeconfig with a TokenRequest token), gets the container's
//! environment (values and Secret/ConfigMap references resolved) and its own flags from the
//! container args ([`FORWARDED_FLAGS`]).
//!
//! **An upstream server** gets the container's `command` (all but the image's entrypoint, which
//! the table replaces) and `args` verbatim, the container's environment, and what a kubelet and
//! a container would give it that a host process lacks, as flags after the pod's own (the last
//! one wins): `--bind-address` (the ClusterIP), `--secure-port` (see kube-proxy below), and the
//! ServiceAccount kubeconfig under each flag the binary reads one from
//! ([`Server::kubeconfig_flags`]). It starts in a per-pod directory holding
//! `apiserver.local.config/certificates/apiserver.{crt,key}` (the TLS Secret's `tls.crt` and
//! `tls.key`): k8s.io/apiserver's default `--cert-dir`, relative to a container's `/` where
//! the operator also mounts the serving certificate, so no TLS flag is needed. Other paths in
//! its flags are host paths: volume mounts are not simulated.
//!
//! Like a rollout it restarts the process when the pod template's image, command, annotations,
//! args or environment change: the sample server rolls (the new process listens, with
//! SO_REUSEPORT, before the old one drains); an upstream server is stopped first, as it cannot
//! share its ports. Like the kubelet, which refreshes a mounted Secret only at its next sync, it
//! picks up a change to the Secret alone after [`VOLUME_REFRESH`] (the kubelet's default sync is
//! a minute).
//!
//! Like kube-proxy it forwards the Service's first port only to the container port the server
//! really listens on: a server whose `--secure-port` (8443 for the sample server, 443 for
//! k8s.io/apiserver, unless the args set it) differs from the container port is unreachable
//! through the Service. The Service's further ports are the container's extra ports (such as
//! the adapter's `/write-metrics` on 8080): a port equal to its target needs nothing, as the
//! process binds the target itself; another is forwarded from `<ClusterIP>:<port>` to
//! `<ClusterIP>:<target>`. The adapter binds 8080 on every address (upstream hard-codes
//! `:8080`), so one adapter pod can run on the machine at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Secret, Service, ServiceAccount, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;

/// How long a change to the mounted Secret alone takes to reach the running server.
pub const VOLUME_REFRESH: Duration = Duration::from_secs(10);

/// Container args passed on to the sample server; the runtime sets the address, port, TLS
/// files and kubeconfig itself.
pub const FORWARDED_FLAGS: [&str; 4] = ["--group=", "--versions=", "--resources=", "--token-env="];

/// The server binaries the stand-in can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The project's sample extension server.
    Sample,
    /// sigs.k8s.io/custom-metrics-apiserver's `test-adapter`.
    CustomMetricsAdapter,
    /// sigs.k8s.io/metrics-server.
    MetricsServer,
}

/// How an image is recognised: by its whole repository, or by the start of its last path
/// segment (for names that carry an architecture suffix).
#[derive(Debug, Clone, Copy)]
pub enum ImageMatch {
    Repository(&'static str),
    NamePrefix(&'static str),
}

/// The image to binary table (see the module docs); an image matching none runs the sample
/// server.
pub const IMAGES: &[(ImageMatch, Server)] = &[
    (
        ImageMatch::Repository("registry.k8s.io/custom-metrics-apiserver/test-adapter"),
        Server::CustomMetricsAdapter,
    ),
    // The name upstream's deploy manifest and Makefile give the adapter image.
    (
        ImageMatch::NamePrefix("k8s-test-metrics-adapter"),
        Server::CustomMetricsAdapter,
    ),
    (
        ImageMatch::Repository("registry.k8s.io/metrics-server/metrics-server"),
        Server::MetricsServer,
    ),
];

/// The image repository: without the tag or digest.
fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rsplit_once(':') {
        // A colon after the last slash starts the tag; before it, a registry port.
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    }
}

impl Server {
    /// The server that runs for container image `image`.
    pub fn for_image(image: &str) -> Server {
        let repository = repository(image);
        let name = repository.rsplit('/').next().unwrap_or(repository);
        IMAGES
            .iter()
            .find(|(matcher, _)| match matcher {
                ImageMatch::Repository(r) => repository == *r,
                ImageMatch::NamePrefix(p) => name.starts_with(p),
            })
            .map_or(Server::Sample, |(_, server)| *server)
    }

    /// The binary, built first if it is an upstream server not built yet (which can take
    /// minutes: call this before waiting on anything with a timeout).
    pub fn binary(self) -> Result<PathBuf> {
        match self {
            Server::Sample => sample_server_binary(),
            Server::CustomMetricsAdapter => crate::tools::upstream_server("custom-metrics-adapter"),
            Server::MetricsServer => crate::tools::upstream_server("metrics-server"),
        }
    }

    /// The flags under which the binary reads a kubeconfig; the stand-in passes the pod's
    /// ServiceAccount kubeconfig to each (a host process has no in-cluster config).
    pub fn kubeconfig_flags(self) -> &'static [&'static str] {
        match self {
            Server::Sample => &["--kubeconfig"],
            Server::CustomMetricsAdapter => &[
                "--lister-kubeconfig",
                "--authentication-kubeconfig",
                "--authorization-kubeconfig",
            ],
            Server::MetricsServer => &[
                "--kubeconfig",
                "--authentication-kubeconfig",
                "--authorization-kubeconfig",
            ],
        }
    }

    /// The secure port the binary listens on unless its args say otherwise.
    fn default_secure_port(self) -> i32 {
        match self {
            Server::Sample => 8443,
            // k8s.io/apiserver's SecureServingOptions default.
            Server::CustomMetricsAdapter | Server::MetricsServer => 443,
        }
    }

    /// A line the server logs once it listens.
    fn serving_line(self) -> &'static str {
        match self {
            Server::Sample => "serving on",
            Server::CustomMetricsAdapter | Server::MetricsServer => "Serving securely on",
        }
    }

    /// How long it may take to start listening.
    fn start_timeout(self) -> Duration {
        match self {
            Server::Sample => Duration::from_secs(20),
            // Reads the authentication ConfigMap and discovery first.
            Server::CustomMetricsAdapter | Server::MetricsServer => Duration::from_secs(60),
        }
    }
}

/// What the process is started with; a change restarts it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Launch {
    server: Server,
    bind: String,
    port: u16,
    /// The Service's further ports: (port, container port).
    extra_ports: Vec<(u16, u16)>,
    tls_crt: Vec<u8>,
    tls_key: Vec<u8>,
    service_account: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The pod template's annotations: a change is a rollout.
    template_annotations: BTreeMap<String, String>,
}

/// A running stand-in; dropping it stops the server.
pub struct PodRuntime {
    stop: watch::Sender<bool>,
    override_tls: watch::Sender<Option<(Vec<u8>, Vec<u8>)>>,
    task: tokio::task::JoinHandle<()>,
    /// Number of (re)starts so far, to wait on.
    pub starts: watch::Receiver<u64>,
    /// The Secret data the last start used: tls.crt.
    pub serving: watch::Receiver<Vec<u8>>,
}

impl Drop for PodRuntime {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

impl PodRuntime {
    /// Serves this certificate and key instead of the mounted Secret's (None: the Secret's).
    pub fn serve_certificate(&self, tls: Option<(Vec<u8>, Vec<u8>)>) {
        self.override_tls.send_replace(tls);
    }

    /// Waits until the server has been started more than `after` times.
    pub async fn started_more_than(&self, after: u64, timeout: Duration) -> Result<u64> {
        let mut starts = self.starts.clone();
        let result = tokio::time::timeout(timeout, starts.wait_for(|n| *n > after))
            .await
            .context("the server was not (re)started in time")?
            .map(|n| *n)?;
        Ok(result)
    }
}

/// The sample server binary, built by `cargo xtask test`/`demo` (or `cargo build -p
/// sample-extension-server`); `SAMPLE_SERVER_BIN` overrides the path.
pub fn sample_server_binary() -> Result<PathBuf> {
    let path = std::env::var_os("SAMPLE_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::paths::workspace_root()
                .join("target")
                .join("debug")
                .join("sample-extension-server")
        });
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build -p sample-extension-server`",
            path.display()
        );
    }
    Ok(path)
}

/// Starts the sample server as a plain process (no pod, no Service), with `args`, logging to
/// `log`; returns once it serves. Killed when the returned child is dropped.
pub async fn spawn_sample_server(args: &[String], log: &Path) -> Result<Child> {
    let binary = sample_server_binary()?;
    launch(Server::Sample, &binary, args, &[], None, log).await
}

/// Starts `binary` with `args` and `env` in `cwd`, appending its output to `log`, and waits
/// until it serves.
async fn launch(
    server: Server,
    binary: &Path,
    args: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
    log: &Path,
) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = Command::new(binary);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    wait_serving(server, stderr, log).await?;
    Ok(child)
}

/// Runs the server of Deployment `name` in `namespace` (the binary its image names,
/// [`IMAGES`]) until dropped.
pub async fn start(cluster: &Cluster, namespace: &str, name: &str) -> Result<PodRuntime> {
    let client = cluster.client().await?;
    let workdir = cluster.dir.join("pods").join(namespace).join(name);
    std::fs::create_dir_all(&workdir)?;
    let (stop, stop_rx) = watch::channel(false);
    let (starts_tx, starts) = watch::channel(0u64);
    let (serving_tx, serving) = watch::channel(Vec::new());
    let (override_tls, override_rx) = watch::channel(None);
    let server = cluster.clone();
    let (namespace, name) = (namespace.to_string(), name.to_string());
    let task = tokio::spawn(async move {
        let mut runner = Runner {
            cluster: server,
            client,
            namespace,
            name,
            workdir,
            child: None,
            forwarders: Vec::new(),
            current: None,
            override_tls: override_rx,
        };
        runner.run(stop_rx, starts_tx, serving_tx).await;
        runner.stop_child().await;
    });
    Ok(PodRuntime {
        stop,
        override_tls,
        task,
        starts,
        serving,
    })
}

struct Runner {
    cluster: Cluster,
    client: kube::Client,
    namespace: String,
    name: String,
    workdir: PathBuf,
    child: Option<Child>,
    /// kube-proxy's forwarding of the Service's further ports.
    forwarders: Vec<JoinHandle<()>>,
    current: Option<Launch>,
    /// A certificate and key to serve instead of the Secret's (to simulate a misconfigured pod).
    override_tls: watch::Receiver<Option<(Vec<u8>, Vec<u8>)>>,
}

impl Runner {
    async fn run(
        &mut self,
        mut stop: watch::Receiver<bool>,
        starts: watch::Sender<u64>,
        serving: watch::Sender<Vec<u8>>,
    ) {
        let by_name = || watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut secret_events = watcher(secrets, watcher::Config::default())
            .touched_objects()
            .map(|_| ())
            .boxed();
        let mut refresh_at: Option<tokio::time::Instant> = None;
        let mut override_changes = self.override_tls.clone();
        let mut changes = futures::stream::select_all([
            watcher(deployments, by_name())
                .touched_objects()
                .map(|_| ())
                .boxed(),
            watcher(services, by_name())
                .touched_objects()
                .map(|_| ())
                .boxed(),
        ]);
        loop {
            let refresh = async {
                match refresh_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = override_changes.changed() => {}
                change = changes.next() => if change.is_none() { return },
                change = secret_events.next() => {
                    if change.is_none() { return }
                    refresh_at.get_or_insert_with(|| tokio::time::Instant::now() + VOLUME_REFRESH);
                    continue;
                }
                () = refresh => refresh_at = None,
            }
            let desired = match self.desired().await {
                Ok(desired) => desired,
                Err(error) => {
                    // Like a kubelet that cannot reach the API server: the pod keeps running.
                    eprintln!("pod runtime {}/{}: {error:#}", self.namespace, self.name);
                    continue;
                }
            };
            if desired != self.current {
                // A rolling restart: the new sample server listens (SO_REUSEPORT) before the
                // old one drains, unless the address changes. Upstream servers cannot share
                // their ports: the old one stops first.
                let rolling = matches!((&desired, &self.current),
                    (Some(new), Some(old)) if new.bind == old.bind && new.port == old.port
                        && new.server == Server::Sample && old.server == Server::Sample);
                if !rolling {
                    self.stop_child().await;
                }
                self.stop_forwarders();
                let old = self.child.take();
                if let Some(launch) = &desired {
                    match self.spawn(launch).await {
                        Ok(child) => {
                            self.child = Some(child);
                            self.forward_ports(launch);
                            serving.send_replace(launch.tls_crt.clone());
                            starts.send_modify(|n| *n += 1);
                        }
                        Err(error) => eprintln!("pod runtime: {error:#}"),
                    }
                }
                if let Some(old) = old {
                    terminate(old).await;
                }
                self.current = desired;
            }
        }
    }

    /// What should run now, or None (no replicas, no Service, no Secret yet).
    async fn desired(&self) -> Result<Option<Launch>> {
        let ns = &self.namespace;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let Some(deployment) = deployments.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let spec = deployment.spec.unwrap_or_default();
        if spec.replicas == Some(0) {
            return Ok(None);
        }
        let template_annotations = spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .unwrap_or_default();
        let pod = spec.template.spec.unwrap_or_default();
        let Some(container) = pod.containers.first() else {
            return Ok(None);
        };
        let server = Server::for_image(container.image.as_deref().unwrap_or_default());
        // For an upstream server everything after the image's entrypoint is passed on.
        let container_args: Vec<String> = match server {
            Server::Sample => container.args.clone().unwrap_or_default(),
            Server::CustomMetricsAdapter | Server::MetricsServer => container
                .command
                .iter()
                .flatten()
                .skip(1)
                .chain(container.args.iter().flatten())
                .cloned()
                .collect(),
        };
        let container_port = container
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| p.container_port)
            .unwrap_or(443);
        let secure_port = container_args
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix("--secure-port=")?.parse::<i32>().ok())
            .unwrap_or(server.default_secure_port());
        let services: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let Some(service) = services.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let service_spec = service.spec.unwrap_or_default();
        let Some(cluster_ip) = service_spec.cluster_ip.filter(|ip| ip != "None") else {
            return Ok(None);
        };
        let service_ports = service_spec.ports.unwrap_or_default();
        let service_port = service_ports.first().map(|p| p.port).unwrap_or(443);
        // kube-proxy forwards the Service port to the container port; a server listening
        // elsewhere is not reachable through the Service.
        let port = if secure_port == container_port {
            service_port
        } else {
            secure_port
        };
        let extra_ports = service_ports
            .iter()
            .skip(1)
            .filter_map(|p| Some((u16::try_from(p.port).ok()?, target_port(p, container)?)))
            .collect();
        let secret_name = pod
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find_map(|v| v.secret?.secret_name);
        let Some(secret_name) = secret_name else {
            return Ok(None);
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let Some(secret) = secrets.get_opt(&secret_name).await? else {
            return Ok(None);
        };
        let data = secret.data.unwrap_or_default();
        let (Some(crt), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) else {
            return Ok(None);
        };
        let (tls_crt, tls_key) = self
            .override_tls
            .borrow()
            .clone()
            .unwrap_or_else(|| (crt.0.clone(), key.0.clone()));
        let args = match server {
            Server::Sample => container_args
                .into_iter()
                .filter(|a| FORWARDED_FLAGS.iter().any(|f| a.starts_with(f)))
                .collect(),
            Server::CustomMetricsAdapter | Server::MetricsServer => container_args,
        };
        let env = self.environment(container).await?;
        Ok(Some(Launch {
            server,
            bind: cluster_ip,
            port: u16::try_from(port).unwrap_or(443),
            extra_ports,
            tls_crt,
            tls_key,
            service_account: pod.service_account_name.unwrap_or_else(|| "default".into()),
            args,
            env,
            template_annotations,
        }))
    }

    /// The container's environment as the kubelet would set it: literal values, and keys of
    /// Secrets and ConfigMaps in the namespace (a missing optional key is left out; other
    /// sources are not simulated).
    async fn environment(&self, container: &Container) -> Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        for var in container.env.iter().flatten() {
            let referenced = match &var.value_from {
                Some(source) => {
                    crate::env_source::key_reference(&self.client, &self.namespace, source).await?
                }
                None => None,
            };
            // A variable without a value is set, empty (the API server drops `value: ""`).
            let value = referenced.unwrap_or_else(|| Some(var.value.clone().unwrap_or_default()));
            if let Some(value) = value {
                env.push((var.name.clone(), value));
            }
        }
        Ok(env)
    }

    async fn spawn(&self, launch: &Launch) -> Result<Child> {
        let server = launch.server;
        let binary = tokio::task::spawn_blocking(move || server.binary()).await??;
        let kubeconfig = self
            .service_account_kubeconfig(&launch.service_account)
            .await?;
        let kubeconfig = kubeconfig.display();
        let log = self.workdir.join("server.log");
        let mut args = Vec::new();
        let cwd = match server {
            Server::Sample => {
                let cert = self.workdir.join("tls.crt");
                let key = self.workdir.join("tls.key");
                std::fs::write(&cert, &launch.tls_crt)?;
                std::fs::write(&key, &launch.tls_key)?;
                args.extend([
                    format!("--bind-address={}", launch.bind),
                    format!("--secure-port={}", launch.port),
                    format!("--tls-cert-file={}", cert.display()),
                    format!("--tls-private-key-file={}", key.display()),
                ]);
                args.extend(
                    server
                        .kubeconfig_flags()
                        .iter()
                        .map(|f| format!("{f}={kubeconfig}")),
                );
                args.extend(launch.args.iter().cloned());
                None
            }
            Server::CustomMetricsAdapter | Server::MetricsServer => {
                // The container's `/`: k8s.io/apiserver's default --cert-dir is relative.
                let root = self.workdir.join("root");
                let certs = root.join("apiserver.local.config").join("certificates");
                std::fs::create_dir_all(&certs)?;
                std::fs::write(certs.join("apiserver.crt"), &launch.tls_crt)?;
                std::fs::write(certs.join("apiserver.key"), &launch.tls_key)?;
                args.extend(launch.args.iter().cloned());
                args.extend([
                    format!("--bind-address={}", launch.bind),
                    format!("--secure-port={}", launch.port),
                ]);
                args.extend(
                    server
                        .kubeconfig_flags()
                        .iter()
                        .map(|f| format!("{f}={kubeconfig}")),
                );
                Some(root)
            }
        };
        self::launch(server, &binary, &args, &launch.env, cwd.as_deref(), &log).await
    }

    /// Forwards the Service's further ports whose target differs, like kube-proxy.
    fn forward_ports(&mut self, launch: &Launch) {
        for &(port, target) in &launch.extra_ports {
            if port == target {
                continue;
            }
            let (bind, label) = (
                launch.bind.clone(),
                format!("{}/{}", self.namespace, self.name),
            );
            self.forwarders.push(tokio::spawn(async move {
                if let Err(error) = forward(&bind, port, target).await {
                    eprintln!("pod runtime {label}: forwarding port {port} to {target}: {error:#}");
                }
            }));
        }
    }

    fn stop_forwarders(&mut self) {
        for forwarder in self.forwarders.drain(..) {
            forwarder.abort();
        }
    }

    async fn stop_child(&mut self) {
        self.stop_forwarders();
        if let Some(child) = self.child.take() {
            terminate(child).await;
        }
    }

    /// A kubeconfig with a TokenRequest token of the pod's ServiceAccount.
    async fn service_account_kubeconfig(&self, account: &str) -> Result<PathBuf> {
        let token = service_account_token(&self.client, &self.namespace, account).await?;
        let path = self.workdir.join("kubeconfig");
        let ca = self.cluster.dir.join("pki").join("ca.crt");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\ncontexts:\n- name: local\n  context: {{cluster: local, user: pod}}\ncurrent-context: local\nusers:\n- name: pod\n  user:\n    token: {token}\n",
                port = self.cluster.state.apiserver_port,
                ca = ca.display(),
            ),
        )?;
        Ok(path)
    }
}

/// A TokenRequest token (an hour) of ServiceAccount `account` in `namespace`, as a kubelet
/// mounts one into a pod.
pub async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    Ok(accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {account}"))?
        .status
        .context("TokenRequest without status")?
        .token)
}

/// The container port a Service port targets (a number, or the name of a container port).
fn target_port(port: &ServicePort, container: &Container) -> Option<u16> {
    let target = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))?
                .container_port
        }
    };
    u16::try_from(target).ok()
}

/// Accepts on `bind:port` and copies each connection to and from `bind:target`, until aborted.
async fn forward(bind: &str, port: u16, target: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((bind, port)).await?;
    loop {
        let (mut inbound, _) = listener.accept().await?;
        let upstream = (bind.to_string(), target);
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Copies the server's log to `log` and returns once it reports that it is serving; when it
/// exits first, the error carries the last lines it logged.
async fn wait_serving(
    server: Server,
    stderr: tokio::process::ChildStderr,
    log: std::fs::File,
) -> Result<()> {
    use std::io::Write;
    use tokio::io::{AsyncBufReadExt, BufReader};
    const TAIL: usize = 20;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    tokio::spawn(async move {
        let mut log = log;
        let mut ready = Some(ready_tx);
        let mut tail = std::collections::VecDeque::with_capacity(TAIL);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(log, "{line}");
            if ready.is_some() {
                if tail.len() == TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            if line.contains(server.serving_line())
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(Ok(()));
            }
        }
        if let Some(ready) = ready {
            let _ = ready.send(Err(Vec::from(tail).join("\n")));
        }
    });
    let timeout = server.start_timeout();
    let outcome = tokio::time::timeout(timeout, ready_rx)
        .await
        .with_context(|| format!("{server:?} did not start serving within {timeout:?}"))?
        .with_context(|| format!("{server:?} exited before serving"))?;
    outcome.map_err(|tail| anyhow::anyhow!("{server:?} exited before serving; it logged:\n{tail}"))
}

/// SIGTERM (the server drains its connections), then SIGKILL after 15 s.
pub(crate) async fn terminate(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Where the runtime keeps files for a pod (logs included).
pub fn pod_dir(cluster: &Cluster, namespace: &str, name: &str) -> PathBuf {
    cluster.dir.join("pods").join(namespace).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_pick_their_binary_whatever_the_tag() {
        for (image, server) in [
            (
                "registry.k8s.io/custom-metrics-apiserver/test-adapter:v1.36.0",
                Server::CustomMetricsAdapter,
            ),
            (
                "registry.k8s.io/custom-metrics-apiserver/test-adapter",
                Server::CustomMetricsAdapter,
            ),
            (
                "kubernetes-sigs/k8s-test-metrics-adapter-amd64:latest",
                Server::CustomMetricsAdapter,
            ),
            (
                "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
                Server::MetricsServer,
            ),
            (
                "registry.k8s.io/metrics-server/metrics-server@sha256:0123",
                Server::MetricsServer,
            ),
            ("my-extension-server-image:latest", Server::Sample),
            ("localhost:5000/metrics-server:v0.8.0", Server::Sample),
        ] {
            assert_eq!(Server::for_image(image), server, "{image}");
        }
    }

    #[test]
    fn a_registry_port_is_not_a_tag() {
        assert_eq!(repository("localhost:5000/a/b"), "localhost:5000/a/b");
        assert_eq!(repository("localhost:5000/a/b:v1"), "localhost:5000/a/b");
        assert_eq!(repository("a/b@sha256:00"), "a/b");
    }
}
