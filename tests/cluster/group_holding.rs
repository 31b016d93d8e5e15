//! One holder per group, against the local control plane: a second namespace cannot add a
//! version to a group another server holds, and a CRD installed under a registered group gets
//! the group unless a grant keeps the registration (on a dedicated instance: a new CRD makes
//! every operator in the cluster reconcile all its servers).

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use testenv::TestNamespace;

use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;
use crate::support::{Harness, condition, wait_for};

fn owner(api_service: &APIService) -> Option<String> {
    api_service
        .metadata
        .annotations
        .as_ref()?
        .get("aggregation.dev/owner")
        .cloned()
}

#[tokio::test]
async fn a_second_namespace_cannot_add_a_version_to_a_held_group() {
    let holder = Harness::start("holding-first").await;
    let group = format!("{}.held.example.com", holder.ns.name);
    holder
        .create(&Server::new("holder").group(&group).versions(&["v1"]))
        .await;
    holder
        .wait_condition("holder", "Registered", "True", None)
        .await;

    let claimant = Harness::start("holding-second").await;
    claimant
        .create(
            &Server::new("claimant")
                .group(&group)
                .versions(&["v2"])
                .priorities(1000, 1000),
        )
        .await;
    let s = claimant
        .wait_condition("claimant", "Registered", "False", Some("Conflict"))
        .await;
    let message = &condition(&s, "Registered").message;
    let holder_key = format!("{}/holder", holder.ns.name);
    assert!(
        message.contains("an ExtensionServer in another namespace holds group")
            && !message.contains(&holder_key),
        "another namespace's server is not named: {message}"
    );
    let apis: Api<APIService> = Api::all(holder.ns.client.clone());
    assert!(
        apis.get_opt(&format!("v2.{group}"))
            .await
            .unwrap()
            .is_none(),
        "the claimant got no APIService"
    );
    let held = apis.get(&format!("v1.{group}")).await.unwrap();
    assert_eq!(owner(&held), Some(holder_key));
}

fn crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("things.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": "Thing", "plural": "things", "singular": "thing"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crd_under_a_registered_group_gets_it_unless_a_grant_keeps_the_registration() {
    let grants = GrantsFile::new("shadow", "grants: []\n");
    let (_instance, h) =
        Harness::on_instance("shadowing", "holding-shadow", grants.settings()).await;
    let (given_up, kept) = (
        format!("{}.given-up.example.com", h.ns.name),
        format!("{}.kept.example.com", h.ns.name),
    );
    grants.write(&format!(
        "grants:\n- {{namespaces: [{ns}], groups: [{given_up}]}}\n- {{namespaces: [{ns}], groups: [{kept}], keepWhenShadowed: true}}\n",
        ns = h.ns.name
    ));
    h.create(&Server::new("given-up").group(&given_up)).await;
    h.create(&Server::new("kept").group(&kept)).await;
    h.wait_condition("given-up", "Registered", "True", None)
        .await;
    h.wait_condition("kept", "Registered", "True", None).await;

    let crds: Api<CustomResourceDefinition> = Api::all(h.ns.client.clone());
    for group in [&given_up, &kept] {
        crds.create(&PostParams::default(), &crd(group))
            .await
            .unwrap();
    }

    // Unregistered: the aggregator's own registration for the CRD takes the name over.
    let s = h
        .wait_condition("given-up", "Registered", "False", Some("ProtectedGroup"))
        .await;
    // Right after the removal the message says so; once the aggregator has registered the
    // CRD's group (a Local APIService), it names that instead.
    let message = &condition(&s, "Registered").message;
    assert!(
        message.contains("were removed") || message.contains("is Local"),
        "{message}"
    );
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    let not_ours = |a: Option<&APIService>| a.is_none_or(|a| owner(a).is_none());
    wait_for(apis.clone(), &format!("v1.{given_up}"), not_ours).await;

    // Kept by the grant: still ours, and the status says who decides.
    let s = h
        .wait_condition("kept", "Registered", "False", Some("ProtectedGroup"))
        .await;
    let message = &condition(&s, "Registered").message;
    assert!(message.contains("keepWhenShadowed"), "{message}");
    let still = apis.get(&format!("v1.{kept}")).await.unwrap();
    assert_eq!(owner(&still), Some(format!("{}/kept", h.ns.name)));
}

/// Returns once the API server stamps new objects with a time after `then`.
async fn second_after(ns: &TestNamespace, then: Time) {
    let clocks: Api<ConfigMap> = ns.api();
    crate::support::eventually(Duration::from_secs(5), "a later second", || {
        let clocks = clocks.clone();
        let then = then.clone();
        async move {
            let mut clock = ConfigMap::default();
            clock.metadata.generate_name = Some("clock-".into());
            let made = clocks.create(&PostParams::default(), &clock).await.unwrap();
            let name = made.metadata.name.clone().unwrap();
            clocks.delete(&name, &Default::default()).await.unwrap();
            made.metadata
                .creation_timestamp
                .is_some_and(|t| t.0 > then.0)
        }
    })
    .await;
}

/// The Registered condition of `s` has `status` and `reason`.
fn registered(s: Option<&ExtensionServer>, status: &str, reason: &str) -> bool {
    s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
        st.conditions
            .iter()
            .any(|c| c.type_ == "Registered" && c.status == status && c.reason == reason)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_claimant_holds_its_group_while_it_has_no_api_service() {
    let grants = GrantsFile::new("first-claimant", "grants: []\n");
    let (_instance, h) =
        Harness::watching_all("first-claimant", "holding-first", grants.settings()).await;
    let later_ns = TestNamespace::create_on(h.ns.cluster.clone(), "holding-later")
        .await
        .unwrap();
    grants.write(&format!(
        "grants:\n- {{namespaces: [{}, {}], groups: [\"*.first.example.com\"], allowRegistrationAlways: true}}\n",
        h.ns.name, later_ns.name
    ));
    let group = format!("{}.first.example.com", h.ns.name);
    let always = "{registration: {policy: Always}}";
    let first = h
        .create(&Server::new("first").group(&group).replicas(0).extra(always))
        .await;
    h.wait_condition("first", "Registered", "False", Some("ScaledToZero"))
        .await;
    // creationTimestamp counts whole seconds, and a tie goes by uid.
    let created = first.metadata.creation_timestamp.clone().unwrap();
    second_after(&later_ns, created).await;

    let later: Api<ExtensionServer> = later_ns.api();
    let claimant = Server::new("later")
        .group(&group)
        .namespace(&later_ns.name)
        .extra(always)
        .build();
    later
        .create(&PostParams::default(), &claimant)
        .await
        .unwrap();
    let s = wait_for(later.clone(), "later", |s: Option<&ExtensionServer>| {
        registered(s, "False", "Conflict")
    })
    .await
    .unwrap();
    let message = &condition(&s, "Registered").message;
    assert!(message.contains("claimed group"), "{message}");
    assert!(
        !message.contains(&format!("{}/first", h.ns.name)),
        "another namespace's server is not named: {message}"
    );
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    let name = format!("v1.{group}");
    assert!(apis.get_opt(&name).await.unwrap().is_none());
    let deployments: Api<Deployment> = h.ns.api();
    assert!(
        deployments.get_opt("first").await.unwrap().is_some(),
        "the holder keeps its workload"
    );

    // Scaled up, the holder registers its group.
    let patch = serde_json::json!({"spec": {"replicas": 1}});
    h.servers()
        .patch("first", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let holder_key = format!("{}/first", h.ns.name);
    wait_for(apis.clone(), &name, move |a: Option<&APIService>| {
        a.and_then(owner).as_deref() == Some(holder_key.as_str())
    })
    .await;
    later.delete("later", &Default::default()).await.unwrap();
    wait_for(later, "later", |s: Option<&ExtensionServer>| s.is_none()).await;
    h.delete_and_wait("first").await;
}
