//! `spec.podTemplate` merged over the pod the operator builds: objects merge key by key, lists
//! of named things (containers, volumes, ports, env, imagePullSecrets) and volumeMounts merge
//! item by item, everything else the template gives replaces the operator's. The operator's
//! invariants win whatever the template says: the ServiceAccount, the TLS volumes and the
//! `server` container's mounts of them, and the labels.

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use serde_json::Value;

use super::pod::SERVER_CONTAINER;
use crate::crd::PodTemplate;

/// The key that identifies an item of the list under `field`, for lists merged item by item.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "volumes" | "imagePullSecrets" | "env" | "ports"
        | "hostAliases" | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        _ => None,
    }
}

/// Merges `template` over `pod`; the operator's own labels, annotations, ServiceAccount and
/// TLS volumes and mounts win.
pub fn merge(pod: &mut PodTemplateSpec, template: &PodTemplate) -> Result<(), String> {
    let ours = pod.spec.clone().unwrap_or_default();
    merge_over(pod, template)?;
    if let Some(spec) = pod.spec.as_mut() {
        keep_invariants(spec, &ours);
    }
    Ok(())
}

/// Puts back what the operator decides in `ours`: the ServiceAccount, its volumes, and the
/// `server` container's mounts of them (no other mount may take their path or name).
fn keep_invariants(spec: &mut PodSpec, ours: &PodSpec) {
    spec.service_account_name = ours.service_account_name.clone();
    spec.service_account = None;
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for volume in ours.volumes.iter().flatten() {
        volumes.retain(|v| v.name != volume.name);
        volumes.push(volume.clone());
    }
    let our_server = ours.containers.iter().find(|c| c.name == SERVER_CONTAINER);
    let our_mounts = our_server.and_then(|c| c.volume_mounts.clone());
    let server = spec
        .containers
        .iter_mut()
        .find(|c| c.name == SERVER_CONTAINER);
    if let (Some(server), Some(our_mounts)) = (server, our_mounts) {
        let mounts = server.volume_mounts.get_or_insert_with(Vec::new);
        for mount in &our_mounts {
            mounts.retain(|m| m.name != mount.name && m.mount_path != mount.mount_path);
            mounts.push(mount.clone());
        }
    }
}

fn merge_over(pod: &mut PodTemplateSpec, template: &PodTemplate) -> Result<(), String> {
    if let Some(metadata) = &template.metadata {
        let meta = pod.metadata.get_or_insert_with(Default::default);
        for (given, ours) in [
            (&metadata.labels, &mut meta.labels),
            (&metadata.annotations, &mut meta.annotations),
        ] {
            let mut merged = given.clone();
            merged.extend(ours.take().unwrap_or_default());
            *ours = (!merged.is_empty()).then_some(merged);
        }
    }
    let Some(given) = &template.spec else {
        return Ok(());
    };
    if !given.is_object() {
        return Err("spec.podTemplate.spec must be an object (a PodSpec)".into());
    }
    let mut spec =
        serde_json::to_value(pod.spec.take().unwrap_or_default()).map_err(|e| e.to_string())?;
    merge_value(&mut spec, given);
    let merged = serde_json::from_value(spec)
        .map_err(|e| format!("spec.podTemplate.spec is not a valid PodSpec: {e}"))?;
    pod.spec = Some(merged);
    Ok(())
}

fn merge_value(base: &mut Value, given: &Value) {
    match (base, given) {
        (Value::Object(base), Value::Object(given)) => {
            for (field, value) in given {
                match (base.get_mut(field), merge_key(field), value) {
                    (Some(Value::Array(items)), Some(key), Value::Array(more)) => {
                        merge_list(items, more, key);
                    }
                    (Some(existing), None, _) if existing.is_object() && value.is_object() => {
                        merge_value(existing, value);
                    }
                    _ => {
                        base.insert(field.clone(), value.clone());
                    }
                }
            }
        }
        (base, given) => *base = given.clone(),
    }
}

/// Items with the same `key` merge; the others are added in order.
fn merge_list(items: &mut Vec<Value>, more: &[Value], key: &str) {
    for item in more {
        let id = item.get(key).filter(|v| !v.is_null());
        match id.and_then(|id| items.iter_mut().find(|i| i.get(key) == Some(id))) {
            Some(existing) => merge_value(existing, item),
            None => items.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
    };

    fn ours() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(Default::default()),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "server".into(),
                    image: Some("img".into()),
                    ports: Some(vec![ContainerPort {
                        name: Some("https".into()),
                        container_port: 6443,
                        ..ContainerPort::default()
                    }]),
                    security_context: Some(SecurityContext {
                        run_as_non_root: Some(true),
                        read_only_root_filesystem: Some(true),
                        ..SecurityContext::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    fn template(yaml: &str) -> PodTemplate {
        serde_yaml::from_str(yaml).expect("template")
    }

    #[test]
    fn the_server_container_is_merged_and_the_rest_added() {
        let mut pod = ours();
        let given = template(
            r#"
metadata: {labels: {team: a}, annotations: {note: x}}
spec:
  priorityClassName: system-cluster-critical
  containers:
    - name: server
      command: [/adapter]
      ports: [{name: custom-metrics, containerPort: 8080}]
      securityContext: {readOnlyRootFilesystem: false}
    - name: sidecar
      image: side
  volumes: [{name: config, configMap: {name: adapter-config}}]
"#,
        );
        merge(&mut pod, &given).expect("merged");
        let spec = pod.spec.expect("spec");
        assert_eq!(
            spec.priority_class_name.as_deref(),
            Some("system-cluster-critical")
        );
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["server", "sidecar"]);
        let server = &spec.containers[0];
        assert_eq!(server.image.as_deref(), Some("img"), "kept");
        assert_eq!(server.command, Some(vec!["/adapter".to_string()]));
        let ports: Vec<i32> = server
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [6443, 8080]);
        let security = server.security_context.as_ref().expect("securityContext");
        assert_eq!(
            security.read_only_root_filesystem,
            Some(false),
            "explicit override"
        );
        assert_eq!(
            security.run_as_non_root,
            Some(true),
            "restricted default kept"
        );
        assert_eq!(spec.volumes.map(|v| v.len()), Some(1));
        let meta = pod.metadata.expect("metadata");
        assert_eq!(
            meta.labels.and_then(|l| l.get("team").cloned()).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn the_service_account_and_the_tls_mounts_are_the_operators() {
        let mut pod = ours();
        let spec = pod.spec.as_mut().expect("spec");
        spec.service_account_name = Some("ours".into());
        spec.volumes = Some(vec![Volume {
            name: "serving-cert".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("ours-tls".into()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]);
        spec.containers[0].volume_mounts = Some(vec![VolumeMount {
            name: "serving-cert".into(),
            mount_path: "/tls".into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]);
        let given = template(
            r#"
spec:
  serviceAccountName: powerful
  serviceAccount: powerful
  volumes:
    - {name: serving-cert, secret: {secretName: db-password}}
    - {name: other, secret: {secretName: db-password}}
  containers:
    - name: server
      volumeMounts:
        - {name: other, mountPath: /tls}
        - {name: serving-cert, mountPath: /elsewhere, readOnly: false}
"#,
        );
        merge(&mut pod, &given).expect("merged");
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("ours"));
        assert_eq!(spec.service_account, None);
        let volumes = spec.volumes.expect("volumes");
        let tls = volumes
            .iter()
            .find(|v| v.name == "serving-cert")
            .expect("tls");
        let secret = tls.secret.as_ref().and_then(|s| s.secret_name.as_deref());
        assert_eq!(secret, Some("ours-tls"));
        let mounts = spec.containers[0].volume_mounts.clone().expect("mounts");
        let at_tls: Vec<&str> = mounts
            .iter()
            .filter(|m| m.mount_path == "/tls" || m.name == "serving-cert")
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(at_tls, ["serving-cert"], "{mounts:?}");
    }

    #[test]
    fn the_operators_labels_win_and_a_bad_spec_is_named() {
        let mut pod = ours();
        pod.metadata = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            labels: Some([("app".to_string(), "ours".to_string())].into()),
            ..Default::default()
        });
        merge(&mut pod, &template("metadata: {labels: {app: theirs}}")).expect("merged");
        let labels = pod.metadata.and_then(|m| m.labels).expect("labels");
        assert_eq!(labels["app"], "ours");
        let error = merge(&mut ours(), &template("spec: {containers: [{name: 7}]}"))
            .expect_err("a container name must be a string");
        assert!(error.contains("not a valid PodSpec"), "{error}");
    }
}
