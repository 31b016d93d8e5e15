//! The objects the operator creates for one ExtensionServer, written out by hand in the same
//! shape as `src/build/*.rs` (names, labels, selector, pod template, ports), so the floor
//! client makes kube-controller-manager and kwok do the same work as the operator does.

use anyhow::Result;
use extension_server_operator::apiservice::APIService;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use serde_json::{Value, json};

use super::servers::IMAGE;

/// One CA and one serving certificate, generated once and reused by every floor server.
pub struct Pki {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

impl Pki {
    pub fn generate() -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let cert =
            CertificateParams::new(vec!["s0.bench.svc".to_string()])?.signed_by(&key, &ca)?;
        Ok(Self {
            ca_cert: ca.pem(),
            ca_key: ca.key().serialize_pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Names and labels of one floor server, as `src/names.rs` derives them.
pub struct Server {
    pub name: String,
    pub namespace: String,
}

impl Server {
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/managed-by": "extension-server-operator",
            "aggregation.dev/extension-server": self.name,
        })
    }
    fn cluster_labels(&self) -> Value {
        json!({
            "app.kubernetes.io/managed-by": "extension-server-operator",
            "aggregation.dev/extension-server": self.name,
            "aggregation.dev/extension-server-namespace": self.namespace,
        })
    }
    fn selector(&self) -> Value {
        json!({
            "app.kubernetes.io/name": "extension-server",
            "app.kubernetes.io/instance": self.name,
        })
    }
    fn meta(&self, name: &str) -> Value {
        json!({"name": name, "namespace": self.namespace, "labels": self.labels()})
    }
    fn subjects(&self) -> Value {
        json!([{"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace}])
    }

    pub fn service_account(&self) -> Result<ServiceAccount> {
        Ok(serde_json::from_value(
            json!({"metadata": self.meta(&self.name)}),
        )?)
    }

    pub fn auth_delegator(&self) -> Result<ClusterRoleBinding> {
        Ok(serde_json::from_value(json!({
            "metadata": {
                "name": format!("aggregation.dev:{}:{}:auth-delegator", self.namespace, self.name),
                "labels": self.cluster_labels(),
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": self.subjects(),
        }))?)
    }

    pub fn auth_reader(&self) -> Result<RoleBinding> {
        Ok(serde_json::from_value(json!({
            "metadata": {
                "name": format!("aggregation.dev:{}:{}:auth-reader", self.namespace, self.name),
                "namespace": "kube-system",
                "labels": self.cluster_labels(),
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "extension-apiserver-authentication-reader"},
            "subjects": self.subjects(),
        }))?)
    }

    pub fn ca_secret(&self, pki: &Pki) -> Result<Secret> {
        Ok(serde_json::from_value(json!({
            "metadata": self.meta(&format!("{}-ca", self.name)),
            "type": "Opaque",
            "stringData": {"ca.crt": pki.ca_cert, "ca.key": pki.ca_key},
        }))?)
    }

    pub fn tls_secret(&self, pki: &Pki) -> Result<Secret> {
        Ok(serde_json::from_value(json!({
            "metadata": self.meta(&format!("{}-tls", self.name)),
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": pki.cert, "tls.key": pki.key, "ca.crt": pki.ca_cert},
        }))?)
    }

    pub fn deployment(&self) -> Result<Deployment> {
        let mut pod_labels = self.selector();
        if let (Some(pod), Some(labels)) = (pod_labels.as_object_mut(), self.labels().as_object()) {
            pod.extend(labels.clone());
        }
        let probe = |path: &str| json!({"httpGet": {"path": path, "port": "https", "scheme": "HTTPS"}, "periodSeconds": 10});
        Ok(serde_json::from_value(json!({
            "metadata": self.meta(&self.name),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": self.selector()},
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {"aggregation.dev/serving-cert-hash": "floor"},
                    },
                    "spec": {
                        "serviceAccountName": self.name,
                        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "server",
                            "image": IMAGE,
                            "ports": [{"name": "https", "containerPort": 8443, "protocol": "TCP"}],
                            "readinessProbe": probe("/readyz"),
                            "livenessProbe": probe("/livez"),
                            "volumeMounts": [{"name": "serving-cert", "mountPath": "/var/run/extension-server/tls", "readOnly": true}],
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }],
                        "volumes": [{"name": "serving-cert", "secret": {"secretName": format!("{}-tls", self.name)}}],
                    },
                },
            },
        }))?)
    }

    pub fn service(&self) -> Result<Service> {
        Ok(serde_json::from_value(json!({
            "metadata": self.meta(&self.name),
            "spec": {
                "type": "ClusterIP",
                "selector": self.selector(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}],
            },
        }))?)
    }

    pub fn api_service(&self, pki: &Pki) -> Result<APIService> {
        let group = format!("{}.{}.floor.api", self.name, self.namespace);
        Ok(serde_json::from_value(json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {
                "name": format!("v1.{group}"),
                "labels": self.cluster_labels(),
                "annotations": {"aggregation.dev/owner": format!("{}/{}", self.namespace, self.name)},
            },
            "spec": {
                "group": group,
                "version": "v1",
                "service": {"namespace": self.namespace, "name": self.name, "port": 443},
                "caBundle": k8s_openapi::ByteString(pki.ca_cert.as_bytes().to_vec()),
                "insecureSkipTLSVerify": false,
                "groupPriorityMinimum": 1000,
                "versionPriority": 15,
            },
        }))?)
    }
}
