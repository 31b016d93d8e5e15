//! A stand-in for the container runtime and kube-proxy, for one Deployment whose pods run the
//! sample extension server. kwok only pretends the pods run; this starts the real process where
//! the aggregator dials: the Service's ClusterIP and port.
//!
//! Like a pod it reads the TLS files from the mounted Secret, runs under the pod's
//! ServiceAccount (a TokenRequest token), gets the container's environment (values and
//! Secret/ConfigMap references resolved) and the sample server's own flags from its args
//! ([`FORWARDED_FLAGS`]). Like a rollout it restarts the process when the pod template's
//! annotations, args or environment change. Like the kubelet, which refreshes a mounted Secret only at its next sync, it
//! picks up a change to the Secret alone after [`VOLUME_REFRESH`] (the kubelet's default
//! sync is a minute). Like kube-proxy it forwards the Service port only to
//! the container port the server really listens on: a server whose `--secure-port` differs from
//! the container port is unreachable through the Service.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long a change to the mounted Secret alone takes to reach the running server.
pub const VOLUME_REFRESH: Duration = Duration::from_secs(10);
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::cluster::Cluster;

/// Container args passed on to the sample server; the runtime sets the address, port, TLS
/// files and kubeconfig itself.
pub const FORWARDED_FLAGS: [&str; 4] = ["--group=", "--versions=", "--resources=", "--token-env="];

/// What the process is started with; a change restarts it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Launch {
    bind: String,
    port: u16,
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
            .context("the sample server was not (re)started in time")?
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
pub async fn spawn_sample_server(args: &[String], log: &std::path::Path) -> Result<Child> {
    launch(&sample_server_binary()?, args, &[], log).await
}

/// Starts `binary` with `args` and `env`, appending its output to `log`, and waits until it
/// serves.
async fn launch(
    binary: &std::path::Path,
    args: &[String],
    env: &[(String, String)],
    log: &std::path::Path,
) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the sample extension server")?;
    let stderr = child.stderr.take().context("no stderr")?;
    wait_serving(stderr, log).await?;
    Ok(child)
}

/// Runs the sample server for Deployment `name` in `namespace` until dropped.
pub async fn start(cluster: &Cluster, namespace: &str, name: &str) -> Result<PodRuntime> {
    let binary = sample_server_binary()?;
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
            binary,
            workdir,
            child: None,
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
    binary: PathBuf,
    workdir: PathBuf,
    child: Option<Child>,
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
                // A rolling restart: the new process listens (SO_REUSEPORT) before the old
                // one drains, unless the address changes.
                let same_address = matches!((&desired, &self.current),
                    (Some(new), Some(old)) if new.bind == old.bind && new.port == old.port);
                if !same_address {
                    self.stop_child().await;
                }
                let old = self.child.take();
                if let Some(launch) = &desired {
                    match self.spawn(launch).await {
                        Ok(child) => {
                            self.child = Some(child);
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
        let container_port = container
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| p.container_port)
            .unwrap_or(443);
        let secure_port = container
            .args
            .as_ref()
            .and_then(|args| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--secure-port=")?.parse::<i32>().ok())
            })
            .unwrap_or(8443);
        let services: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let Some(service) = services.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let service_spec = service.spec.unwrap_or_default();
        let Some(cluster_ip) = service_spec.cluster_ip.filter(|ip| ip != "None") else {
            return Ok(None);
        };
        let service_port = service_spec
            .ports
            .and_then(|p| p.first().map(|p| p.port))
            .unwrap_or(443);
        // kube-proxy forwards the Service port to the container port; a server listening
        // elsewhere is not reachable through the Service.
        let port = if secure_port == container_port {
            service_port
        } else {
            secure_port
        };
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
        let args = container
            .args
            .iter()
            .flatten()
            .filter(|a| FORWARDED_FLAGS.iter().any(|f| a.starts_with(f)))
            .cloned()
            .collect();
        let env = self.environment(container).await?;
        Ok(Some(Launch {
            bind: cluster_ip,
            port: u16::try_from(port).unwrap_or(443),
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
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut env = Vec::new();
        for var in container.env.iter().flatten() {
            let source = var.value_from.as_ref();
            let value = if let Some(key) = source.and_then(|s| s.secret_key_ref.as_ref()) {
                secrets
                    .get_opt(&key.name)
                    .await?
                    .and_then(|s| s.data?.remove(&key.key))
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            } else if let Some(key) = source.and_then(|s| s.config_map_key_ref.as_ref()) {
                config_maps
                    .get_opt(&key.name)
                    .await?
                    .and_then(|c| c.data?.remove(&key.key))
            } else {
                var.value.clone()
            };
            if let Some(value) = value {
                env.push((var.name.clone(), value));
            }
        }
        Ok(env)
    }

    async fn spawn(&self, launch: &Launch) -> Result<Child> {
        let cert = self.workdir.join("tls.crt");
        let key = self.workdir.join("tls.key");
        std::fs::write(&cert, &launch.tls_crt)?;
        std::fs::write(&key, &launch.tls_key)?;
        let kubeconfig = self
            .service_account_kubeconfig(&launch.service_account)
            .await?;
        let mut args = vec![
            format!("--bind-address={}", launch.bind),
            format!("--secure-port={}", launch.port),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-private-key-file={}", key.display()),
            format!("--kubeconfig={}", kubeconfig.display()),
        ];
        args.extend(launch.args.iter().cloned());
        let log = self.workdir.join("server.log");
        self::launch(&self.binary, &args, &launch.env, &log).await
    }

    async fn stop_child(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child).await;
        }
    }

    /// A kubeconfig with a TokenRequest token of the pod's ServiceAccount.
    async fn service_account_kubeconfig(&self, account: &str) -> Result<PathBuf> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = accounts
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .with_context(|| format!("TokenRequest for ServiceAccount {account}"))?
            .status
            .context("TokenRequest without status")?
            .token;
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

/// Copies the server's log to `log` and returns once it reports that it is serving.
async fn wait_serving(stderr: tokio::process::ChildStderr, log: std::fs::File) -> Result<()> {
    use std::io::Write;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut log = log;
        let mut ready = Some(ready_tx);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(log, "{line}");
            if line.contains("serving on")
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), ready_rx)
        .await
        .context("the sample server did not start serving within 20 s")?
        .context("the sample server exited before serving; see its server.log")
}

/// SIGTERM (the server drains its connections), then SIGKILL after 15 s.
async fn terminate(mut child: Child) {
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
