//! The admin's grants: which namespaces may claim which API groups, and whether they may adopt
//! an existing APIService. Read from `--grants FILE`:
//!
//! ```yaml
//! grants:
//!   - namespaces: [team-a]                 # or namespaceSelector: {matchLabels: {...}}
//!     groups: ["*.team-a.example.com", "metrics.team-a.io"]
//!     adoptExisting: false
//!     keepWhenShadowed: false              # keep registrations a CRD later shadows
//!     serviceAccountNames: []              # existing accounts servers may run as
//!     allowRegistrationAlways: false       # registration.policy: Always
//!     external:                            # spec.external backends
//!       hosts: [api.example.com, "*.corp.example.com", 10.20.0.0/16]
//!       ports: [443]                       # empty: any port
//!     allowInsecure: false                 # tls.mode: Insecure
//!     maxGroupPriorityMinimum: 1000        # raises the cap on groupPriorityMinimum
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole grants file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// One grant: namespaces (by name or by labels), group patterns, and adoption.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_selector: Option<NamespaceSelector>,
    pub groups: Vec<String>,
    #[serde(default)]
    pub adopt_existing: bool,
    /// ClusterRoles the namespaces' servers may bind to their ServiceAccount
    /// (`spec.clusterRoles`).
    #[serde(default)]
    pub cluster_roles: Vec<String>,
    /// Keeps the namespaces' registrations when a CRD or built-in API later serves the group
    /// (otherwise they are removed so that the API gets the group's traffic).
    #[serde(default)]
    pub keep_when_shadowed: bool,
    /// Existing ServiceAccounts the namespaces' servers may run as (`spec.serviceAccountName`);
    /// each is bound to `system:auth-delegator`.
    #[serde(default)]
    pub service_account_names: Vec<String>,
    /// Lets the namespaces' servers use `registration.policy: Always` (register before any
    /// replica is ready, so an APIService may be unavailable from the start).
    #[serde(default)]
    pub allow_registration_always: bool,
    /// The hosts and ports the namespaces' external servers (`spec.external`) may name.
    #[serde(default)]
    pub external: Option<ExternalGrant>,
    /// Lets the namespaces' servers use `tls.mode: Insecure` (the aggregator then skips TLS
    /// verification of the backend).
    #[serde(default)]
    pub allow_insecure: bool,
    /// The highest `groupPriorityMinimum` the namespaces' servers may give the grant's groups;
    /// without it, [`PRIORITY_CAP`].
    #[serde(default)]
    pub max_group_priority_minimum: Option<i32>,
}

/// The highest `groupPriorityMinimum` a server gets without a grant raising it: the priority
/// every CRD group has, so a tenant's group never outranks a built-in one.
pub const PRIORITY_CAP: i32 = 1000;

/// External backends a grant opens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalGrant {
    /// DNS names, `*.<suffix>`, IPv4 addresses or IPv4 CIDRs. A restricted host (loopback,
    /// link-local, `localhost`, the kubernetes Service) is opened only by its exact entry.
    pub hosts: Vec<String>,
    /// Ports; empty allows any port.
    #[serde(default)]
    pub ports: Vec<i32>,
}

/// How a grant covers an external host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCover {
    /// No grant for the namespace covers the host (and port).
    None,
    /// A name pattern or CIDR covers it.
    Pattern,
    /// A grant lists the host itself.
    Exact,
}

/// Namespaces by label (`matchLabels` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// What the grants allow one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// No grant covers this namespace and group.
    NotGranted,
    /// Granted; `adopt` says whether an existing unmanaged APIService may be taken over.
    Granted { adopt: bool },
}

impl Grants {
    /// Parses and checks a grants file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let grants: Grants = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        for (i, grant) in grants.grants.iter().enumerate() {
            if grant.namespaces.is_empty() && grant.namespace_selector.is_none() {
                return Err(format!(
                    "grants[{i}]: set namespaces or namespaceSelector (an empty selector matches every namespace)"
                ));
            }
            let hosts = grant.external.iter().flat_map(|e| &e.hosts);
            if let Some(bad) = hosts
                .into_iter()
                .find(|h| !super::hosts::valid_host_pattern(h))
            {
                return Err(format!(
                    "grants[{i}]: external host {bad:?} must be a DNS name, *.<suffix>, an IPv4 address or an IPv4 CIDR"
                ));
            }
            if let Some(bad) = grant
                .max_group_priority_minimum
                .filter(|p| !(1..=20000).contains(p))
            {
                return Err(format!(
                    "grants[{i}]: maxGroupPriorityMinimum {bad} must be 1-20000"
                ));
            }
            let ports = grant.external.iter().flat_map(|e| &e.ports);
            if let Some(bad) = ports.into_iter().find(|p| !(1..=65535).contains(*p)) {
                return Err(format!("grants[{i}]: external port {bad} must be 1-65535"));
            }
            if let Some(bad) = grant
                .groups
                .iter()
                .find(|g| !super::hosts::valid_name_pattern(g))
            {
                return Err(format!(
                    "grants[{i}]: group pattern {bad:?} must be a group name or *.<suffix>"
                ));
            }
        }
        Ok(grants)
    }

    /// What the grants allow `namespace` (with `labels`) for `group`.
    pub fn allowance(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        group: &str,
    ) -> Allowance {
        let matching = self
            .covering(namespace, labels)
            .filter(|g| g.covers_group(group));
        let mut allowance = Allowance::NotGranted;
        for grant in matching {
            allowance = Allowance::Granted {
                adopt: grant.adopt_existing || allowance == Allowance::Granted { adopt: true },
            };
        }
        allowance
    }

    /// The highest `groupPriorityMinimum` `namespace` may give `group`: [`PRIORITY_CAP`], or
    /// more where a grant covering the group raises it.
    pub fn priority_cap(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        group: &str,
    ) -> i32 {
        self.covering(namespace, labels)
            .filter(|g| g.covers_group(group))
            .filter_map(|g| g.max_group_priority_minimum)
            .fold(PRIORITY_CAP, i32::max)
    }

    /// True when some grant for `namespace` lists ClusterRole `role`.
    pub fn role_granted(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        role: &str,
    ) -> bool {
        self.covering(namespace, labels)
            .any(|g| g.cluster_roles.iter().any(|r| r == role))
    }

    /// True when some grant for `namespace` lists ServiceAccount `account`.
    pub fn account_granted(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        account: &str,
    ) -> bool {
        self.covering(namespace, labels)
            .any(|g| g.service_account_names.iter().any(|a| a == account))
    }

    /// True when some grant for `namespace` allows `registration.policy: Always`.
    pub fn registration_always_granted(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        self.covering(namespace, labels)
            .any(|g| g.allow_registration_always)
    }

    /// How the grants for `namespace` cover external `host:port`.
    pub fn external_cover(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        host: &str,
        port: i32,
    ) -> HostCover {
        let grants = self
            .covering(namespace, labels)
            .filter_map(|g| g.external.as_ref());
        let port_ok = |e: &ExternalGrant| e.ports.is_empty() || e.ports.contains(&port);
        let mut cover = HostCover::None;
        for external in grants.filter(|e| port_ok(e)) {
            if external.hosts.iter().any(|h| h == host) {
                return HostCover::Exact;
            }
            if external
                .hosts
                .iter()
                .any(|h| super::hosts::host_matches(h, host))
            {
                cover = HostCover::Pattern;
            }
        }
        cover
    }

    /// True when some grant for `namespace` allows `tls.mode: Insecure`.
    pub fn insecure_granted(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.covering(namespace, labels).any(|g| g.allow_insecure)
    }

    /// True when a grant for `namespace` that covers `group` sets `keepWhenShadowed`.
    pub fn keeps_when_shadowed(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        group: &str,
    ) -> bool {
        self.covering(namespace, labels)
            .any(|g| g.keep_when_shadowed && g.covers_group(group))
    }

    /// The grants for `namespace` (with `labels`).
    fn covering<'a>(
        &'a self,
        namespace: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Grant> {
        self.grants
            .iter()
            .filter(move |g| g.covers_namespace(namespace, labels))
    }
}

impl Grant {
    fn covers_group(&self, group: &str) -> bool {
        self.groups.iter().any(|p| group_matches(p, group))
    }

    fn covers_namespace(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// True when `pattern` (a group or `*.<suffix>`) covers `group`. No wildcard covers a reserved
/// group (`*.k8s.io`, `*.kubernetes.io` and their subdomains): only its exact name does.
pub fn group_matches(pattern: &str, group: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            !super::protected::is_reserved(group)
                && group
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        }
        None => pattern == group,
    }
}

/// Reads and parses the grants file.
pub fn load(path: &std::path::Path) -> Result<Grants, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Grants::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FILE: &str = r#"
grants:
  - namespaces: [team-a]
    groups: ["*.team-a.example.com", "metrics.team-a.io"]
  - namespaceSelector: {matchLabels: {tier: platform}}
    groups: ["*.platform.io"]
    adoptExisting: true
"#;

    #[test]
    fn a_claim_needs_a_grant_for_its_namespace_and_group() {
        let grants = Grants::parse(FILE).expect("grants");
        let none = labels(&[]);
        assert_eq!(
            grants.allowance("team-a", &none, "x.team-a.example.com"),
            Allowance::Granted { adopt: false }
        );
        assert_eq!(
            grants.allowance("team-a", &none, "metrics.team-a.io"),
            Allowance::Granted { adopt: false }
        );
        assert_eq!(
            grants.allowance("team-b", &none, "x.team-a.example.com"),
            Allowance::NotGranted
        );
        assert_eq!(
            grants.allowance("team-a", &none, "team-a.example.com"),
            Allowance::NotGranted,
            "*.suffix covers subdomains only"
        );
        assert_eq!(
            grants.allowance("team-a", &none, "evilteam-a.example.com"),
            Allowance::NotGranted
        );
        assert_eq!(
            grants.allowance("ops", &labels(&[("tier", "platform")]), "m.platform.io"),
            Allowance::Granted { adopt: true }
        );
        assert_eq!(
            grants.allowance("ops", &labels(&[("tier", "dev")]), "m.platform.io"),
            Allowance::NotGranted
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let unknown = Grants::parse("grants: [{namespaces: [a], groups: [x.io], adopt: true}]");
        assert!(unknown.is_err_and(|e| e.contains("adopt")));
        let no_namespaces = Grants::parse("grants: [{groups: [x.io]}]");
        assert!(no_namespaces.is_err_and(|e| e.contains("namespaces or namespaceSelector")));
        let bad_pattern = Grants::parse("grants: [{namespaces: [a], groups: ['*']}]");
        assert!(bad_pattern.is_err_and(|e| e.contains("must be a group name")));
        assert_eq!(Grants::parse("grants: []"), Ok(Grants::default()));
        let bad_cap = Grants::parse(
            "grants: [{namespaces: [a], groups: [x.io], maxGroupPriorityMinimum: 20001}]",
        );
        assert!(bad_cap.is_err_and(|e| e.contains("must be 1-20000")));
    }

    #[test]
    fn priorities_stay_at_a_crds_unless_a_grant_for_the_group_raises_them() {
        let grants = Grants::parse(
            r#"
grants:
  - namespaces: [monitoring]
    groups: [metrics.example.com]
    maxGroupPriorityMinimum: 5000
  - namespaces: [monitoring]
    groups: ["*.example.org"]
"#,
        )
        .expect("grants");
        let none = labels(&[]);
        let cap = |ns: &str, group: &str| grants.priority_cap(ns, &none, group);
        assert_eq!(cap("monitoring", "metrics.example.com"), 5000);
        assert_eq!(cap("monitoring", "a.example.org"), PRIORITY_CAP);
        assert_eq!(cap("other", "metrics.example.com"), PRIORITY_CAP);
    }
}
