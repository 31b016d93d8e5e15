//! The trust boundary (design §3.5): an ExtensionServer may claim a group only within the
//! rules a cluster admin set. Pure: decided from the spec, the grants and the caches.

pub mod backend;
pub mod claimants;
pub mod grants;
pub mod hosts;
pub mod protected;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::apiservice::APIService;
use crate::names::{ApiServiceName, ServerNames};
use crate::reason::Reason;
use grants::{Allowance, Grants};
use protected::Protection;

/// What the cluster says about a claim, from the caches.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The admin's grants; `None` when the operator runs without `--grants`.
    pub grants: Option<&'a Grants>,
    /// The labels of the ExtensionServer's namespace.
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// Every APIService in the cluster.
    pub api_services: &'a [Arc<APIService>],
    /// Every CustomResourceDefinition's name (`<plural>.<group>`).
    pub crd_names: &'a [String],
    /// kube-apiserver's own addresses: the `kubernetes` Service's ClusterIP and endpoints.
    pub apiserver_addresses: &'a [String],
    /// The other servers that claim one of this server's groups and are allowed to.
    pub claimants: &'a [Claimant],
}

/// Another ExtensionServer that claims a group this one serves, and whose claim is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    /// `<namespace>/<name>`.
    pub key: String,
    pub group: String,
    /// Created before this server (oldest creationTimestamp, then uid): it holds the group.
    pub earlier: bool,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Facts<'static> {
    /// A cluster with no grants, no APIServices and no CRDs: for builders run without one.
    pub fn none() -> Self {
        Facts {
            grants: None,
            namespace_labels: &NO_LABELS,
            api_services: &[],
            crd_names: &[],
            apiserver_addresses: &[],
            claimants: &[],
        }
    }
}

/// The verdict on a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The server may register; with `adopt` it may take over an unmanaged APIService.
    Allowed {
        adopt: bool,
    },
    Refused(Refusal),
}

/// A refused claim: the reason, what to do, and whether registered APIServices stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    /// A group that became protected after it was registered (a CRD installed later): the
    /// running APIServices stay, and the admin decides.
    pub keep_registered: bool,
}

/// Decides whether `names` may claim `group` with these `requested` APIServices.
pub fn check(
    names: &ServerNames,
    group: &str,
    requested: &[ApiServiceName],
    adopt_requested: bool,
    facts: Facts<'_>,
) -> Claim {
    let granted = |g: &Grants| {
        g.allowance(&names.namespace, facts.namespace_labels, group) != Allowance::NotGranted
    };
    // Only an exact grant opens a reserved group (wildcards never cover one).
    let reserved_open = protected::is_reserved(group) && facts.grants.is_some_and(granted);
    let crds = facts.crd_names.iter().map(String::as_str);
    let api_services = facts.api_services.iter().map(Arc::as_ref);
    if let Some(protection) = protected::protection(group, api_services, crds, reserved_open) {
        let registered = holds_any(names, facts, |a| {
            requested
                .iter()
                .any(|r| Some(r.as_str()) == a.metadata.name.as_deref())
        });
        let mut message = protection.message(group);
        let shadowed = registered && protection != Protection::KubernetesSuffix;
        // The aggregator leaves an APIService it did not create in place, so a registration
        // kept here would keep the new API's traffic: only an admin may keep it.
        let keep = shadowed
            && facts.grants.is_none_or(|g| {
                g.keeps_when_shadowed(&names.namespace, facts.namespace_labels, group)
            });
        if keep {
            message.push_str(
                "; this server registered it first and a grant keeps its APIServices in place (keepWhenShadowed), until a cluster admin removes the clash (delete this ExtensionServer or that API)",
            );
        } else if shadowed {
            message.push_str(
                "; this server's APIServices were removed so that the API serves the group (a grant with keepWhenShadowed: true would keep them)",
            );
        }
        return Claim::Refused(Refusal {
            reason: Reason::ProtectedGroup,
            message,
            keep_registered: keep,
        });
    }
    let allowance = match facts.grants {
        None => Allowance::Granted { adopt: false },
        Some(grants) => grants.allowance(&names.namespace, facts.namespace_labels, group),
    };
    let Allowance::Granted { adopt } = allowance else {
        return Claim::Refused(not_granted(format!(
            "namespace {} has no grant for group {group}; ask a cluster admin to add one to the operator's grants (until then this server gets no APIService and no delegated-auth binding)",
            names.namespace
        )));
    };
    if adopt_requested && !adopt {
        let unmanaged: Vec<&str> = facts
            .api_services
            .iter()
            .filter(|a| !a.is_local() && crate::observe::owning_server(a.as_ref()).is_none())
            .filter_map(|a| a.metadata.name.as_deref())
            .filter(|name| requested.iter().any(|r| r.as_str() == *name))
            .collect();
        if !unmanaged.is_empty() {
            return Claim::Refused(Refusal {
                reason: Reason::AdoptionNotAllowed,
                message: format!(
                    "registration.adoptExisting is set, but no grant lets namespace {} adopt existing APIServices ({} exists and is not managed by this operator); ask a cluster admin for a grant with adoptExisting: true, or remove the field",
                    names.namespace,
                    unmanaged.join(", ")
                ),
                keep_registered: false,
            });
        }
    }
    let adopt = adopt_requested && adopt;
    if let Some(refusal) = earlier_claimant(names, group, facts) {
        return Claim::Refused(refusal);
    }
    if let Some(refusal) = other_holder(names, group, requested, facts) {
        return Claim::Refused(refusal);
    }
    Claim::Allowed { adopt }
}

/// Refuses a ClusterRole in `spec.clusterRoles` that no grant for the namespace lists (without
/// grants every role may be bound).
pub fn check_roles(names: &ServerNames, roles: &[String], facts: Facts<'_>) -> Option<Refusal> {
    let grants = facts.grants?;
    let role = roles
        .iter()
        .find(|r| !grants.role_granted(&names.namespace, facts.namespace_labels, r))?;
    Some(not_granted(format!(
        "ClusterRole {role} (spec.clusterRoles) is not granted to namespace {}; ask a cluster admin to list it under clusterRoles in a grant for this namespace (until then this server gets no APIService and no binding)",
        names.namespace
    )))
}

/// Refuses a `spec.serviceAccountName` that no grant for the namespace lists (without grants
/// any existing account may be named): the account is bound to `system:auth-delegator`.
pub fn check_account(
    names: &ServerNames,
    account: Option<&str>,
    facts: Facts<'_>,
) -> Option<Refusal> {
    let (grants, account) = (facts.grants?, account?);
    if grants.account_granted(&names.namespace, facts.namespace_labels, account) {
        return None;
    }
    Some(not_granted(format!(
        "ServiceAccount {account} (spec.serviceAccountName) is not granted to namespace {}; it would be bound to system:auth-delegator, so ask a cluster admin to list it under serviceAccountNames in a grant for this namespace, or remove the field (the operator then creates one for this server)",
        names.namespace
    )))
}

/// Refuses `registration.policy: Always` unless a grant for the namespace allows it (without
/// grants it is allowed): it registers before any replica is ready, so the APIService may be
/// unavailable from the start.
pub fn check_policy(names: &ServerNames, always: bool, facts: Facts<'_>) -> Option<Refusal> {
    let grants = facts.grants.filter(|_| always)?;
    if grants.registration_always_granted(&names.namespace, facts.namespace_labels) {
        return None;
    }
    Some(not_granted(format!(
        "registration.policy Always is not granted to namespace {}: it registers before any replica is ready, and an unavailable APIService breaks discovery for the whole cluster; use WhenReady, or ask a cluster admin for a grant with allowRegistrationAlways: true",
        names.namespace
    )))
}

/// A refusal for something the grants do not allow; nothing stays registered.
fn not_granted(message: String) -> Refusal {
    Refusal {
        reason: Reason::NotGranted,
        message,
        keep_registered: false,
    }
}

/// The first claimant holds a group while it exists, registered or not (scaled to 0, held
/// back, not yet ready): a later claimant gets `Conflict` and removes what it had.
fn earlier_claimant(names: &ServerNames, group: &str, facts: Facts<'_>) -> Option<Refusal> {
    let holder = facts
        .claimants
        .iter()
        .find(|c| c.earlier && c.group == group)?;
    Some(Refusal {
        reason: Reason::Conflict,
        message: format!(
            "{} claimed group {group} first and holds it while it exists, registered or not; a group has one holder: choose another group, or remove that server first",
            describe(names, &holder.key)
        ),
        keep_registered: false,
    })
}

/// Another server, named only when it is in this server's namespace: a tenant's status says
/// nothing of other namespaces (admins find the holder in the operator's log).
fn describe(names: &ServerNames, key: &str) -> String {
    let same_namespace =
        ServerNames::from_owner_key(key).is_some_and(|other| other.namespace == names.namespace);
    if same_namespace {
        format!("ExtensionServer {key}")
    } else {
        tracing::info!(claimant = %names.owner_key(), holder = %key, "a group is held by a server in another namespace");
        "an ExtensionServer in another namespace".to_string()
    }
}

/// True when this server holds an APIService that `filter` picks.
fn holds_any(names: &ServerNames, facts: Facts<'_>, filter: impl Fn(&APIService) -> bool) -> bool {
    facts.api_services.iter().any(|a| {
        crate::observe::owning_server(a.as_ref()) == Some(names.owner_key().as_str()) && filter(a)
    })
}

/// A group has one holder: clients read the whole group (kubectl picks its preferred version
/// among all its APIServices; the HPA and `kubectl top` read the metrics groups), so every
/// APIService in it must be this server's, or one it requests and may adopt.
fn other_holder(
    names: &ServerNames,
    group: &str,
    requested: &[ApiServiceName],
    facts: Facts<'_>,
) -> Option<Refusal> {
    let ours = names.owner_key();
    let why = if protected::is_reserved(group) {
        "because the HPA and kubectl top read the whole group"
    } else {
        "because clients read the whole group and prefer its highest version"
    };
    let in_group = facts
        .api_services
        .iter()
        .filter(|a| a.spec.group.as_deref() == Some(group));
    let message = in_group.into_iter().find_map(|a| {
        let name = a.metadata.name.as_deref().unwrap_or_default();
        let requested_here = requested.iter().any(|r| r.as_str() == name);
        match crate::observe::owning_server(a.as_ref()) {
            Some(owner) if owner == ours => None,
            Some(owner) => Some(format!(
                "{} holds group {group} (APIService {name}); a group has one holder, {why}: remove it there first",
                describe(names, owner)
            )),
            // Requested: adopted, or reported as a conflict by the registration step.
            None if requested_here => None,
            None => Some(format!(
                "APIService {name}, not managed by this operator, serves part of group {group}; a group has one holder, {why}: list its version in this server's spec with registration.adoptExisting (a grant with adoptExisting: true), or delete it"
            )),
        }
    })?;
    let registered = holds_any(names, facts, |a| a.spec.group.as_deref() == Some(group));
    // A later claimant registered while this one had no APIService: it releases the group on
    // its next pass, and this server keeps its workload meanwhile.
    let later_holds = facts.claimants.iter().any(|c| {
        !c.earlier
            && c.group == group
            && facts.api_services.iter().any(|a| {
                a.spec.group.as_deref() == Some(group)
                    && crate::observe::owning_server(a.as_ref()) == Some(c.key.as_str())
            })
    });
    Some(Refusal {
        reason: Reason::Conflict,
        message,
        keep_registered: registered || later_holds,
    })
}

#[cfg(test)]
mod tests;
