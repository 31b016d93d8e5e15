//! A stand-in for the kubelet for a Deployment whose image is in the local registry
//! ([`crate::registry`]): it pulls the image with `crane` (the registry API), unpacks its
//! filesystem, and runs the image's own entrypoint with the container's args and environment,
//! as the image's user, with the image's filesystem as its root (`chroot` in a mount namespace
//! of its own), and the pod's ServiceAccount as a kubelet gives it: a TokenRequest token, the
//! CA and the namespace at `/var/run/secrets/kubernetes.io/serviceaccount`, and
//! `KUBERNETES_SERVICE_HOST`/`PORT`, so the binary uses its in-cluster configuration. Other
//! volumes are not simulated. The pod shares the host's network, so a `--metrics-address` in
//! the args is moved to a free loopback port.
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

/// Run in a new mount namespace: what a container runtime provides (`/proc`, the standard
/// devices, the host's `/etc/hosts` and `/etc/resolv.conf`) and the ServiceAccount files at
/// the in-cluster path, bound into the image's filesystem; then the entrypoint with that
/// filesystem as root, as the image's user. `sh`, `mount` and `chroot` are the host's; the
/// mounts vanish with the namespace. Arguments: root, ServiceAccount dir, uid:gid, argv.
const MOUNT_AND_CHROOT: &str = r#"set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
root=$1 tokens=$2 user=$3
shift 3
accounts="$root/var/run/secrets/kubernetes.io/serviceaccount"
mkdir -p "$accounts" "$root/etc" "$root/dev" "$root/proc"
mount -t proc proc "$root/proc"
for device in null zero full random urandom; do
  touch "$root/dev/$device"
  mount --bind "/dev/$device" "$root/dev/$device"
done
touch "$root/etc/hosts" "$root/etc/resolv.conf"
mount --bind "$tokens" "$accounts"
mount --bind /etc/hosts "$root/etc/hosts"
mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
exec chroot --userspec="$user" "$root" "$@"
"#;

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
        let tokens = service_account_files(cluster, &client, namespace, &account, &dir).await?;
        let (uid, gid) = numeric_user(&config.config.user)
            .with_context(|| format!("{image} has no numeric user: {:?}", config.config.user))?;
        let mut env = environment(&container, namespace, &pod_name);
        env.extend([
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            (
                "KUBERNETES_SERVICE_PORT".into(),
                cluster.state.apiserver_port.to_string(),
            ),
        ]);
        let log = dir.join("container.log");
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(on_path("unshare")?);
        command
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(MOUNT_AND_CHROOT)
            .arg("sh")
            .arg(&root)
            .arg(&tokens)
            .arg(format!("{uid}:{gid}"))
            .arg(program)
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
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

    /// Waits until its log shows `line` (a file has no watch API: it is re-read), at most 60 s;
    /// the error carries the log.
    pub async fn wait_log(&mut self, line: &str) -> Result<()> {
        let seen = self.wait_for_line(line).await;
        self.with_logs(seen)
    }

    async fn wait_for_line(&mut self, line: &str) -> Result<()> {
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

    /// `result`, with this container's log added to an error.
    pub fn with_logs<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|error| {
            anyhow::anyhow!("{error:#}; {}'s log:\n{}", self.pod_name, self.logs())
        })
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

/// The files a kubelet mounts at `/var/run/secrets/kubernetes.io/serviceaccount`: a
/// TokenRequest token of `account`, the cluster CA and the namespace, readable by the
/// container's user.
async fn service_account_files(
    cluster: &Cluster,
    client: &kube::Client,
    namespace: &str,
    account: &str,
    dir: &Path,
) -> Result<PathBuf> {
    let token = crate::runtime::service_account_token(client, namespace, account).await?;
    let files = dir.join("serviceaccount");
    std::fs::create_dir_all(&files)?;
    set_mode(&files, 0o755)?;
    std::fs::copy(cluster.dir.join("pki").join("ca.crt"), files.join("ca.crt"))?;
    std::fs::write(files.join("token"), token)?;
    std::fs::write(files.join("namespace"), namespace)?;
    for file in ["ca.crt", "token", "namespace"] {
        set_mode(&files.join(file), 0o644)?;
    }
    Ok(files)
}

/// `name` as found on this process's PATH.
fn on_path(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{name} is not on PATH"))
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
