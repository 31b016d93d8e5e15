//! A stand-in for the kubelet and kube-proxy, for ordinary workloads: kwok schedules pods onto
//! the fake Node and reports them Running with an IP from the cluster's pod network
//! ([`crate::pod_network`]); this runs the real program of each container whose image it
//! knows ([`programs::Program`]) as a process listening on that IP, and forwards each Service's
//! ClusterIP to the pods behind it ([`proxy`]). It runs for the namespaces a test names
//! ([`start`]), or for every namespace but the tests' own ([`start_cluster_wide`]), as
//! `cargo xtask cluster up` runs it in a process of its own ([`daemon`]).
//!
//! What a pod gets, as from a kubelet:
//! - its volumes at their `mountPath`s ([`volumes`]), in a root of its own ([`sandbox`]);
//!   ConfigMap, Secret, downward API and token volumes are rewritten every
//!   [`VOLUME_REFRESH`] (a `subPath` mount keeps the file it started with, as with a kubelet);
//! - its environment: values, `fieldRef`, `secretKeyRef` and `configMapKeyRef`, `$(VAR)`
//!   expanded in `command` and `args`, and `KUBERNETES_SERVICE_HOST`/`PORT` for the in-cluster
//!   configuration;
//! - an `/etc/hosts` naming every Service of the watched namespaces (`<svc>`,
//!   `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local`) and
//!   `kubernetes.default.svc`, in place of cluster DNS (the `kubernetes` Service's ClusterIP
//!   forwards to the API server);
//! - a restart when the container exits, after 10 s, doubling to 5 min (CrashLoopBackOff).
//!
//! What it does not do: probes, resource limits, `securityContext` (the process runs as
//! root), init containers, images it does not know, `hostPath` and persistent volumes, and
//! the pod's status (kwok writes it; restarts are not counted there).

pub mod daemon;
mod programs;
mod proxy;
mod sandbox;
mod volumes;
mod watched;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Client, ResourceExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use programs::Program;
pub use volumes::pod_field;
use watched::{Changes, Watched};

use crate::cluster::{Cluster, KUBERNETES_SERVICE_IP};

/// How often mounted ConfigMaps, Secrets and tokens are rewritten.
pub const VOLUME_REFRESH: Duration = Duration::from_secs(10);
/// The first wait before restarting an exited container; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts its next backoff from [`FIRST_BACKOFF`].
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// The running stand-in; dropping it stops every process it started.
pub struct Kubelet {
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Kubelet {
    /// Stops every container as a kubelet does (SIGTERM, then SIGKILL after a grace period)
    /// and returns once all have exited.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.task).await;
    }
}

/// The label of namespaces whose pods a cluster-wide stand-in leaves alone: test namespaces,
/// whose tests run stand-ins of their own.
pub const OWN_STAND_IN_LABEL: &str = "aggregation.dev/test";

/// Runs the pods of `namespaces` on the fake Node, and their Services, until dropped.
pub async fn start(cluster: &Cluster, namespaces: &[&str]) -> Result<Kubelet> {
    let client = ready_client(cluster).await?;
    let mut changes = Vec::new();
    let watched = Watched::namespaces(&client, namespaces, &mut changes);
    Ok(spawn(cluster, client, watched, changes))
}

/// Runs the pods of every namespace but those labelled [`OWN_STAND_IN_LABEL`], until dropped:
/// the local cluster's kubelet, as `cargo xtask cluster up` starts it.
pub async fn start_cluster_wide(cluster: &Cluster) -> Result<Kubelet> {
    let client = ready_client(cluster).await?;
    let mut changes = Vec::new();
    let watched = Watched::cluster_wide(&client, OWN_STAND_IN_LABEL, &mut changes);
    Ok(spawn(cluster, client, watched, changes))
}

async fn ready_client(cluster: &Cluster) -> Result<Client> {
    anyhow::ensure!(
        cluster.state.pod_network_routed,
        "cluster {} has no routed pod network (it needs root; see testenv/src/pod_network.rs)",
        cluster.instance
    );
    cluster.client().await
}

fn spawn(cluster: &Cluster, client: Client, watched: Watched, changes: Changes) -> Kubelet {
    let state = State {
        cluster: cluster.clone(),
        client,
        watched,
        running: HashMap::new(),
        forwards: HashMap::new(),
    };
    let (shutdown, stopping) = watch::channel(false);
    let task = tokio::spawn(state.run(futures::stream::select_all(changes), stopping));
    Kubelet { task, shutdown }
}

struct State {
    cluster: Cluster,
    client: Client,
    watched: Watched,
    /// Pod uid to its running containers.
    running: HashMap<String, RunningPod>,
    /// `<ns>/<service>/<port>` to its forward.
    forwards: HashMap<String, proxy::Forward>,
}

/// A pod's container tasks; dropping it stops them (SIGTERM first).
struct RunningPod {
    stop: watch::Sender<bool>,
    containers: Vec<JoinHandle<()>>,
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl State {
    async fn run(
        mut self,
        mut changes: impl futures::Stream<Item = ()> + Unpin,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut refresh = tokio::time::interval(VOLUME_REFRESH);
        loop {
            tokio::select! {
                change = changes.next() => if change.is_none() { return },
                _ = refresh.tick() => {}
                _ = stopping.changed() => {
                    let pods: Vec<RunningPod> = self.running.drain().map(|(_, pod)| pod).collect();
                    for pod in &pods {
                        let _ = pod.stop.send(true);
                    }
                    for mut pod in pods {
                        for container in pod.containers.drain(..) {
                            let _ = container.await;
                        }
                    }
                    return;
                }
            }
            self.sync_pods();
            self.sync_forwards();
        }
    }

    fn sync_pods(&mut self) {
        let desired: BTreeMap<String, std::sync::Arc<Pod>> = self
            .watched
            .pods()
            .into_iter()
            .filter(|pod| runnable(pod))
            .filter_map(|pod| Some((pod.uid()?, pod)))
            .collect();
        self.running.retain(|uid, _| desired.contains_key(uid));
        for (uid, pod) in desired {
            if self.running.contains_key(&uid) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let mut containers = Vec::new();
            for container in runnable_containers(&pod) {
                let run = ContainerRun {
                    cluster: self.cluster.clone(),
                    client: self.client.clone(),
                    pod: (*pod).clone(),
                    container: container.clone(),
                    watched: self.watched.clone(),
                };
                containers.push(tokio::spawn(run.run(stopped.clone())));
            }
            self.running.insert(uid, RunningPod { stop, containers });
        }
    }

    fn sync_forwards(&mut self) {
        let pods = self.watched.pods();
        let mut desired: HashMap<String, (SocketAddr, Vec<SocketAddr>)> = HashMap::new();
        for service in self.watched.services() {
            let namespace = service.namespace().unwrap_or_default();
            let Some(spec) = &service.spec else { continue };
            let Some(ip) = spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let behind: Vec<&Pod> = pods
                .iter()
                .map(|p| p.as_ref())
                .filter(|p| p.namespace().as_deref() == Some(&namespace) && runnable(p))
                .filter(|p| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
                .collect();
            if behind.is_empty() {
                continue;
            }
            for port in spec.ports.iter().flatten() {
                let Ok(number) = u16::try_from(port.port) else {
                    continue;
                };
                let endpoints = behind
                    .iter()
                    .filter_map(|pod| {
                        let ip: Ipv4Addr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
                        Some(SocketAddr::from((
                            ip,
                            target_port(pod, port.target_port.as_ref(), number)?,
                        )))
                    })
                    .collect();
                let key = format!("{namespace}/{}/{number}", service.name_any());
                desired.insert(key, (SocketAddr::from((ip, number)), endpoints));
            }
        }
        // The `kubernetes` Service, which has no selector: the API server.
        desired.insert(
            "default/kubernetes/443".into(),
            (
                SocketAddr::from((KUBERNETES_SERVICE_IP, 443)),
                vec![SocketAddr::from((
                    Ipv4Addr::LOCALHOST,
                    self.cluster.state.apiserver_port,
                ))],
            ),
        );
        self.forwards.retain(|key, _| desired.contains_key(key));
        for (key, (address, endpoints)) in desired {
            match self.forwards.get(&key) {
                Some(forward) => {
                    forward.endpoints.send_if_modified(|current| {
                        let changed = *current != endpoints;
                        *current = endpoints.clone();
                        changed
                    });
                }
                None => {
                    let forward = proxy::Forward::start(address, endpoints, key.clone());
                    self.forwards.insert(key, forward);
                }
            }
        }
    }
}

/// A pod the stand-in runs: on the fake Node, with an IP, not being deleted, with a container
/// it knows.
fn runnable(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .is_some()
        && !runnable_containers(pod).is_empty()
}

fn runnable_containers(pod: &Pod) -> Vec<&Container> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| Program::for_image(c.image.as_deref().unwrap_or_default()).is_some())
        .collect()
}

/// The container port a Service port targets (a number, or the name of a container port).
fn target_port(pod: &Pod, target: Option<&IntOrString>, port: u16) -> Option<u16> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// One container of a running pod.
struct ContainerRun {
    cluster: Cluster,
    client: Client,
    pod: Pod,
    container: Container,
    watched: Watched,
}

impl ContainerRun {
    fn dir(&self) -> PathBuf {
        self.cluster
            .dir
            .join("kubelet")
            .join(self.pod.namespace().unwrap_or_default())
            .join(self.pod.name_any())
            .join(&self.container.name)
    }

    /// Starts the container, restarts it when it exits (with backoff), refreshes its volumes,
    /// and stops it when `stop` turns true.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let dir = self.dir();
        let log = dir.join("container.log");
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = tokio::time::Instant::now();
            match self.spawn(&dir, &log).await {
                Ok(mut child) => {
                    let mut refresh = tokio::time::interval(VOLUME_REFRESH);
                    refresh.tick().await;
                    let exited = loop {
                        tokio::select! {
                            status = child.wait() => break status,
                            _ = stop.changed() => {
                                crate::runtime::terminate(child).await;
                                return;
                            }
                            _ = refresh.tick() => {
                                if let Err(error) = self.prepare(&dir).await {
                                    append(&log, &format!("kubelet: refreshing volumes: {error:#}"));
                                }
                            }
                        }
                    };
                    append(&log, &format!("kubelet: the container exited: {exited:?}"));
                    if started.elapsed() > BACKOFF_RESET {
                        backoff = FIRST_BACKOFF;
                    }
                }
                Err(error) => append(&log, &format!("kubelet: starting the container: {error:#}")),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Writes the volumes and `/etc/hosts`; returns the script that enters the root.
    async fn prepare(&self, dir: &Path) -> Result<String> {
        let ca = self.cluster.dir.join("pki").join("ca.crt");
        let namespace = self.pod.namespace().unwrap_or_default();
        let uid = self.pod.uid().unwrap_or_default();
        let sources = volumes::Sources {
            client: &self.client,
            namespace: &namespace,
            cluster_ca: &ca,
            pod_uid: &uid,
        };
        let pod_dir = dir
            .parent()
            .context("a container directory without a pod")?;
        let mounts = volumes::materialise(&sources, &self.pod, &self.container, pod_dir).await?;
        let program = self.program()?;
        let binary = program.binary(&self.cluster)?;
        sandbox::script(dir, &binary, &self.hosts(), &mounts)
    }

    fn program(&self) -> Result<Program> {
        Program::for_image(self.container.image.as_deref().unwrap_or_default())
            .context("an image the kubelet stand-in does not run")
    }

    async fn spawn(&self, dir: &Path, log: &Path) -> Result<Child> {
        std::fs::create_dir_all(dir)?;
        let script = self.prepare(dir).await?;
        let program = self.program()?;
        let env = self.environment().await?;
        let expand = |arg: &String| expand(arg, &env);
        let args: Vec<String> = match (&self.container.command, &self.container.args) {
            (Some(command), args) => command
                .iter()
                .skip(1)
                .chain(args.iter().flatten())
                .map(expand)
                .collect(),
            (None, Some(args)) => args.iter().map(expand).collect(),
            (None, None) => program.image_cmd(),
        };
        let pod_ip = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .context("a pod without an IP")?;
        let args = program.listen_on(args, &pod_ip)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(script)
            .arg("sh")
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        command.spawn().context("starting the container")
    }

    /// The container's environment as a kubelet sets it.
    async fn environment(&self) -> Result<Vec<(String, String)>> {
        let namespace = self.pod.namespace().unwrap_or_default();
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("HOSTNAME".to_string(), self.pod.name_any()),
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "127.0.0.1".to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                self.cluster.state.apiserver_port.to_string(),
            ),
        ];
        for var in self.container.env.iter().flatten() {
            let source = var.value_from.as_ref();
            let referenced = match source {
                Some(source) => {
                    crate::env_source::key_reference(&self.client, &namespace, source).await?
                }
                None => None,
            };
            let value = if let Some(value) = referenced {
                value
            } else if let Some(field) = source.and_then(|s| s.field_ref.as_ref()) {
                pod_field(&self.pod, &field.field_path)
            } else {
                // A variable without a value is set, empty (the API server drops `value: ""`).
                Some(expand(var.value.as_deref().unwrap_or_default(), &env))
            };
            if let Some(value) = value {
                env.push((var.name.clone(), value));
            }
        }
        Ok(env)
    }

    /// `/etc/hosts`: the pod itself and every Service of the watched namespaces.
    fn hosts(&self) -> String {
        let own_namespace = self.pod.namespace().unwrap_or_default();
        let mut hosts = format!(
            "127.0.0.1 localhost\n{KUBERNETES_SERVICE_IP} kubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default{}\n",
            if own_namespace == "default" {
                " kubernetes"
            } else {
                ""
            }
        );
        if let Some(ip) = self.pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()) {
            hosts.push_str(&format!("{ip} {}\n", self.pod.name_any()));
        }
        for service in self.watched.services() {
            let Some(ip) = service
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .filter(|ip| *ip != "None")
            else {
                continue;
            };
            let (name, namespace) = (service.name_any(), service.namespace().unwrap_or_default());
            if (name.as_str(), namespace.as_str()) == ("kubernetes", "default") {
                continue;
            }
            let mut names = format!(
                "{name}.{namespace}.svc.cluster.local {name}.{namespace}.svc {name}.{namespace}"
            );
            if namespace == own_namespace {
                names.push_str(&format!(" {name}"));
            }
            hosts.push_str(&format!("{ip} {names}\n"));
        }
        hosts
    }
}

/// `$(VAR)` references to variables defined before, as a kubelet expands them; `$$` is `$`.
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|a| a.split_once(')'))
            .filter(|(name, _)| env.iter().any(|(k, _)| k == name))
        {
            let value = env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
            out.push_str(value.map_or("", String::as_str));
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn append(log: &Path, line: &str) {
    use std::io::Write as _;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(file, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_like_a_kubelet_expands_them() {
        let env = vec![("POD_IP".to_string(), "10.200.0.3".to_string())];
        assert_eq!(
            expand("--listen=$(POD_IP):8080", &env),
            "--listen=10.200.0.3:8080"
        );
        assert_eq!(
            expand("$(UNDEFINED) $$(POD_IP) $", &env),
            "$(UNDEFINED) $(POD_IP) $"
        );
    }
}
