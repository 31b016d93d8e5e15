//! [`Validated`]: a spec that passed validation, with everything the later steps need parsed
//! and checked once. It replaces the ExtensionServer: no step after validation reads `spec`,
//! and the builders see only this.

mod pod;
mod pod_template;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::crd::{ExtensionServerStatus, ExternalBackend, RegistrationPolicy, TlsMode};
use crate::names::{ApiServiceName, ServerNames};
use crate::outcome::{ClampedPriority, Subject};
use crate::tls::Lifetimes;
use crate::trust::Refusal;

pub use pod::operator_pod;
pub use pod_template::merge as merge_pod_template;

/// What serves the API.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Pods of a Deployment the operator runs.
    Pods(Box<Pods>),
    /// A server outside the cluster (`spec.external`); `listed` when a grant lists its host
    /// exactly (then a name that resolves to a restricted address may be dialled).
    External {
        backend: ExternalBackend,
        listed: bool,
    },
}

/// The pods the operator runs for a server, checked once.
#[derive(Debug, Clone)]
pub struct Pods {
    /// The operator's pod with `spec.podTemplate` merged over it. The builder adds the
    /// annotations whose change rolls the pods (certificate and front-proxy hashes).
    pub template: PodTemplateSpec,
    pub service_account: ServiceAccountChoice,
    /// Existing ClusterRoles bound to the ServiceAccount (each one granted).
    pub cluster_roles: Vec<String>,
}

/// The ServiceAccount the pods run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccountChoice {
    /// The operator creates one named after the server.
    Managed(String),
    /// `spec.serviceAccountName`: an existing one, never created by the operator.
    Named(String),
}

impl ServiceAccountChoice {
    pub fn name(&self) -> &str {
        match self {
            ServiceAccountChoice::Managed(name) | ServiceAccountChoice::Named(name) => name,
        }
    }
}

/// The claim's decision as the pipeline acts on it, over every served group.
#[derive(Debug, Clone)]
pub enum ClaimDecision {
    /// Register; the `adoptable` APIServices may be taken over if unmanaged ones exist.
    Allowed { adoptable: Vec<ApiServiceName> },
    /// The group became protected after registration: keep what is ours, add nothing.
    Frozen(Refusal),
    /// Nothing is created, and what this server had is removed.
    Refused(Refusal),
}

/// One served (group, version): one APIService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub name: ApiServiceName,
    pub group_priority_minimum: i32,
    pub version_priority: i32,
}

/// A spec that passed validation, with its text fields parsed.
#[derive(Debug, Clone)]
pub struct Validated {
    pub names: ServerNames,
    /// The server's uid: namespaced children are ours only with a controller ownerRef to it.
    pub uid: String,
    pub generation: Option<i64>,
    /// The controller owner reference every namespaced child carries.
    pub owner: Option<OwnerReference>,
    /// The object Events are about.
    pub reference: ObjectReference,
    /// The status the last pass wrote.
    pub previous_status: Option<ExtensionServerStatus>,
    pub backend: Backend,
    pub decision: ClaimDecision,
    /// One APIService per version of every served group, in spec order.
    pub served: Vec<Served>,
    /// Group priorities lowered to the cap.
    pub clamped: Vec<ClampedPriority>,
    pub tls_mode: TlsMode,
    /// `tls.secretName` (mode Secret, and an external server's CA).
    pub tls_secret_name: String,
    /// Certificate and CA lifetimes (modes Managed and Insecure).
    pub lifetimes: Lifetimes,
    pub replicas: i32,
    pub port: i32,
    pub policy: RegistrationPolicy,
    /// How long an APIService may stay unavailable: `--max-unavailable`, or a shorter
    /// `registration.unregisterAfter`.
    pub unregister_after: Duration,
    /// Whether a change of the cluster's front-proxy CA rolls the pods.
    pub rollout_on_front_proxy_change: bool,
}

impl Validated {
    /// The status the last pass wrote.
    pub fn previous_status(&self) -> Option<&ExtensionServerStatus> {
        self.previous_status.as_ref()
    }

    /// The server's key, as the controller queues it.
    pub fn key(&self) -> kube::runtime::reflector::ObjectRef<crate::crd::ExtensionServer> {
        kube::runtime::reflector::ObjectRef::new(&self.names.name).within(&self.names.namespace)
    }

    pub fn subject(&self) -> Subject {
        Subject {
            names: self.names.clone(),
            generation: self.generation,
            replicas: self.replicas,
            port: self.port,
            clamped: self.clamped.clone(),
        }
    }

    /// The APIService names of [`Validated::served`], in spec order.
    pub fn requested(&self) -> Vec<ApiServiceName> {
        self.served.iter().map(|s| s.name.clone()).collect()
    }

    /// The pods, unless an external server serves the API.
    pub fn pods(&self) -> Option<&Pods> {
        match &self.backend {
            Backend::Pods(pods) => Some(pods),
            Backend::External { .. } => None,
        }
    }

    /// The external server, if one serves the API.
    pub fn external(&self) -> Option<&ExternalBackend> {
        match &self.backend {
            Backend::External { backend, .. } => Some(backend),
            Backend::Pods(_) => None,
        }
    }

    /// True when the APIServices must not verify the server.
    pub fn is_insecure(&self) -> bool {
        self.tls_mode == TlsMode::Insecure
    }
}

/// The Secret the pods mount: the managed one, or the user's `tls.secretName` in mode Secret.
pub fn serving_secret_name(names: &ServerNames, mode: TlsMode, tls_secret_name: &str) -> String {
    match mode {
        TlsMode::Secret => tls_secret_name.to_string(),
        TlsMode::Managed | TlsMode::Insecure => names.tls_secret(),
    }
}
