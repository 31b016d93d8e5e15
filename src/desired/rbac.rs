//! The ServiceAccount and the delegated-auth bindings, plus the granted ClusterRoles'.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::owned_meta;
use crate::names::{KUBE_SYSTEM, ServerNames};
use crate::validated::{Pods, ServiceAccountChoice, Validated};

/// The managed ServiceAccount, unless the spec names its own.
pub fn service_account(validated: &Validated, pods: &Pods) -> Option<ServiceAccount> {
    let ServiceAccountChoice::Managed(name) = &pods.service_account else {
        return None;
    };
    Some(ServiceAccount {
        metadata: owned_meta(validated, name.clone()),
        ..ServiceAccount::default()
    })
}

fn subject(names: &ServerNames, pods: &Pods) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: pods.service_account.name().to_string(),
        namespace: Some(names.namespace.clone()),
        ..Subject::default()
    }]
}

/// Metadata of a cluster-scoped binding: our labels and the owner annotation.
fn cluster_meta(names: &ServerNames, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(names.cluster_labels()),
        annotations: Some(names.owner_annotations()),
        ..ObjectMeta::default()
    }
}

fn cluster_role(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

/// Lets the server create TokenReviews and SubjectAccessReviews (`system:auth-delegator`).
pub fn auth_delegator_binding(names: &ServerNames, pods: &Pods) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: cluster_meta(names, names.cluster_role_binding()),
        role_ref: cluster_role("system:auth-delegator"),
        subjects: Some(subject(names, pods)),
    }
}

/// One binding per ClusterRole in `spec.clusterRoles` (trust checked that each is granted).
pub fn granted_role_bindings(names: &ServerNames, pods: &Pods) -> Vec<ClusterRoleBinding> {
    pods.cluster_roles
        .iter()
        .map(|role| ClusterRoleBinding {
            metadata: cluster_meta(names, names.granted_role_binding(role)),
            role_ref: cluster_role(role),
            subjects: Some(subject(names, pods)),
        })
        .collect()
}

/// Lets the server read `kube-system/extension-apiserver-authentication` (the requestheader CA).
pub fn auth_reader_binding(names: &ServerNames, pods: &Pods) -> RoleBinding {
    let mut metadata = cluster_meta(names, names.auth_reader_binding());
    metadata.namespace = Some(KUBE_SYSTEM.into());
    RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "extension-apiserver-authentication-reader".into(),
        },
        subjects: Some(subject(names, pods)),
    }
}
