//! A tenant's group never outranks the built-in groups: `groupPriorityMinimum` is capped at a
//! CRD's 1000 unless a grant raises it for the group. kubectl resolves a bare resource name by
//! group priority, so a group above `apps` would answer `kubectl get deployments`.

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use kube::api::Api;

use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;
use crate::support::{Harness, condition, wait_for};

/// Waits until APIService `name` exists with `groupPriorityMinimum` `priority`.
async fn registered_at(h: &Harness, name: &str, priority: i32) {
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    wait_for(apis, name, move |a: Option<&APIService>| {
        a.is_some_and(|a| a.spec.group_priority_minimum == priority)
    })
    .await;
}

#[tokio::test]
async fn group_priorities_stay_below_built_in_groups_unless_granted() {
    let grants = GrantsFile::new("priority", "grants: []\n");
    let h = Harness::start_with("priority", grants.settings()).await;
    let ns = &h.ns.name;
    grants.write(&format!(
        "grants:\n  - namespaces: [{ns}]\n    groups: [hijack.{ns}.custom.api]\n  - namespaces: [{ns}]\n    groups: [raised.{ns}.custom.api]\n    maxGroupPriorityMinimum: 5000\n"
    ));
    let hijack = format!("hijack.{ns}.custom.api");
    let raised = format!("raised.{ns}.custom.api");
    h.create(&Server::in_group("hijack", &hijack).priorities(20000, 15))
        .await;
    h.create(&Server::in_group("raised", &raised).priorities(20000, 15))
        .await;

    registered_at(&h, &format!("v1.{hijack}"), 1000).await;
    registered_at(&h, &format!("v1.{raised}"), 5000).await;
    let s = h
        .wait_message(
            "hijack",
            "Registered",
            "registered at groupPriorityMinimum 1000, not 20000",
        )
        .await;
    assert!(
        condition(&s, "Registered")
            .message
            .contains("maxGroupPriorityMinimum"),
        "the message says how to raise it"
    );
    h.wait_message(
        "raised",
        "Registered",
        "registered at groupPriorityMinimum 5000, not 20000",
    )
    .await;

    // Asking no more than the cap is not reported.
    let servers = h.servers();
    let patch =
        serde_json::json!({"spec": {"versions": [{"name": "v1", "groupPriorityMinimum": 900}]}});
    servers
        .patch(
            "hijack",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    registered_at(&h, &format!("v1.{hijack}"), 900).await;
    wait_for(servers, "hijack", |s: Option<&ExtensionServer>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|status| {
            status.observed_generation == Some(2)
                && status.conditions.iter().any(|c| {
                    c.type_ == "Registered"
                        && c.status == "True"
                        && !c.message.contains("groupPriorityMinimum")
                })
        })
    })
    .await;
    h.delete_and_wait("hijack").await;
    h.delete_and_wait("raised").await;
}
