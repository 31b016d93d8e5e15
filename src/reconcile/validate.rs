//! Validate: parse what the spec leaves as text and check the trust rules (design §3.5)
//! against the grants and the caches, before any request to the API server. The result,
//! [`Validated`], replaces the ExtensionServer for every later step.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use crate::context::Settings;
use crate::crd::{
    ExtensionServer, ExtensionServerStatus, ExternalBackend, RegistrationPolicy, TlsMode,
};
use crate::error::Result;
use crate::names::{self, ApiServiceName, ServerNames};
use crate::outcome::Subject;
use crate::tls::{self, Lifetimes, duration};
use crate::trust::{self, Claim, Facts, Refusal};

/// What serves the API.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Pods of a Deployment the operator runs.
    Pods,
    /// A server outside the cluster (`spec.external`).
    External(ExternalBackend),
}

/// The claim's verdict as the pipeline acts on it.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Register; with `adopt`, an unmanaged APIService may be taken over.
    Allowed { adopt: bool },
    /// The group became protected after registration: keep what is ours, add nothing.
    Frozen(Refusal),
    /// Nothing is created, and what this server had is removed.
    Refused(Refusal),
}

/// A spec that passed validation, with its text fields parsed.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The object, read only by the builders (owner references, the pod spec).
    pub object: Arc<ExtensionServer>,
    pub names: ServerNames,
    /// The server's uid: namespaced children are ours only with a controller ownerRef to it.
    pub uid: String,
    pub generation: Option<i64>,
    pub backend: Backend,
    pub verdict: Verdict,
    /// One APIService per version, in spec order.
    pub requested: Vec<ApiServiceName>,
    pub tls_mode: TlsMode,
    /// `tls.secretName` (mode Secret, and an external server's CA).
    pub tls_secret_name: String,
    /// Certificate and CA lifetimes (modes Managed and Insecure).
    pub lifetimes: Lifetimes,
    pub replicas: i32,
    pub port: i32,
    pub policy: RegistrationPolicy,
    /// `registration.unregisterAfter`, if set.
    pub unregister_after: Option<Duration>,
    /// Whether a change of the cluster's front-proxy CA rolls the pods.
    pub rollout_on_front_proxy_change: bool,
}

impl Validated {
    /// The status the last pass wrote.
    pub fn previous_status(&self) -> Option<&ExtensionServerStatus> {
        self.object.status.as_ref()
    }

    /// The object Events are about.
    pub fn reference(&self) -> ObjectReference {
        self.object.object_ref(&())
    }

    pub fn subject(&self) -> Subject {
        Subject {
            names: self.names.clone(),
            generation: self.generation,
            replicas: self.replicas,
            port: self.port,
        }
    }
}

pub fn validate(
    server: Arc<ExtensionServer>,
    settings: &Settings,
    facts: Facts<'_>,
) -> Result<Validated> {
    let spec = &server.spec;
    let lifetimes = tls::lifetimes(
        spec.tls.certificate_duration.as_deref(),
        spec.tls.ca_duration.as_deref(),
        settings.default_lifetimes,
    )?;
    let unregister_after = match spec.registration.unregister_after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(duration::parse_field(
            "registration.unregisterAfter",
            text,
            duration::MIN_UNREGISTER_AFTER,
        )?),
    };
    let names = ServerNames::of(&server);
    names::check_server_name(&names.name)?;
    let requested = names::requested_api_services(&server);
    let claim = trust::check(
        &names,
        &spec.group,
        &requested,
        spec.registration.adopt_existing,
        facts,
    );
    let verdict = match claim {
        Claim::Allowed { adopt } => Verdict::Allowed { adopt },
        Claim::Refused(refusal) if refusal.keep_registered => Verdict::Frozen(refusal),
        Claim::Refused(refusal) => Verdict::Refused(refusal),
    };
    let backend = match &spec.external {
        Some(external) => Backend::External(external.clone()),
        None => Backend::Pods,
    };
    Ok(Validated {
        names,
        uid: server.metadata.uid.clone().unwrap_or_default(),
        generation: server.metadata.generation,
        backend,
        verdict,
        requested,
        tls_mode: spec.tls.mode,
        tls_secret_name: spec.tls.secret_name.clone().unwrap_or_default(),
        lifetimes,
        replicas: spec.replicas,
        port: spec.port,
        policy: spec.registration.policy,
        unregister_after,
        rollout_on_front_proxy_change: spec.rollout_on_front_proxy_change,
        object: server,
    })
}
