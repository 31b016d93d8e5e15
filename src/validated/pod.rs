//! The pod the operator runs, from the spec: restricted securityContext, the TLS mounts,
//! probes, placement. Built once at validation; `spec.podTemplate` merges over it.

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, HTTPGetAction, KeyToPath, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::ExtensionServerSpec;
use crate::names::{APISERVER_CERT_DIR, ServerNames, TLS_MOUNT_PATH};

/// The container that runs the extension API server.
pub(super) const SERVER_CONTAINER: &str = "server";
const TLS_VOLUME: &str = "serving-cert";
/// The same certificate as `apiserver.crt` and `apiserver.key`, for k8s.io/apiserver's default
/// `--cert-dir`.
const APISERVER_CERT_VOLUME: &str = "apiserver-cert";

/// The operator's pod for `spec`, running as `service_account` and mounting `serving_secret`.
pub fn operator_pod(
    spec: &ExtensionServerSpec,
    names: &ServerNames,
    service_account: &str,
    serving_secret: &str,
) -> PodTemplateSpec {
    let mut pod_labels = names.selector();
    pod_labels.extend(names.labels());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(service_account.to_string()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container(spec)],
            volumes: Some(tls_volumes(serving_secret)),
            node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
            tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
            affinity: spec
                .affinity
                .clone()
                .or_else(|| spread_across_nodes(spec.replicas, names)),
            ..PodSpec::default()
        }),
    }
}

/// The serving Secret twice: as `tls.crt`/`tls.key`/`ca.crt`, and under the names
/// k8s.io/apiserver looks for when no TLS flag is given.
fn tls_volumes(secret_name: &str) -> Vec<Volume> {
    let item = |key: &str, path: &str| KeyToPath {
        key: key.into(),
        path: path.into(),
        ..KeyToPath::default()
    };
    let secret = |items: Option<Vec<KeyToPath>>| SecretVolumeSource {
        secret_name: Some(secret_name.to_string()),
        items,
        ..SecretVolumeSource::default()
    };
    vec![
        Volume {
            name: TLS_VOLUME.into(),
            secret: Some(secret(None)),
            ..Volume::default()
        },
        Volume {
            name: APISERVER_CERT_VOLUME.into(),
            secret: Some(secret(Some(vec![
                item("tls.crt", "apiserver.crt"),
                item("tls.key", "apiserver.key"),
            ]))),
            ..Volume::default()
        },
    ]
}

fn container(spec: &ExtensionServerSpec) -> Container {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("https".into()),
            scheme: Some("HTTPS".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    Container {
        name: SERVER_CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        resources: spec.resources.clone(),
        ports: Some(vec![ContainerPort {
            name: Some("https".into()),
            container_port: spec.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/livez")),
        volume_mounts: Some(vec![
            VolumeMount {
                name: TLS_VOLUME.into(),
                mount_path: TLS_MOUNT_PATH.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: APISERVER_CERT_VOLUME.into(),
                mount_path: APISERVER_CERT_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// With more than one replica, prefer one pod per node.
fn spread_across_nodes(replicas: i32, names: &ServerNames) -> Option<Affinity> {
    (replicas > 1).then(|| Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(names.selector()),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    })
}
