//! The Deployment: restricted securityContext, the TLS mount, a cert-hash annotation, probes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, HTTPGetAction, KeyToPath, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{TlsInput, owned_meta, service_account_name};
use crate::crd::ExtensionServer;
use crate::names::{
    APISERVER_CERT_DIR, CERT_HASH_ANNOTATION, FRONT_PROXY_HASH_ANNOTATION, ServerNames,
    TLS_MOUNT_PATH,
};

const TLS_VOLUME: &str = "serving-cert";
/// The same certificate as `apiserver.crt` and `apiserver.key`, for k8s.io/apiserver's default
/// `--cert-dir`.
const APISERVER_CERT_VOLUME: &str = "apiserver-cert";

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

pub fn deployment(server: &ExtensionServer, names: &ServerNames, tls: &TlsInput) -> Deployment {
    let mut deployment = operator_deployment(server, names, tls);
    if let (Some(template), Some(spec)) = (&server.spec.pod_template, deployment.spec.as_mut()) {
        // Checked by validate: a template that does not merge never gets this far.
        if let Err(error) = super::pod_template::merge(&mut spec.template, template) {
            tracing::warn!(%error, "spec.podTemplate left out");
        }
    }
    deployment
}

fn operator_deployment(
    server: &ExtensionServer,
    names: &ServerNames,
    tls: &TlsInput,
) -> Deployment {
    let spec = &server.spec;
    let mut pod_labels = names.selector();
    pod_labels.extend(names.labels());
    Deployment {
        metadata: owned_meta(server, names, names.workload().to_string()),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(template_annotations(tls)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(service_account_name(server, names)),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container(server)],
                    volumes: Some(tls_volumes(&tls.secret_name)),
                    node_selector: (!spec.node_selector.is_empty())
                        .then(|| spec.node_selector.clone()),
                    tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
                    affinity: spec
                        .affinity
                        .clone()
                        .or_else(|| spread_across_nodes(server, names)),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The hashes whose change must roll the pods.
fn template_annotations(tls: &TlsInput) -> BTreeMap<String, String> {
    let mut annotations =
        BTreeMap::from([(CERT_HASH_ANNOTATION.to_string(), tls.cert_hash.clone())]);
    if let Some(hash) = &tls.front_proxy_hash {
        annotations.insert(FRONT_PROXY_HASH_ANNOTATION.to_string(), hash.clone());
    }
    annotations
}

fn container(server: &ExtensionServer) -> Container {
    let spec = &server.spec;
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
        name: "server".into(),
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
fn spread_across_nodes(server: &ExtensionServer, names: &ServerNames) -> Option<Affinity> {
    (server.spec.replicas > 1).then(|| Affinity {
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
