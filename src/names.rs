//! Object names, labels and annotations the operator owns.

use std::collections::BTreeMap;
use std::fmt;

use kube::ResourceExt;

use crate::crd::ExtensionServer;
use crate::error::{Error, Result};

/// Field manager for every server-side apply.
pub const FIELD_MANAGER: &str = "extension-server-operator";
/// Finalizer that removes the APIServices and cluster-scoped RBAC first.
pub const FINALIZER: &str = "aggregation.dev/cleanup";
/// Label: the managing operator.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "extension-server-operator";
/// Label: the owning ExtensionServer's name.
pub const SERVER_LABEL: &str = "aggregation.dev/extension-server";
/// Label: the owning ExtensionServer's namespace (on cluster-scoped and kube-system objects).
pub const SERVER_NAMESPACE_LABEL: &str = "aggregation.dev/extension-server-namespace";
/// Annotation on APIServices: `<namespace>/<name>` of the owning ExtensionServer.
pub const OWNER_ANNOTATION: &str = "aggregation.dev/owner";
/// Pod-template annotation: hash of the serving certificate, so a new cert rolls the pods.
pub const CERT_HASH_ANNOTATION: &str = "aggregation.dev/serving-cert-hash";
/// Pod-template annotation: hash of the cluster's front-proxy (requestheader) settings, so a
/// rotated front-proxy CA rolls pods that read it only at start.
pub const FRONT_PROXY_HASH_ANNOTATION: &str = "aggregation.dev/front-proxy-hash";
/// The ConfigMap in kube-system where kube-apiserver publishes its authentication settings.
pub const AUTHENTICATION_CONFIG_MAP: &str = "extension-apiserver-authentication";
/// Where the pods mount the serving certificate.
pub const TLS_MOUNT_PATH: &str = "/var/run/extension-server/tls";
/// Where k8s.io/apiserver looks for `apiserver.crt` and `apiserver.key` by default (its
/// `--cert-dir`, relative to a process started in `/`), and where OLM mounts them.
pub const APISERVER_CERT_DIR: &str = "/apiserver.local.config/certificates";
/// Namespace of the delegated-auth RoleBinding.
pub const KUBE_SYSTEM: &str = "kube-system";

pub use crate::crd::schema::{MAX_SERVER_NAME_LEN, SERVER_NAME_PATTERN};

/// Checks a server's name as admission does: a CRD installed before these rules lets any
/// DNS subdomain through, and the children of such a name could never be created.
pub fn check_server_name(name: &str) -> Result<()> {
    if name.len() > MAX_SERVER_NAME_LEN {
        return Err(Error::InvalidSpec(format!(
            "metadata.name must be at most {MAX_SERVER_NAME_LEN} characters, {name:?} has {}",
            name.len()
        )));
    }
    if !is_dns1035_label(name) {
        return Err(Error::InvalidSpec(format!(
            "metadata.name {name:?} must consist of lowercase letters, digits and '-', start \
             with a letter and end with a letter or digit"
        )));
    }
    Ok(())
}

fn lower_alnum(b: &u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Lowercase alphanumerics and '-', alphanumeric at both ends (any length but empty).
fn is_dns_word(text: &str) -> bool {
    let b = text.as_bytes();
    b.first().is_some_and(lower_alnum)
        && b.last().is_some_and(lower_alnum)
        && b.iter().all(|c| lower_alnum(c) || *c == b'-')
}

/// A DNS-1035 label: at most 63 characters, starting with a letter.
pub fn is_dns1035_label(text: &str) -> bool {
    text.len() <= 63
        && is_dns_word(text)
        && text.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// A DNS-1123 subdomain (object names): dot-separated words, at most 253 characters.
pub fn is_dns1123_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_word)
}

/// A host name for a certificate: a DNS-1123 subdomain whose every label has at most 63.
pub fn is_dns_name(text: &str) -> bool {
    is_dns1123_subdomain(text) && text.split('.').all(|label| label.len() <= 63)
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' and '.', alphanumeric at both ends.
pub fn is_label_value(text: &str) -> bool {
    let b = text.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    b.is_empty()
        || (b.len() <= 63
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(inner))
}

/// The API group an ExtensionServer serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group(pub String);

/// An API version name such as `v1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub String);

/// The name of an APIService: `<version>.<group>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiServiceName(String);

impl ApiServiceName {
    pub fn new(version: &Version, group: &Group) -> Self {
        Self(format!("{}.{}", version.0, group.0))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The group: everything after the version (a version name has no dot).
    pub fn group(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, group)| group)
    }
    /// The version: what comes before the first dot.
    pub fn version(&self) -> &str {
        self.0
            .split_once('.')
            .map_or(self.0.as_str(), |(version, _)| version)
    }
}

impl fmt::Display for ApiServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names of everything derived from one ExtensionServer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames {
    pub name: String,
    pub namespace: String,
}

impl ServerNames {
    pub fn of(server: &ExtensionServer) -> Self {
        Self {
            name: server.name_any(),
            namespace: server.namespace().unwrap_or_default(),
        }
    }
    /// `<namespace>/<name>`, the owner annotation value.
    pub fn owner_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
    pub fn workload(&self) -> &str {
        &self.name
    }
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.name)
    }
    pub fn tls_secret(&self) -> String {
        format!("{}-tls", self.name)
    }
    pub fn cluster_role_binding(&self) -> String {
        format!(
            "aggregation.dev:{}:{}:auth-delegator",
            self.namespace, self.name
        )
    }
    /// The binding of a ClusterRole from `spec.clusterRoles`.
    pub fn granted_role_binding(&self, role: &str) -> String {
        format!("{}{role}", self.granted_role_binding_prefix())
    }
    pub fn granted_role_binding_prefix(&self) -> String {
        format!("aggregation.dev:{}:{}:role:", self.namespace, self.name)
    }
    pub fn auth_reader_binding(&self) -> String {
        format!(
            "aggregation.dev:{}:{}:auth-reader",
            self.namespace, self.name
        )
    }
    /// DNS names the serving certificate must carry.
    pub fn service_dns_names(&self) -> Vec<String> {
        let (n, ns) = (&self.name, &self.namespace);
        vec![
            n.clone(),
            format!("{n}.{ns}"),
            self.service_host(),
            format!("{n}.{ns}.svc.cluster.local"),
        ]
    }
    /// `<name>.<namespace>.svc`: the name the aggregator verifies the server's certificate for.
    pub fn service_host(&self) -> String {
        format!("{}.{}.svc", self.name, self.namespace)
    }
    /// Labels on namespaced children.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            (SERVER_LABEL.to_string(), self.name.clone()),
        ])
    }
    /// The server an owner key (`<namespace>/<name>`) names.
    pub fn from_owner_key(key: &str) -> Option<Self> {
        let (namespace, name) = key.split_once('/')?;
        Some(Self {
            name: name.into(),
            namespace: namespace.into(),
        })
    }
    /// Labels on cluster-scoped and kube-system children.
    pub fn cluster_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.insert(SERVER_NAMESPACE_LABEL.to_string(), self.namespace.clone());
        labels
    }
    /// The owner annotation on cluster-scoped and kube-system children.
    pub fn owner_annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(OWNER_ANNOTATION.to_string(), self.owner_key())])
    }
    /// The pod selector of the Deployment, Service and PDB.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "extension-server".to_string(),
            ),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
        ])
    }
}

/// Label selector for everything this operator manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// The APIService names a server asks for, in spec order.
pub fn requested_api_services(server: &ExtensionServer) -> Vec<ApiServiceName> {
    server
        .spec
        .served_groups()
        .flat_map(|(group, versions)| {
            let group = Group(group.to_string());
            versions
                .iter()
                .map(move |v| ApiServiceName::new(&Version(v.name.clone()), &group))
        })
        .collect()
}

#[cfg(test)]
mod tests;
