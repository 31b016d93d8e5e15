//! What the steps of one pass produce, and [`Applied`], everything status is computed from.
//! Low in the house: the steps write these, status and events read them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;

use crate::apiservice::APIService;
use crate::names::{ApiServiceName, ServerNames};
use crate::probe::{BackendProbe, Handshake};
use crate::tls::{CertInfo, TlsEvent};
use crate::trust::Refusal;

/// How the serving certificate stands.
#[derive(Debug, Clone)]
pub enum CertificateOutcome {
    /// Managed or Secret mode: a valid certificate for the Service's names.
    Valid {
        serving: CertInfo,
        ca_not_after: Option<Timestamp>,
        /// A CA the pods may still serve from stays trusted next to the current one.
        previous_trusted: bool,
    },
    /// Mode Insecure: a managed certificate, but the aggregator does not verify it.
    Insecure { serving: CertInfo },
    /// Mode Secret: the user's Secret is missing or unusable.
    SecretInvalid(String),
    /// The certificate has expired.
    Expired(String),
    /// Nothing was issued: the claim is refused.
    NotIssued,
    /// An external server: the user's CA (its Secret and earliest expiry), or None in mode
    /// Insecure.
    External {
        ca: Option<(String, Option<Timestamp>)>,
    },
}

/// What happened to one APIService in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Registered(ApiServiceName),
    WaitingForReadyReplicas(ApiServiceName),
    WaitingForCertificate(ApiServiceName),
    ScaledToZero(ApiServiceName),
    Conflict {
        name: ApiServiceName,
        reason: String,
    },
    /// Removed because it stayed unavailable longer than `registration.unregisterAfter`.
    UnregisteredUnavailable(ApiServiceName),
    /// Not created: the claim is refused (the group became protected after registration).
    Refused(ApiServiceName),
    /// An unmanaged, Available APIService to adopt, left as it is until this server's Service
    /// answers a TLS handshake, so it never points at a backend that does not answer.
    WaitingForBackend(ApiServiceName),
}

/// A delegated-auth binding that had vanished and was put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    AuthDelegator,
    AuthReader,
}

/// What serves the API: pods of a Deployment, or a server outside the cluster.
#[allow(clippy::large_enum_variant)] // one per pass, never stored in bulk
#[derive(Debug, Clone)]
pub enum Workload {
    Pods {
        deployment: Option<Deployment>,
    },
    /// `spec.external`: dialled when its CA was usable.
    External {
        probe: Option<BackendProbe>,
    },
}

impl Workload {
    pub fn deployment(&self) -> Option<&Deployment> {
        match self {
            Workload::Pods { deployment } => deployment.as_ref(),
            Workload::External { .. } => None,
        }
    }
}

/// The server as this pass saw it: what status reports about, besides the children.
#[derive(Debug, Clone)]
pub struct Subject {
    pub names: ServerNames,
    pub generation: Option<i64>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.port`, the port the server listens on.
    pub port: i32,
    /// Group priorities lowered to the cap, said in Registered.
    pub clamped: Vec<ClampedPriority>,
}

/// A `groupPriorityMinimum` above the namespace's cap, registered at the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClampedPriority {
    pub group: String,
    pub asked: i32,
    pub cap: i32,
}

impl std::fmt::Display for ClampedPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "group {} is registered at groupPriorityMinimum {}, not {}: a higher priority would let it answer kubectl's short names before built-in groups, so it needs a grant with maxGroupPriorityMinimum for the group",
            self.group, self.cap, self.asked
        )
    }
}

/// Everything one pass applied and found, in one value: status is a function of this and the
/// previous status alone.
#[derive(Debug, Clone)]
pub struct Applied {
    pub subject: Subject,
    /// Why the claim is refused, if it is.
    pub refusal: Option<Refusal>,
    pub workload: Workload,
    pub service: Option<Service>,
    pub certificate: CertificateOutcome,
    pub registrations: Vec<Registration>,
    /// The requested APIServices as they stand after this pass.
    pub api_services: Vec<(ApiServiceName, Option<APIService>)>,
    /// A TLS handshake with the server, made as the aggregator's proxy would make it.
    pub handshake: Handshake,
    /// Delegated-auth bindings that had vanished and were put back.
    pub restored: Vec<Restored>,
    /// What the TLS step did (CA created, rotation steps), for Events.
    pub tls_events: Vec<TlsEvent>,
    /// When the next renewal or CA rotation step is due.
    pub tls_due: Option<Timestamp>,
    /// A CA rotation is in progress.
    pub rotating: bool,
}

impl Applied {
    /// The external probe, for an external server that was dialled.
    pub fn backend_probe(&self) -> Option<&BackendProbe> {
        match &self.workload {
            Workload::External { probe } => probe.as_ref(),
            Workload::Pods { .. } => None,
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self.workload, Workload::External { .. })
    }
}
