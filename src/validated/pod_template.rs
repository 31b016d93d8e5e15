//! `spec.podTemplate` merged over the pod the operator builds: objects merge key by key, lists
//! of named things (containers, volumes, ports, env, imagePullSecrets) and volumeMounts merge
//! item by item, everything else the template gives replaces the operator's.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

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

/// Merges `template` over `pod`; the operator's own labels and annotations win.
pub fn merge(pod: &mut PodTemplateSpec, template: &PodTemplate) -> Result<(), String> {
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
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, SecurityContext};

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
