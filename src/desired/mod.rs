//! Desired state: the child objects of one ExtensionServer, built by pure functions. No I/O;
//! unit-tested without a cluster. One builder per child kind, in its own file; a new kind is
//! one builder, one field in [`Desired`] (and `Observed`), and one line in the apply order.

mod apiservice;
mod deployment;
mod pdb;
mod pod_template;
mod rbac;
mod secret;
mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

pub use apiservice::api_services;
pub use deployment::deployment;
pub use pdb::pod_disruption_budget;
pub use pod_template::merge as merge_pod_template;
pub use rbac::{
    auth_delegator_binding, auth_reader_binding, granted_role_bindings, service_account,
};
pub use secret::{ca_secret_labels, tls_secret};
pub use service::service;

use crate::apiservice::APIService;
use crate::child_labels::ChildLabels;
use crate::crd::{ExtensionServer, TlsMode};
use crate::names::ServerNames;
use crate::tls::KeyedCert;

/// The TLS inputs the builders need.
#[derive(Debug, Clone)]
pub struct TlsInput {
    /// Secret the pods mount.
    pub secret_name: String,
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

/// Builds the desired children.
pub fn desired(server: &ExtensionServer, tls: &TlsInput) -> Desired {
    let names = ServerNames::of(server);
    if server.spec.external.is_some() {
        return Desired {
            service_account: None,
            auth_delegator: None,
            auth_reader: None,
            role_bindings: Vec::new(),
            tls_secret: None,
            deployment: None,
            service: service(server, &names),
            pdb: None,
            api_services: api_services(server, &names, tls.ca_bundle.as_deref()),
        };
    }
    Desired {
        service_account: service_account(server, &names),
        auth_delegator: Some(auth_delegator_binding(server, &names)),
        auth_reader: Some(auth_reader_binding(server, &names)),
        role_bindings: granted_role_bindings(server, &names),
        tls_secret: tls
            .managed_serving
            .as_ref()
            .map(|serving| tls_secret(server, &names, serving, tls.ca_bundle.as_deref())),
        deployment: Some(deployment(server, &names, tls)),
        service: service(server, &names),
        pdb: pod_disruption_budget(server, &names),
        api_services: api_services(server, &names, tls.ca_bundle.as_deref()),
    }
}

/// The ServiceAccount the pods run as.
pub fn service_account_name(server: &ExtensionServer, names: &ServerNames) -> String {
    server
        .spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names.name.clone())
}

/// The port the APIServices name: the Service's 443, or an external server's own port (the
/// aggregator dials an ExternalName Service's host at the APIService's port).
pub fn service_port(server: &ExtensionServer) -> i32 {
    server.spec.external.as_ref().map_or(443, |e| e.port)
}

/// True when the APIServices must not verify the server.
pub fn is_insecure(server: &ExtensionServer) -> bool {
    server.spec.tls.mode == TlsMode::Insecure
}

/// Metadata for a namespaced child: name, namespace, labels, controller owner reference.
fn owned_meta(server: &ExtensionServer, names: &ServerNames, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: server.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
