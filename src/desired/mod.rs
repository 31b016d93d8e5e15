//! Desired state: the child objects of one ExtensionServer, built by pure functions. No I/O;
//! unit-tested without a cluster. One builder per child kind, in its own file; a new kind is
//! one builder, one field in [`Desired`] (and `Observed`), and one line in the apply order.

mod api_services;
mod deployment;
mod pdb;
mod rbac;
mod secret;
mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

pub use api_services::api_services;
pub use deployment::deployment;
pub use pdb::pod_disruption_budget;
pub use rbac::{
    auth_delegator_binding, auth_reader_binding, granted_role_bindings, service_account,
};
pub use secret::{ca_secret_labels, tls_secret};
pub use service::service;

use crate::apiservice::APIService;
use crate::child_labels::ChildLabels;
use crate::tls::KeyedCert;
use crate::validated::Validated;

/// The TLS inputs the builders need.
#[derive(Debug, Clone)]
pub struct TlsInput {
    /// Serving cert the operator manages (modes Managed and Insecure); None in mode Secret.
    pub managed_serving: Option<KeyedCert>,
    /// PEM bundle the APIServices trust; None in mode Insecure.
    pub ca_bundle: Option<String>,
    /// Hash of the served certificate, for the pod-template annotation.
    pub cert_hash: String,
    /// Hash of the cluster's front-proxy settings, for the pod-template annotation (None:
    /// unknown, or the server opted out).
    pub front_proxy_hash: Option<String>,
}

/// Every child object, in one struct that the apply step must consume whole.
/// An external server (`spec.external`) has only the Service and the APIServices.
#[derive(Debug, Clone)]
pub struct Desired {
    pub service_account: Option<ServiceAccount>,
    pub auth_delegator: Option<ClusterRoleBinding>,
    pub auth_reader: Option<RoleBinding>,
    /// Bindings of the granted `spec.clusterRoles`.
    pub role_bindings: Vec<ClusterRoleBinding>,
    pub tls_secret: Option<Secret>,
    pub deployment: Option<Deployment>,
    pub service: Service,
    pub pdb: Option<PodDisruptionBudget>,
    pub api_services: Vec<APIService>,
}

impl Desired {
    /// The kinds of every child, named by destructuring, so a new field must be listed here.
    pub fn kinds(&self) -> std::collections::BTreeSet<String> {
        let Desired {
            service_account,
            auth_delegator,
            auth_reader,
            role_bindings,
            tls_secret,
            deployment,
            service,
            pdb,
            api_services,
        } = self;
        [
            optional(service_account),
            optional(auth_delegator),
            optional(auth_reader),
            list(role_bindings),
            optional(tls_secret),
            optional(deployment),
            one(service),
            optional(pdb),
            list(api_services),
        ]
        .into_iter()
        .collect()
    }

    /// Adds the admin's child labels (`--child-label`) to every object's metadata; the pod
    /// template keeps its labels, so a change relabels without rolling pods.
    pub fn with_child_labels(mut self, labels: &ChildLabels) -> Self {
        let Desired {
            service_account,
            auth_delegator,
            auth_reader,
            role_bindings,
            tls_secret,
            deployment,
            service,
            pdb,
            api_services,
        } = &mut self;
        let metas = service_account
            .iter_mut()
            .map(|o| &mut o.metadata)
            .chain(auth_delegator.iter_mut().map(|o| &mut o.metadata))
            .chain(auth_reader.iter_mut().map(|o| &mut o.metadata))
            .chain(role_bindings.iter_mut().map(|o| &mut o.metadata))
            .chain(tls_secret.iter_mut().map(|o| &mut o.metadata))
            .chain(deployment.iter_mut().map(|o| &mut o.metadata))
            .chain(std::iter::once(&mut service.metadata))
            .chain(pdb.iter_mut().map(|o| &mut o.metadata))
            .chain(api_services.iter_mut().map(|o| &mut o.metadata));
        for meta in metas {
            labels.add_to(meta.labels.get_or_insert_with(Default::default));
        }
        self
    }
}

fn kind<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}
fn one<K: Resource<DynamicType = ()>>(_: &K) -> String {
    kind::<K>()
}
fn optional<K: Resource<DynamicType = ()>>(_: &Option<K>) -> String {
    kind::<K>()
}
fn list<K: Resource<DynamicType = ()>>(_: &[K]) -> String {
    kind::<K>()
}

/// Builds the desired children of a validated server.
pub fn desired(validated: &Validated, tls: &TlsInput) -> Desired {
    let bundle = tls.ca_bundle.as_deref();
    let Some(pods) = validated.pods() else {
        return Desired {
            service_account: None,
            auth_delegator: None,
            auth_reader: None,
            role_bindings: Vec::new(),
            tls_secret: None,
            deployment: None,
            service: service(validated),
            pdb: None,
            api_services: api_services(validated, bundle),
        };
    };
    Desired {
        service_account: service_account(validated, pods),
        auth_delegator: Some(auth_delegator_binding(&validated.names, pods)),
        auth_reader: Some(auth_reader_binding(&validated.names, pods)),
        role_bindings: granted_role_bindings(&validated.names, pods),
        tls_secret: tls
            .managed_serving
            .as_ref()
            .map(|serving| tls_secret(validated, serving, bundle)),
        deployment: Some(deployment(validated, pods, tls)),
        service: service(validated),
        pdb: pod_disruption_budget(validated),
        api_services: api_services(validated, bundle),
    }
}

/// Metadata for a namespaced child: name, namespace, labels, controller owner reference.
fn owned_meta(validated: &Validated, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(validated.names.namespace.clone()),
        labels: Some(validated.names.labels()),
        owner_references: validated.owner.clone().map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
