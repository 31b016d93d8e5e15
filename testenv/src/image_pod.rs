//! A stand-in for the kubelet for a Deployment whose image is in the local registry
//! ([`crate::registry`]): it pulls the image with `crane` (the registry API), unpacks its
//! filesystem, and runs the image's own entrypoint with the container's args and environment,
//! as the image's user, under the pod's ServiceAccount (a kubeconfig with a TokenRequest token
//! in `KUBECONFIG`, as no in-cluster token is mounted). Volumes are not simulated. A host
//! process has no pod IP, so a `--metrics-address` in the args is moved to a free loopback port.
//! Each pod is named after the Deployment's generation (`<deployment>-g<generation>`), so the
//! pods of two rollout steps run side by side as a rolling update runs them.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use kube::api::Api;
use serde::Deserialize;
use tokio::process::{Child, Command};

use crate::cluster::Cluster;

/// The parts of an OCI image config the stand-in reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImageConfig {
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    user: String,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: ImageConfig,
}

/// The running container; stopped when dropped.
pub struct ImagePod {
    pub child: Child,
    /// The image it runs.
    pub image: String,
    /// Where its `--metrics-address` was moved to.
    pub metrics_port: u16,
    pub log: PathBuf,
    /// The pod's name (its `POD_NAME`): `<deployment>-g<generation>`.
    pub pod_name: String,
}

impl ImagePod {
    /// Runs the first container of Deployment `name` in `namespace` from its image, pulled
    /// with `crane` from the registry its reference names.
    pub async fn start(
        cluster: &Cluster,
        crane: &Path,
        namespace: &str,
        name: &str,
    ) -> Result<Self> {
        let client = cluster.client().await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let deployment = deployments.get(name).await?;
        let generation = deployment.metadata.generation.unwrap_or_default();
        let pod_name = format!("{name}-g{generation}");
        let pod = deployment
            .spec
            .and_then(|s| s.template.spec)
            .context("a Deployment without a pod template")?;
        let container = pod.containers.first().context("no container")?.clone();
        let image = container
            .image
            .clone()
            .context("a container without an image")?;
        let dir = cluster
            .dir
            .join("image-pods")
            .join(namespace)
            .join(&pod_name);
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("rootfs");
        std::fs::create_dir_all(&root)?;
        set_mode(&dir, 0o755)?;
        let config: ConfigFile = serde_json::from_slice(&crane_output(crane, &["config", &image])?)
            .context("the image config")?;
        let tar = dir.join("rootfs.tar");
        crane_output(crane, &["export", &image, &tar.display().to_string()])?;
        run(std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&root))?;
        let metrics_port = crate::process::free_port()?;
        let argv = command_line(&config.config, &container, metrics_port);
        let (program, args) = argv.split_first().context("the image has no entrypoint")?;
        let account = pod.service_account_name.unwrap_or_else(|| "default".into());
        let kubeconfig =
            service_account_kubeconfig(cluster, &client, namespace, &account, &dir).await?;
        let env = environment(&container, namespace, &pod_name);
        let log = dir.join("container.log");
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(root.join(program.trim_start_matches('/')));
        command
            .args(args)
            .env_clear()
            .envs(env)
            .env("KUBECONFIG", &kubeconfig)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        if let Some((uid, gid)) = numeric_user(&config.config.user) {
            command.uid(uid).gid(gid);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {program} from {image}"))?;
        Ok(Self {
            child,
            image,
            metrics_port,
            log,
            pod_name,
        })
    }

    /// Waits until its log shows `line` (a file has no watch API: it is re-read), at most 60 s.
    pub async fn wait_log(&mut self, line: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut ticks = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            ticks.tick().await;
            if self.logs().contains(line) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the container exited: {status}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the container did not log {line:?} within 60 s");
            }
        }
    }

    /// Stops it as a kubelet stops a deleted pod: SIGTERM, then SIGKILL after `grace`.
    /// Returns whether it exited on its own, successfully, within the grace period.
    pub async fn terminate(&mut self, grace: std::time::Duration) -> Result<bool> {
        if let Some(pid) = self.child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                self.child.kill().await?;
                Ok(false)
            }
        }
    }

    /// What it has printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The image's entrypoint (or the container's command) and the container's args (or the
/// image's cmd), with `--metrics-address` moved to `127.0.0.1:<metrics_port>`.
fn command_line(config: &ImageConfig, container: &Container, metrics_port: u16) -> Vec<String> {
    let entrypoint = container
        .command
        .clone()
        .unwrap_or_else(|| config.entrypoint.clone());
    let args = container.args.clone().unwrap_or_else(|| config.cmd.clone());
    entrypoint
        .into_iter()
        .chain(args.into_iter().map(|a| {
            if a.starts_with("--metrics-address=") {
                format!("--metrics-address=127.0.0.1:{metrics_port}")
            } else {
                a
            }
        }))
        .collect()
}

/// Literal values and the pod's name and namespace from the downward API.
fn environment(container: &Container, namespace: &str, pod_name: &str) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|var| {
            let field = var
                .value_from
                .as_ref()
                .and_then(|s| s.field_ref.as_ref())
                .map(|f| f.field_path.as_str());
            let value = match field {
                Some("metadata.namespace") => Some(namespace.to_string()),
                Some("metadata.name") => Some(pod_name.to_string()),
                Some(_) => None,
                None => var.value.clone(),
            };
            Some((var.name.clone(), value?))
        })
        .collect()
}

/// `uid:gid` or `uid` of an image's numeric user.
fn numeric_user(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// A kubeconfig with a TokenRequest token of `account`, readable by the container's user.
async fn service_account_kubeconfig(
    cluster: &Cluster,
    client: &kube::Client,
    namespace: &str,
    account: &str,
    dir: &Path,
) -> Result<PathBuf> {
    let token = crate::runtime::service_account_token(client, namespace, account).await?;
    // A copy of the cluster CA where the container's user can read it.
    let ca = dir.join("ca.crt");
    std::fs::copy(cluster.dir.join("pki").join("ca.crt"), &ca)?;
    set_mode(&ca, 0o644)?;
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\ncontexts:\n- name: local\n  context: {{cluster: local, user: pod}}\ncurrent-context: local\nusers:\n- name: pod\n  user:\n    token: {token}\n",
            port = cluster.state.apiserver_port,
            ca = ca.display(),
        ),
    )?;
    set_mode(&path, 0o644)?;
    Ok(path)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn crane_output(crane: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = std::process::Command::new(crane)
        .args(args)
        .output()
        .with_context(|| format!("running crane {args:?}"))?;
    if !out.status.success() {
        bail!("crane {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

fn run(command: &mut std::process::Command) -> Result<()> {
    let status = command.status()?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_address_moves_and_args_replace_cmd() {
        let config = ImageConfig {
            entrypoint: vec!["/extension-server-operator".into()],
            cmd: vec!["run".into()],
            user: "65532:65532".into(),
        };
        let container = Container {
            args: Some(vec!["run".into(), "--metrics-address=0.0.0.0:8443".into()]),
            ..Container::default()
        };
        assert_eq!(
            command_line(&config, &container, 4000),
            [
                "/extension-server-operator",
                "run",
                "--metrics-address=127.0.0.1:4000"
            ]
        );
        assert_eq!(numeric_user("65532:65532"), Some((65532, 65532)));
        assert_eq!(numeric_user("nonroot"), None);
    }
}
