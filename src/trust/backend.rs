//! The backend rules: which external hosts a server may name and whether it may skip TLS
//! verification. The aggregator dials the backend with its front-proxy client certificate, so
//! a host is a power the grants hand out.

use super::grants::HostCover;
use super::hosts::restricted;
use super::{Facts, Refusal, not_granted};
use crate::names::ServerNames;

/// An external backend as the spec names it.
#[derive(Debug, Clone, Copy)]
pub struct ExternalTarget<'a> {
    pub host: &'a str,
    pub port: i32,
}

/// Refuses `tls.mode: Insecure` without a grant that allows it (without grants it is allowed).
pub fn check_insecure(names: &ServerNames, insecure: bool, facts: Facts<'_>) -> Option<Refusal> {
    let grants = facts.grants.filter(|_| insecure)?;
    if grants.insecure_granted(&names.namespace, facts.namespace_labels) {
        return None;
    }
    Some(not_granted(format!(
        "tls.mode Insecure is not granted to namespace {}: the aggregator would not verify the backend's certificate; use Managed or Secret, or ask a cluster admin for a grant with allowInsecure: true",
        names.namespace
    )))
}

/// Refuses an external host the grants do not open. A restricted host (loopback, link-local,
/// unspecified, `localhost`, the kubernetes Service) needs a grant that lists it exactly, with
/// or without grants; any other host needs a covering grant when there are grants.
pub fn check_external(
    names: &ServerNames,
    target: ExternalTarget<'_>,
    facts: Facts<'_>,
) -> Option<Refusal> {
    let ExternalTarget { host, port } = target;
    let cover = facts.grants.map_or(HostCover::None, |g| {
        g.external_cover(&names.namespace, facts.namespace_labels, host, port)
    });
    if let Some(why) = restricted(host, facts.apiserver_addresses) {
        if cover == HostCover::Exact {
            return None;
        }
        return Some(not_granted(format!(
            "external.host {host} is {why}: the aggregator would send this group's requests there with its front-proxy client certificate; only a grant that lists {host} exactly under external.hosts (port {port}) opens it"
        )));
    }
    if facts.grants.is_none() || cover != HostCover::None {
        return None;
    }
    Some(not_granted(format!(
        "external backend {host}:{port} is not granted to namespace {}; ask a cluster admin to list the host (or a CIDR or *.<suffix> covering it) and the port under external in a grant for this namespace",
        names.namespace
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::trust::grants::Grants;

    fn names() -> ServerNames {
        ServerNames {
            name: "outside".into(),
            namespace: "team-a".into(),
        }
    }

    fn refused(grants: Option<&str>, host: &str, port: i32) -> Option<String> {
        let grants = grants.map(|g| Grants::parse(g).expect("grants"));
        let labels = BTreeMap::new();
        let apiserver = ["10.96.0.1".to_string()];
        let facts = Facts {
            grants: grants.as_ref(),
            namespace_labels: &labels,
            api_services: &[],
            crd_names: &[],
            apiserver_addresses: &apiserver,
            claimants: &[],
        };
        check_external(&names(), ExternalTarget { host, port }, facts).map(|r| r.message)
    }

    #[test]
    fn restricted_hosts_open_only_to_an_exact_entry() {
        let loopback = refused(None, "127.0.0.1", 443).expect("refused without grants");
        assert!(loopback.contains("loopback"), "{loopback}");
        let cidr =
            "grants: [{namespaces: [team-a], groups: [x.io], external: {hosts: [127.0.0.0/8]}}]";
        assert!(
            refused(Some(cidr), "127.0.0.1", 443).is_some(),
            "a CIDR is not exact"
        );
        let exact = "grants: [{namespaces: [team-a], groups: [x.io], external: {hosts: [127.0.0.1], ports: [8443]}}]";
        assert_eq!(refused(Some(exact), "127.0.0.1", 8443), None);
        assert!(
            refused(Some(exact), "127.0.0.1", 443).is_some(),
            "port not granted"
        );
        assert!(refused(None, "10.96.0.1", 443).is_some_and(|m| m.contains("kubernetes")));
    }

    #[test]
    fn with_grants_other_hosts_need_a_covering_grant() {
        assert_eq!(
            refused(None, "api.example.com", 443),
            None,
            "no grants: open"
        );
        let grants = "grants: [{namespaces: [team-a], groups: [x.io], external: {hosts: ['*.example.com', 10.20.0.0/16], ports: [443]}}]";
        assert_eq!(refused(Some(grants), "api.example.com", 443), None);
        assert_eq!(refused(Some(grants), "10.20.3.4", 443), None);
        assert!(refused(Some(grants), "10.21.3.4", 443).is_some());
        assert!(refused(Some(grants), "api.example.com", 8443).is_some());
        let other = "grants: [{namespaces: [team-b], groups: [x.io], external: {hosts: ['*.example.com']}}]";
        assert!(
            refused(Some(other), "api.example.com", 443).is_some_and(|m| m.contains("not granted"))
        );
    }
}
