//! A pod's volumes, written as a kubelet writes them: each volume is a directory under the
//! pod's directory, and each of the container's `volumeMounts` binds that directory (or, with
//! `subPath`, one entry of it) at its `mountPath` inside the container's root
//! ([`super::sandbox`]).
//!
//! Supported: `configMap`, `secret` (with `items`, `defaultMode` and `optional`), `emptyDir`,
//! `downwardAPI` (`metadata.name`, `metadata.namespace`, `metadata.uid`, `metadata.labels`,
//! `metadata.annotations`), and `projected` with those sources and `serviceAccountToken`.
//! The ServiceAccount files at `/var/run/secrets/kubernetes.io/serviceaccount` come as a
//! kubelet mounts them, unless `automountServiceAccountToken` is false. A token is renewed,
//! as by a kubelet, once it has lived 80 % of its hour. Other volume types
//! (`hostPath`, `persistentVolumeClaim`, CSI, ...) fail the pod with a message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, PodSpec, Secret, Volume,
};
use kube::api::Api;

/// Where a kubelet mounts the ServiceAccount's token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ServiceAccount token's lifetime (a kubelet refreshes it long before it ends).
const TOKEN_SECONDS: i64 = 3600;

/// One bind mount into the container's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory or file on the host.
    pub source: PathBuf,
    /// The absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// What the volumes need from the cluster.
pub struct Sources<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    /// The cluster CA, for `ca.crt` in the ServiceAccount files.
    pub cluster_ca: &'a Path,
    /// The pod's uid: its tokens are its own.
    pub pod_uid: &'a str,
}

/// Writes every volume of `pod` under `dir/volumes` (again: a refresh rewrites the contents of
/// ConfigMap, Secret, downward API and token volumes, leaving emptyDirs alone) and returns the
/// mounts of `container`.
pub async fn materialise(
    sources: &Sources<'_>,
    pod: &Pod,
    container: &Container,
    dir: &Path,
) -> Result<Vec<Mount>> {
    let spec = pod.spec.as_ref().context("a pod without a spec")?;
    let root = dir.join("volumes");
    let mut written = BTreeMap::new();
    for volume in spec.volumes.iter().flatten() {
        let path = root.join(&volume.name);
        write_volume(sources, pod, spec, volume, &path)
            .await
            .with_context(|| format!("volume {}", volume.name))?;
        written.insert(volume.name.clone(), path);
    }
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = written.get(&mount.name).with_context(|| {
            format!(
                "volumeMount {} names no volume of the pod",
                mount.mount_path
            )
        })?;
        let source = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
            Some(sub_path) => {
                let source = volume.join(sub_path);
                if !source.exists() {
                    // A kubelet creates a missing subPath as a directory.
                    std::fs::create_dir_all(&source)?;
                }
                source
            }
            None => volume.clone(),
        };
        mounts.push(Mount {
            source,
            target: mount.mount_path.clone(),
            read_only: mount.read_only.unwrap_or(false),
        });
    }
    if spec.automount_service_account_token != Some(false)
        && !mounts.iter().any(|m| m.target == SERVICE_ACCOUNT_DIR)
    {
        let path = root.join("kube-api-access");
        let account = service_account(spec);
        write_service_account_files(sources, &account, None, &path).await?;
        mounts.push(Mount {
            source: path,
            target: SERVICE_ACCOUNT_DIR.into(),
            read_only: true,
        });
    }
    Ok(mounts)
}

fn service_account(spec: &PodSpec) -> String {
    spec.service_account_name
        .clone()
        .unwrap_or_else(|| "default".into())
}

async fn write_volume(
    sources: &Sources<'_>,
    pod: &Pod,
    spec: &PodSpec,
    volume: &Volume,
    path: &Path,
) -> Result<()> {
    if volume.empty_dir.is_some() {
        std::fs::create_dir_all(path)?;
        return Ok(());
    }
    let mut files = Files::default();
    if let Some(source) = &volume.config_map {
        let mode = source.default_mode;
        files
            .config_map(
                sources,
                &source.name,
                source.items.as_deref(),
                source.optional,
                mode,
            )
            .await?;
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let mode = source.default_mode;
        files
            .secret(
                sources,
                name,
                source.items.as_deref(),
                source.optional,
                mode,
            )
            .await?;
    } else if let Some(source) = &volume.downward_api {
        files.downward_api(pod, source.items.iter().flatten(), source.default_mode)?;
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode;
        for source in projected.sources.iter().flatten() {
            if let Some(s) = &source.config_map {
                files
                    .config_map(sources, &s.name, s.items.as_deref(), s.optional, mode)
                    .await?;
            }
            if let Some(s) = &source.secret {
                files
                    .secret(sources, &s.name, s.items.as_deref(), s.optional, mode)
                    .await?;
            }
            if let Some(s) = &source.downward_api {
                files.downward_api(pod, s.items.iter().flatten(), mode)?;
            }
            if let Some(s) = &source.service_account_token {
                let token = token(sources, &service_account(spec), s.audience.as_deref()).await?;
                files.add(&s.path, token.into_bytes(), mode);
            }
        }
    } else {
        bail!("the kubelet stand-in does not provide this volume type: {volume:?}");
    }
    files.write(path)
}

/// A volume's files before they are written: relative path to (content, mode).
#[derive(Default)]
struct Files(BTreeMap<String, (Vec<u8>, i32)>);

impl Files {
    fn add(&mut self, path: &str, content: Vec<u8>, mode: Option<i32>) {
        self.0
            .insert(path.to_string(), (content, mode.unwrap_or(0o644)));
    }

    /// `data` keys (or `items`) as files.
    fn add_keys(
        &mut self,
        data: BTreeMap<String, Vec<u8>>,
        items: Option<&[KeyToPath]>,
        mode: Option<i32>,
        what: &str,
    ) -> Result<()> {
        match items {
            None => {
                for (key, value) in data {
                    self.add(&key, value, mode);
                }
            }
            Some(items) => {
                for item in items {
                    let value = data
                        .get(&item.key)
                        .with_context(|| format!("{what} has no key {}", item.key))?;
                    self.add(&item.path, value.clone(), item.mode.or(mode));
                }
            }
        }
        Ok(())
    }

    async fn config_map(
        &mut self,
        sources: &Sources<'_>,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        mode: Option<i32>,
    ) -> Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(sources.client.clone(), sources.namespace);
        let Some(config_map) = api.get_opt(name).await? else {
            if optional == Some(true) {
                return Ok(());
            }
            bail!("ConfigMap {name} is missing");
        };
        let mut data: BTreeMap<String, Vec<u8>> = config_map
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (key, value) in config_map.binary_data.unwrap_or_default() {
            data.insert(key, value.0);
        }
        self.add_keys(data, items, mode, &format!("ConfigMap {name}"))
    }

    async fn secret(
        &mut self,
        sources: &Sources<'_>,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        mode: Option<i32>,
    ) -> Result<()> {
        let api: Api<Secret> = Api::namespaced(sources.client.clone(), sources.namespace);
        let Some(secret) = api.get_opt(name).await? else {
            if optional == Some(true) {
                return Ok(());
            }
            bail!("Secret {name} is missing");
        };
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        self.add_keys(data, items, mode, &format!("Secret {name}"))
    }

    fn downward_api<'a>(
        &mut self,
        pod: &Pod,
        items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
        mode: Option<i32>,
    ) -> Result<()> {
        for item in items {
            let field = item
                .field_ref
                .as_ref()
                .map(|f| f.field_path.as_str())
                .context("only fieldRef items of the downward API are provided")?;
            let value = pod_field(pod, field)
                .with_context(|| format!("the downward API field {field} is not provided"))?;
            self.add(&item.path, value.into_bytes(), item.mode.or(mode));
        }
        Ok(())
    }

    /// Writes each file by renaming a complete copy into place, so a reader never sees half a
    /// file; files no longer present are removed.
    fn write(self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir)?;
        for (path, (content, mode)) in &self.0 {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::read(&target).is_ok_and(|old| &old == content) {
                continue;
            }
            let staging = target.with_extension("writing");
            std::fs::write(&staging, content)?;
            let mode = u32::try_from(*mode).unwrap_or(0o644);
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))?;
            std::fs::rename(&staging, &target)?;
        }
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_file() && !self.0.contains_key(&name) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// A downward API field of `pod`, as the kubelet formats it.
pub fn pod_field(pod: &Pod, field: &str) -> Option<String> {
    let meta = &pod.metadata;
    let pairs = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    match field {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(pairs(&meta.labels)),
        "metadata.annotations" => Some(pairs(&meta.annotations)),
        "spec.nodeName" => pod.spec.as_ref()?.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.as_ref().map(service_account),
        "status.podIP" => pod.status.as_ref()?.pod_ip.clone(),
        "status.hostIP" => pod.status.as_ref()?.host_ip.clone(),
        _ => None,
    }
}

/// The files a kubelet mounts at [`SERVICE_ACCOUNT_DIR`].
async fn write_service_account_files(
    sources: &Sources<'_>,
    account: &str,
    audience: Option<&str>,
    dir: &Path,
) -> Result<()> {
    let mut files = Files::default();
    files.add(
        "token",
        token(sources, account, audience).await?.into_bytes(),
        None,
    );
    files.add("ca.crt", std::fs::read(sources.cluster_ca)?, None);
    files.add("namespace", sources.namespace.as_bytes().to_vec(), None);
    files.write(dir)
}

/// Issued tokens: (pod uid, account, audience) to (issued at, token). Per pod, so a token
/// never outlives the ServiceAccount it was issued for (a recreated account means new pods).
type TokenKey = (String, String, String);
static TOKENS: std::sync::Mutex<BTreeMap<TokenKey, (std::time::Instant, String)>> =
    std::sync::Mutex::new(BTreeMap::new());

/// A TokenRequest token of ServiceAccount `account`: the one issued before while it is younger
/// than 80 % of its lifetime (a kubelet renews then), else a new one.
async fn token(sources: &Sources<'_>, account: &str, audience: Option<&str>) -> Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let renew_after = std::time::Duration::from_secs(TOKEN_SECONDS.unsigned_abs() * 8 / 10);
    let key: TokenKey = (
        sources.pod_uid.to_string(),
        account.to_string(),
        audience.unwrap_or_default().to_string(),
    );
    let cached = TOKENS
        .lock()
        .ok()
        .and_then(|tokens| tokens.get(&key).cloned())
        .filter(|(issued, _)| issued.elapsed() < renew_after);
    if let Some((_, token)) = cached {
        return Ok(token);
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(sources.client.clone(), sources.namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request(account, &kube::api::PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {account}"))?
        .status
        .context("TokenRequest without status")?
        .token;
    if let Ok(mut tokens) = TOKENS.lock() {
        tokens.insert(key, (std::time::Instant::now(), token.clone()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_pick_keys_and_paths_and_stale_files_go() {
        let dir = std::env::temp_dir().join(format!("volumes-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = BTreeMap::from([
            ("config.yaml".to_string(), b"rules: []".to_vec()),
            ("other".to_string(), b"x".to_vec()),
        ]);
        let mut files = Files::default();
        files
            .add_keys(data.clone(), None, None, "ConfigMap c")
            .unwrap();
        files.write(&dir).unwrap();
        assert!(dir.join("other").exists());

        let items = [KeyToPath {
            key: "config.yaml".into(),
            path: "adapter/config.yaml".into(),
            mode: Some(0o600),
        }];
        let mut files = Files::default();
        files
            .add_keys(data.clone(), Some(&items), None, "ConfigMap c")
            .unwrap();
        files.write(&dir).unwrap();
        assert_eq!(
            std::fs::read(dir.join("adapter/config.yaml")).unwrap(),
            b"rules: []"
        );
        assert!(
            !dir.join("other").exists(),
            "a key no longer projected is removed"
        );

        let missing = [KeyToPath {
            key: "absent".into(),
            path: "a".into(),
            mode: None,
        }];
        let error = Files::default()
            .add_keys(data, Some(&missing), None, "ConfigMap c")
            .unwrap_err();
        assert_eq!(error.to_string(), "ConfigMap c has no key absent");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn downward_api_fields_are_formatted_like_the_kubelet() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {"app": "w"}},
            "status": {"podIP": "10.200.0.2"}
        }))
        .unwrap();
        assert_eq!(pod_field(&pod, "metadata.name").as_deref(), Some("p"));
        assert_eq!(
            pod_field(&pod, "metadata.labels").as_deref(),
            Some("app=\"w\"\n")
        );
        assert_eq!(
            pod_field(&pod, "status.podIP").as_deref(),
            Some("10.200.0.2")
        );
        assert_eq!(pod_field(&pod, "spec.hostNetwork"), None);
    }
}
