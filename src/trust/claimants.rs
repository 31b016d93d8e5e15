//! The other servers that claim a server's groups, and which of them came first.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Claimant;
use super::grants::{Allowance, Grants};
use crate::crd::ExtensionServer;
use crate::names::ServerNames;

/// Every other server, not being deleted and allowed the group by the grants, that claims a
/// group `server` serves; `earlier` when it was created first (creationTimestamp, then uid).
pub fn of(
    server: &ExtensionServer,
    others: &[Arc<ExtensionServer>],
    grants: Option<&Grants>,
    labels_of: impl Fn(&str) -> BTreeMap<String, String>,
) -> Vec<Claimant> {
    let ours: Vec<&str> = server.spec.served_groups().map(|(g, _)| g).collect();
    let rank = |s: &ExtensionServer| {
        (
            s.metadata.creation_timestamp.clone().map(|t| t.0),
            s.metadata.uid.clone().unwrap_or_default(),
        )
    };
    let our_rank = rank(server);
    let mut claimants = Vec::new();
    for other in others {
        if other.metadata.uid == server.metadata.uid || other.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let other_names = ServerNames::of(other);
        let namespace = &other_names.namespace;
        for (group, _) in other.spec.served_groups() {
            if !ours.contains(&group) {
                continue;
            }
            let granted = grants.is_none_or(|g| {
                g.allowance(namespace, &labels_of(namespace), group) != Allowance::NotGranted
            });
            if granted {
                claimants.push(Claimant {
                    key: other_names.owner_key(),
                    group: group.to_string(),
                    earlier: rank(other) < our_rank,
                });
            }
        }
    }
    claimants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(
        namespace: &str,
        name: &str,
        group: &str,
        created: &str,
        uid: &str,
    ) -> Arc<ExtensionServer> {
        let mut server: ExtensionServer = serde_yaml::from_str(&format!(
            "{{apiVersion: aggregation.dev/v1alpha1, kind: ExtensionServer, metadata: {{name: {name}, namespace: {namespace}, uid: {uid}, creationTimestamp: '{created}'}}, spec: {{group: {group}, versions: [{{name: v1}}], image: i}}}}"
        ))
        .expect("server");
        server.metadata.namespace = Some(namespace.into());
        Arc::new(server)
    }

    #[test]
    fn the_oldest_granted_claimant_comes_first_and_ties_go_by_uid() {
        let me = server("b", "me", "g.example.com", "2026-01-02T00:00:00Z", "m");
        let others = vec![
            me.clone(),
            server("a", "older", "g.example.com", "2026-01-01T00:00:00Z", "z"),
            server("c", "tie", "g.example.com", "2026-01-02T00:00:00Z", "a"),
            server("d", "younger", "g.example.com", "2026-01-03T00:00:00Z", "b"),
            server(
                "e",
                "elsewhere",
                "other.example.com",
                "2025-01-01T00:00:00Z",
                "c",
            ),
        ];
        let found = of(&me, &others, None, |_| BTreeMap::new());
        let earlier: Vec<(&str, bool)> =
            found.iter().map(|c| (c.key.as_str(), c.earlier)).collect();
        assert_eq!(
            earlier,
            [("a/older", true), ("c/tie", true), ("d/younger", false)]
        );
    }

    #[test]
    fn an_ungranted_or_departing_claimant_holds_nothing() {
        let me = server("b", "me", "g.example.com", "2026-01-02T00:00:00Z", "m");
        let mut leaving =
            (*server("c", "leaving", "g.example.com", "2026-01-01T00:00:00Z", "l")).clone();
        leaving.metadata.deletion_timestamp = leaving.metadata.creation_timestamp.clone();
        let others = vec![
            server(
                "a",
                "squatter",
                "g.example.com",
                "2026-01-01T00:00:00Z",
                "s",
            ),
            Arc::new(leaving),
        ];
        let grants =
            Grants::parse("grants: [{namespaces: [b], groups: [g.example.com]}]").expect("grants");
        assert!(of(&me, &others, Some(&grants), |_| BTreeMap::new()).is_empty());
    }
}
