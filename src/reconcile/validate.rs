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
use crate::error::{Error, Result};
use crate::names::{self, ApiServiceName, ServerNames};
use crate::outcome::Subject;
use crate::tls::{self, Lifetimes, duration};
use crate::trust::backend::{self, ExternalTarget};
use crate::trust::grants::HostCover;
use crate::trust::{self, Claim, Facts, Refusal};

/// What serves the API.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Pods of a Deployment the operator runs.
    Pods,
    /// A server outside the cluster (`spec.external`); `listed` when a grant lists its host
    /// exactly (then a name that resolves to a restricted address may be dialled).
    External {
        backend: ExternalBackend,
        listed: bool,
    },
}

/// The claim's verdict as the pipeline acts on it, over every served group.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Register; the `adoptable` APIServices may be taken over if unmanaged ones exist.
    Allowed { adoptable: Vec<ApiServiceName> },
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
    /// How long an APIService may stay unavailable: `--max-unavailable`, or a shorter
    /// `registration.unregisterAfter`.
    pub unregister_after: Duration,
    /// Whether a change of the cluster's front-proxy CA rolls the pods.
    pub rollout_on_front_proxy_change: bool,
}

impl Validated {
    /// The status the last pass wrote.
    pub fn previous_status(&self) -> Option<&ExtensionServerStatus> {
        self.object.status.as_ref()
    }

    /// The server's key, as the controller queues it.
    pub fn key(&self) -> kube::runtime::reflector::ObjectRef<ExtensionServer> {
        kube::runtime::reflector::ObjectRef::new(&self.names.name).within(&self.names.namespace)
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
    // The admin's cap applies whatever the spec says; the spec can only shorten it.
    let unregister_after = match spec.registration.unregister_after.as_deref() {
        None | Some("") => settings.max_unavailable,
        Some(text) => duration::parse_field(
            "registration.unregisterAfter",
            text,
            duration::MIN_UNREGISTER_AFTER,
        )?
        .min(settings.max_unavailable),
    };
    if let Some(template) = &spec.pod_template {
        let mut pod = k8s_openapi::api::core::v1::PodTemplateSpec::default();
        crate::desired::merge_pod_template(&mut pod, template).map_err(Error::InvalidSpec)?;
    }
    let names = ServerNames::of(&server);
    names::check_server_name(&names.name)?;
    let requested = names::requested_api_services(&server);
    let verdict = judge(&server, &names, &requested, facts);
    let backend = match &spec.external {
        Some(external) => Backend::External {
            backend: external.clone(),
            listed: facts.grants.is_some_and(|g| {
                g.external_cover(
                    &names.namespace,
                    facts.namespace_labels,
                    &external.host,
                    external.port,
                ) == HostCover::Exact
            }),
        },
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

/// Each served group is judged on its own; the first refusal decides, a refusal that removes
/// everything before one that keeps what is registered.
fn judge(
    server: &ExtensionServer,
    names: &ServerNames,
    requested: &[ApiServiceName],
    facts: Facts<'_>,
) -> Verdict {
    let spec = &server.spec;
    if let Some(refusal) = trust::check_roles(names, &spec.cluster_roles, facts) {
        return Verdict::Refused(refusal);
    }
    let account = spec.service_account_name.as_deref();
    if let Some(refusal) = trust::check_account(names, account, facts) {
        return Verdict::Refused(refusal);
    }
    let always = spec.registration.policy == RegistrationPolicy::Always;
    if let Some(refusal) = trust::check_policy(names, always, facts) {
        return Verdict::Refused(refusal);
    }
    let insecure = spec.tls.mode == TlsMode::Insecure;
    if let Some(refusal) = backend::check_insecure(names, insecure, facts) {
        return Verdict::Refused(refusal);
    }
    if let Some(external) = &spec.external {
        let target = ExternalTarget {
            host: &external.host,
            port: external.port,
        };
        if let Some(refusal) = backend::check_external(names, target, facts) {
            return Verdict::Refused(refusal);
        }
    }
    let mut adoptable = Vec::new();
    let mut frozen = None;
    for (group, _) in spec.served_groups() {
        let in_group: Vec<ApiServiceName> = requested
            .iter()
            .filter(|r| r.group() == group)
            .cloned()
            .collect();
        let adopt = spec.registration.adopt_existing;
        match trust::check(names, group, &in_group, adopt, facts) {
            Claim::Allowed { adopt: true } => adoptable.extend(in_group),
            Claim::Allowed { adopt: false } => {}
            Claim::Refused(refusal) if refusal.keep_registered => {
                frozen.get_or_insert(refusal);
            }
            Claim::Refused(refusal) => return Verdict::Refused(refusal),
        }
    }
    match frozen {
        Some(refusal) => Verdict::Frozen(refusal),
        None => Verdict::Allowed { adoptable },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::reason::Reason;
    use crate::trust::grants::Grants;

    fn adapter() -> Arc<ExtensionServer> {
        let mut server: ExtensionServer = serde_yaml::from_str(
            r#"
apiVersion: aggregation.dev/v1alpha1
kind: ExtensionServer
metadata: {name: adapter, namespace: monitoring, uid: u1, generation: 2}
spec:
  group: custom.metrics.k8s.io
  versions: [{name: v1beta2}, {name: v1beta1}]
  additionalGroups: [{group: external.metrics.k8s.io, versions: [{name: v1beta1}]}]
  image: adapter:latest
  registration: {adoptExisting: true}
"#,
        )
        .expect("server");
        server.metadata.namespace = Some("monitoring".into());
        Arc::new(server)
    }

    fn verdict(grants: &str) -> Verdict {
        verdict_of(adapter(), Some(grants))
    }

    fn verdict_of(server: Arc<ExtensionServer>, grants: Option<&str>) -> Verdict {
        let grants = grants.map(|g| Grants::parse(g).expect("grants"));
        let labels = BTreeMap::new();
        let facts = Facts {
            grants: grants.as_ref(),
            namespace_labels: &labels,
            api_services: &[],
            crd_names: &[],
            kubernetes_service_ip: None,
        };
        validate(server, &Settings::default(), facts)
            .expect("valid")
            .verdict
    }

    #[test]
    fn a_cluster_role_is_bound_only_as_granted() {
        let mut server = (*adapter()).clone();
        server.spec.cluster_roles = vec!["system:metrics-server".into()];
        let server = Arc::new(server);
        let groups = "groups: [custom.metrics.k8s.io, external.metrics.k8s.io]";
        let granted = format!(
            "grants: [{{namespaces: [monitoring], {groups}, clusterRoles: ['system:metrics-server']}}]"
        );
        assert!(matches!(
            verdict_of(server.clone(), Some(&granted)),
            Verdict::Allowed { .. }
        ));
        let other_namespace = format!(
            "grants: [{{namespaces: [monitoring], {groups}}}, {{namespaces: [ops], groups: [x.ops.io], clusterRoles: ['system:metrics-server']}}]"
        );
        let Verdict::Refused(refusal) = verdict_of(server.clone(), Some(&other_namespace)) else {
            panic!("the role is granted to another namespace only");
        };
        assert_eq!(refusal.reason, Reason::NotGranted);
        assert!(
            refusal
                .message
                .contains("ClusterRole system:metrics-server"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn every_served_group_needs_its_own_grant() {
        let both = verdict(
            "grants: [{namespaces: [monitoring], groups: [custom.metrics.k8s.io, external.metrics.k8s.io], adoptExisting: true}]",
        );
        let Verdict::Allowed { adoptable } = both else {
            panic!("both groups are granted: {both:?}");
        };
        assert_eq!(adoptable.len(), 3, "every version may adopt: {adoptable:?}");
        let one = verdict(
            "grants: [{namespaces: [monitoring], groups: [custom.metrics.k8s.io], adoptExisting: true}]",
        );
        let Verdict::Refused(refusal) = one else {
            panic!("external.metrics.k8s.io is not granted: {one:?}");
        };
        assert_eq!(refusal.reason, Reason::ProtectedGroup);
        assert!(
            refusal.message.contains("external.metrics.k8s.io"),
            "{}",
            refusal.message
        );
    }
}
