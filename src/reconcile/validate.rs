//! Validate: parse what the spec leaves as text and check the trust rules (design §3.5)
//! against the grants and the caches, before any request to the API server. The result,
//! [`Validated`], replaces the ExtensionServer for every later step.

use kube::Resource;

use crate::context::Settings;
use crate::crd::{ExtensionServer, RegistrationPolicy, TlsMode};
use crate::error::{Error, Result};
use crate::names::{self, ApiServiceName, Group, ServerNames, Version};
use crate::outcome::ClampedPriority;
use crate::tls::{self, duration};
use crate::trust::backend::{self, ExternalTarget};
use crate::trust::grants::{HostCover, PRIORITY_CAP};
use crate::trust::{self, Claim, Facts};
use crate::validated::{
    Backend, ClaimDecision, Pods, Served, ServiceAccountChoice, Validated, merge_pod_template,
    operator_pod, serving_secret_name,
};

pub fn validate(
    server: &ExtensionServer,
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
    let names = ServerNames::of(server);
    names::check_server_name(&names.name)?;
    let (served, clamped) = served(server, &names, facts);
    let requested: Vec<ApiServiceName> = served.iter().map(|s| s.name.clone()).collect();
    let decision = judge(server, &names, &requested, facts);
    let tls_secret_name = spec.tls.secret_name.clone().unwrap_or_default();
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
        None => Backend::Pods(Box::new(pods(server, &names, &tls_secret_name)?)),
    };
    Ok(Validated {
        uid: server.metadata.uid.clone().unwrap_or_default(),
        generation: server.metadata.generation,
        owner: server.controller_owner_ref(&()),
        reference: server.object_ref(&()),
        previous_status: server.status.clone(),
        backend,
        decision,
        served,
        clamped,
        tls_mode: spec.tls.mode,
        tls_secret_name,
        lifetimes,
        replicas: spec.replicas,
        port: spec.port,
        policy: spec.registration.policy,
        unregister_after,
        rollout_on_front_proxy_change: spec.rollout_on_front_proxy_change,
        names,
    })
}

/// The pods: the operator's pod with `spec.podTemplate` merged over it, checked here once.
fn pods(server: &ExtensionServer, names: &ServerNames, tls_secret_name: &str) -> Result<Pods> {
    let spec = &server.spec;
    let service_account = match spec.service_account_name.as_deref() {
        Some(name) if !name.is_empty() => ServiceAccountChoice::Named(name.to_string()),
        _ => ServiceAccountChoice::Managed(names.name.clone()),
    };
    let serving_secret = serving_secret_name(names, spec.tls.mode, tls_secret_name);
    let mut template = operator_pod(spec, names, service_account.name(), &serving_secret);
    if let Some(given) = &spec.pod_template {
        merge_pod_template(&mut template, given).map_err(Error::InvalidSpec)?;
    }
    Ok(Pods {
        template,
        service_account,
        cluster_roles: spec.cluster_roles.clone(),
    })
}

/// One APIService per version of every served group, in spec order, each group priority at
/// most the namespace's cap for the group; and what was lowered.
fn served(
    server: &ExtensionServer,
    names: &ServerNames,
    facts: Facts<'_>,
) -> (Vec<Served>, Vec<ClampedPriority>) {
    let mut served = Vec::new();
    let mut clamped = Vec::new();
    for (group, versions) in server.spec.served_groups() {
        let cap = facts.grants.map_or(PRIORITY_CAP, |g| {
            g.priority_cap(&names.namespace, facts.namespace_labels, group)
        });
        let asked = versions.iter().map(|v| v.group_priority_minimum).max();
        if let Some(asked) = asked.filter(|asked| *asked > cap) {
            clamped.push(ClampedPriority {
                group: group.to_string(),
                asked,
                cap,
            });
        }
        let group = Group(group.to_string());
        served.extend(versions.iter().map(|v| Served {
            name: ApiServiceName::new(&Version(v.name.clone()), &group),
            group_priority_minimum: v.group_priority_minimum.min(cap),
            version_priority: v.version_priority,
        }));
    }
    (served, clamped)
}

/// Each served group is judged on its own; the first refusal decides, a refusal that removes
/// everything before one that keeps what is registered.
fn judge(
    server: &ExtensionServer,
    names: &ServerNames,
    requested: &[ApiServiceName],
    facts: Facts<'_>,
) -> ClaimDecision {
    let spec = &server.spec;
    if let Some(refusal) = trust::check_roles(names, &spec.cluster_roles, facts) {
        return ClaimDecision::Refused(refusal);
    }
    let account = spec.service_account_name.as_deref();
    if let Some(refusal) = trust::check_account(names, account, facts) {
        return ClaimDecision::Refused(refusal);
    }
    let always = spec.registration.policy == RegistrationPolicy::Always;
    if let Some(refusal) = trust::check_policy(names, always, facts) {
        return ClaimDecision::Refused(refusal);
    }
    let insecure = spec.tls.mode == TlsMode::Insecure;
    if let Some(refusal) = backend::check_insecure(names, insecure, facts) {
        return ClaimDecision::Refused(refusal);
    }
    if let Some(external) = &spec.external {
        let target = ExternalTarget {
            host: &external.host,
            port: external.port,
        };
        if let Some(refusal) = backend::check_external(names, target, facts) {
            return ClaimDecision::Refused(refusal);
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
            Claim::Refused(refusal) => return ClaimDecision::Refused(refusal),
        }
    }
    match frozen {
        Some(refusal) => ClaimDecision::Frozen(refusal),
        None => ClaimDecision::Allowed { adoptable },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use std::sync::Arc;

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

    fn verdict(grants: &str) -> ClaimDecision {
        verdict_of(adapter(), Some(grants))
    }

    fn verdict_of(server: Arc<ExtensionServer>, grants: Option<&str>) -> ClaimDecision {
        let grants = grants.map(|g| Grants::parse(g).expect("grants"));
        let labels = BTreeMap::new();
        let facts = Facts {
            grants: grants.as_ref(),
            namespace_labels: &labels,
            api_services: &[],
            crd_names: &[],
            apiserver_addresses: &[],
            claimants: &[],
        };
        validate(&server, &Settings::default(), facts)
            .expect("valid")
            .decision
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
            ClaimDecision::Allowed { .. }
        ));
        let other_namespace = format!(
            "grants: [{{namespaces: [monitoring], {groups}}}, {{namespaces: [ops], groups: [x.ops.io], clusterRoles: ['system:metrics-server']}}]"
        );
        let ClaimDecision::Refused(refusal) = verdict_of(server.clone(), Some(&other_namespace))
        else {
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
        let ClaimDecision::Allowed { adoptable } = both else {
            panic!("both groups are granted: {both:?}");
        };
        assert_eq!(adoptable.len(), 3, "every version may adopt: {adoptable:?}");
        let one = verdict(
            "grants: [{namespaces: [monitoring], groups: [custom.metrics.k8s.io], adoptExisting: true}]",
        );
        let ClaimDecision::Refused(refusal) = one else {
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
