//! A container's environment variables that name a key of a Secret or a ConfigMap, resolved
//! as a kubelet resolves them (a missing object or key leaves the variable out).

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVarSource, Secret};
use kube::api::Api;

/// The value `source` names, when it is a `secretKeyRef` or a `configMapKeyRef`: `None` for
/// another source, `Some(None)` when the object or key is missing.
pub async fn key_reference(
    client: &kube::Client,
    namespace: &str,
    source: &EnvVarSource,
) -> Result<Option<Option<String>>> {
    if let Some(key) = &source.secret_key_ref {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let value = secrets
            .get_opt(&key.name)
            .await?
            .and_then(|s| s.data?.remove(&key.key))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned());
        return Ok(Some(value));
    }
    if let Some(key) = &source.config_map_key_ref {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let value = config_maps
            .get_opt(&key.name)
            .await?
            .and_then(|c| c.data?.remove(&key.key));
        return Ok(Some(value));
    }
    Ok(None)
}
