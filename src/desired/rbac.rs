//! The ServiceAccount and the two delegated-auth bindings.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{owned_meta, service_account_name};
use crate::crd::ExtensionServer;
use crate::names::{KUBE_SYSTEM, ServerNames};

/// The managed ServiceAccount, unless the spec names its own.
pub fn service_account(server: &ExtensionServer, names: &ServerNames) -> Option<ServiceAccount> {
    if server
        .spec
        .service_account_name
        .as_deref()
        .is_some_and(|n| !n.is_empty())
    {
        return None;
    }
    Some(ServiceAccount {
        metadata: owned_meta(server, names, names.name.clone()),
        ..ServiceAccount::default()
    })
}

fn subject(server: &ExtensionServer, names: &ServerNames) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: service_account_name(server, names),
        namespace: Some(names.namespace.clone()),
        ..Subject::default()
    }]
}

/// Lets the server create TokenReviews and SubjectAccessReviews (`system:auth-delegator`).
pub fn auth_delegator_binding(server: &ExtensionServer, names: &ServerNames) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(names.cluster_role_binding()),
            labels: Some(names.cluster_labels()),
            annotations: Some(names.owner_annotations()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "system:auth-delegator".into(),
        },
        subjects: Some(subject(server, names)),
    }
}

/// One binding per ClusterRole in `spec.clusterRoles` (trust checked that each is granted).
pub fn granted_role_bindings(
    server: &ExtensionServer,
    names: &ServerNames,
) -> Vec<ClusterRoleBinding> {
    server
        .spec
        .cluster_roles
        .iter()
        .map(|role| ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(names.granted_role_binding(role)),
                labels: Some(names.cluster_labels()),
                annotations: Some(names.owner_annotations()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.clone(),
            },
            subjects: Some(subject(server, names)),
        })
        .collect()
}

/// Lets the server read `kube-system/extension-apiserver-authentication` (the requestheader CA).
pub fn auth_reader_binding(server: &ExtensionServer, names: &ServerNames) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(names.auth_reader_binding()),
            namespace: Some(KUBE_SYSTEM.into()),
            labels: Some(names.cluster_labels()),
            annotations: Some(names.owner_annotations()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "extension-apiserver-authentication-reader".into(),
        },
        subjects: Some(subject(server, names)),
    }
}
