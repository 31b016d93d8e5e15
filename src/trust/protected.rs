//! Protected groups: the groups the cluster serves itself, which no ExtensionServer may claim,
//! and the reserved Kubernetes suffixes, which only an exact grant opens.

use crate::apiservice::APIService;

/// Why a group is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// `*.k8s.io` and `*.kubernetes.io` belong to Kubernetes.
    KubernetesSuffix,
    /// kube-apiserver serves the group itself (a `Local` APIService).
    BuiltIn { api_service: String },
    /// A CustomResourceDefinition serves the group.
    CustomResource { crd: String },
}

/// Suffixes reserved for Kubernetes' own groups.
pub const RESERVED_SUFFIXES: [&str; 2] = ["k8s.io", "kubernetes.io"];

/// True for `k8s.io`, `kubernetes.io` and their subdomains.
pub fn is_reserved(group: &str) -> bool {
    RESERVED_SUFFIXES
        .iter()
        .any(|suffix| group == *suffix || group.ends_with(&format!(".{suffix}")))
}

/// Why `group` is protected, if it is. `crd_names` are CRD names (`<plural>.<group>`).
/// With `reserved_open` (an exact grant names a reserved group), only the cluster's own
/// APIs protect it.
pub fn protection<'a>(
    group: &str,
    api_services: impl IntoIterator<Item = &'a APIService>,
    crd_names: impl IntoIterator<Item = &'a str>,
    reserved_open: bool,
) -> Option<Protection> {
    if is_reserved(group) && !reserved_open {
        return Some(Protection::KubernetesSuffix);
    }
    if let Some(local) = api_services
        .into_iter()
        .find(|a| a.is_local() && a.spec.group.as_deref() == Some(group))
    {
        return Some(Protection::BuiltIn {
            api_service: local.metadata.name.clone().unwrap_or_default(),
        });
    }
    crd_names
        .into_iter()
        .find(|name| name.split_once('.').is_some_and(|(_, g)| g == group))
        .map(|crd| Protection::CustomResource {
            crd: crd.to_string(),
        })
}

impl Protection {
    /// Why, in words a user can act on.
    pub fn message(&self, group: &str) -> String {
        match self {
            Protection::KubernetesSuffix => format!(
                "group {group} ends in .k8s.io or .kubernetes.io, which are reserved for Kubernetes itself; choose a group under a domain you own, or ask a cluster admin for a grant that names {group} exactly (for a metrics adapter)"
            ),
            Protection::BuiltIn { api_service } => format!(
                "group {group} is served by kube-apiserver itself (APIService {api_service} is Local); choose another group"
            ),
            Protection::CustomResource { crd } => format!(
                "group {group} is served by the CustomResourceDefinition {crd}; choose another group"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiservice::{APIServiceSpec, ServiceReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn api_service(name: &str, group: &str, local: bool) -> APIService {
        APIService {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: APIServiceSpec {
                group: Some(group.into()),
                service: (!local).then(ServiceReference::default),
                ..APIServiceSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn kubernetes_builtin_and_crd_groups_are_protected() {
        let apis = [
            api_service("v1.apps.example.com", "apps.example.com", true),
            api_service("v1.ext.example.com", "ext.example.com", false),
        ];
        let crds = ["widgets.crd.example.com"];
        let check = |group: &str| protection(group, &apis, crds, false);
        assert_eq!(
            check("rbac.authorization.k8s.io"),
            Some(Protection::KubernetesSuffix)
        );
        assert_eq!(check("metrics.k8s.io"), Some(Protection::KubernetesSuffix));
        assert_eq!(check("x.kubernetes.io"), Some(Protection::KubernetesSuffix));
        assert!(matches!(
            check("apps.example.com"),
            Some(Protection::BuiltIn { .. })
        ));
        assert!(matches!(
            check("crd.example.com"),
            Some(Protection::CustomResource { .. })
        ));
        assert_eq!(
            check("ext.example.com"),
            None,
            "an extension server's group is not protected"
        );
        assert_eq!(check("notk8s.io"), None);
        assert_eq!(check("example.com"), None);
    }
}
