//! The trust boundary against the local control plane: protected groups, grants (reloaded at
//! runtime), adoption, and no takeover of same-named objects.

use std::time::Duration;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::support;
use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;
use crate::support::{Harness, condition, wait_for};

/// Nothing of this server's exists but its status: no APIService, binding or ServiceAccount.
async fn nothing_created(h: &Harness, name: &str, api_service: &str) {
    let client = h.ns.client.clone();
    let apis: Api<APIService> = Api::all(client.clone());
    assert!(
        apis.get_opt(api_service).await.unwrap().is_none(),
        "{api_service}"
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    let crb = format!("aggregation.dev:{}:{name}:auth-delegator", h.ns.name);
    assert!(crbs.get_opt(&crb).await.unwrap().is_none(), "{crb}");
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-system");
    let rb = format!("aggregation.dev:{}:{name}:auth-reader", h.ns.name);
    assert!(rbs.get_opt(&rb).await.unwrap().is_none(), "{rb}");
    let accounts: Api<ServiceAccount> = h.ns.api();
    assert!(
        accounts.get_opt(name).await.unwrap().is_none(),
        "ServiceAccount {name}"
    );
}

/// Deletes the server; the ServiceAccount it used stays as it was, and no binding is left.
async fn deleted_leaving_account(h: &Harness, name: &str, account: &ServiceAccount) {
    let servers = h.servers();
    servers.delete(name, &Default::default()).await.unwrap();
    wait_for(servers, name, |s: Option<&ExtensionServer>| s.is_none()).await;
    let accounts: Api<ServiceAccount> = h.ns.api();
    let account_name = account.metadata.name.as_deref().unwrap();
    let after = accounts.get(account_name).await.unwrap();
    assert_eq!(after.metadata.uid, account.metadata.uid);
    assert!(
        after
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = format!("aggregation.dev:{}:{name}:auth-delegator", h.ns.name);
    assert!(crbs.get_opt(&crb).await.unwrap().is_none());
}

#[tokio::test]
async fn protected_groups_get_nothing_but_status() {
    let h = Harness::start("trust-protected").await;
    h.create(&Server::in_group("builtin", "rbac.authorization.k8s.io").versions(&["v9"]))
        .await;
    let s = h
        .wait_condition("builtin", "Ready", "False", Some("ProtectedGroup"))
        .await;
    assert!(
        condition(&s, "Registered")
            .message
            .contains("reserved for Kubernetes")
    );
    // The CRD's own group, which no suffix rule covers.
    h.create(&Server::in_group("crd", "aggregation.dev").versions(&["v9"]))
        .await;
    let s = h
        .wait_condition("crd", "Ready", "False", Some("ProtectedGroup"))
        .await;
    let message = &condition(&s, "Registered").message;
    assert!(
        message.contains("CustomResourceDefinition") || message.contains("Local"),
        "{message}"
    );
    nothing_created(&h, "builtin", "v9.rbac.authorization.k8s.io").await;
    nothing_created(&h, "crd", "v9.aggregation.dev").await;
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    let builtin = apis.get("v1.rbac.authorization.k8s.io").await.unwrap();
    assert!(
        builtin
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("aggregation.dev/owner")
            .eq(&false)
    );
}

#[tokio::test]
async fn grants_are_enforced_and_reloaded_without_a_restart() {
    // The sample server serves my.custom.api, so this server can become Ready for real.
    let grants = GrantsFile::new(
        "reload",
        "grants: [{namespaces: [someone-else], groups: [my.custom.api]}]\n",
    );
    let _turn = support::sample_group_turn().await;
    let h = Harness::start_with("trust-grants", grants.settings()).await;
    let group = "my.custom.api";
    h.create(&Server::in_group("tenant", group).sample_port(443))
        .await;
    let s = h
        .wait_condition("tenant", "Ready", "False", Some("NotGranted"))
        .await;
    assert!(
        condition(&s, "Registered")
            .message
            .contains(&format!("namespace {} has no grant", h.ns.name))
    );
    nothing_created(&h, "tenant", &format!("v1.{group}")).await;

    // Granted at runtime: Ready, through the aggregator, without a restart.
    let _pod = testenv::runtime::start(&h.ns.cluster, &h.ns.name, "tenant")
        .await
        .unwrap();
    grants.write(&format!(
        "grants: [{{namespaces: [{}], groups: [my.custom.api]}}]\n",
        h.ns.name
    ));
    h.wait_condition("tenant", "Ready", "True", None).await;
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    assert!(
        apis.get_opt(&format!("v1.{group}"))
            .await
            .unwrap()
            .is_some()
    );
    let grants_valid = |ctx: &extension_server_operator::context::Context| {
        ctx.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("extension_server_operator_grants_valid "))
            .map(str::to_string)
    };
    assert_eq!(grants_valid(&h.ctx).as_deref(), Some("1"));

    // An invalid file (a grant for no namespace) leaves the previous grants in force, and the
    // metric says so.
    grants.write("grants: [{groups: [my.custom.api]}]\n");
    support::eventually(Duration::from_secs(30), "grants_valid 0", || {
        let ctx = h.ctx.clone();
        async move { grants_valid(&ctx).as_deref() == Some("0") }
    })
    .await;
    let s = h.servers().get("tenant").await.unwrap();
    assert_eq!(condition(&s, "Ready").status, "True", "{s:?}");

    // Withdrawn: unregistered and unbound, and the status and an Event say so.
    grants.write("grants: []\n");
    h.wait_condition("tenant", "Registered", "False", Some("NotGranted"))
        .await;
    let gone = |a: Option<&APIService>| a.is_none();
    wait_for(apis, &format!("v1.{group}"), gone).await;
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = format!("aggregation.dev:{}:tenant:auth-delegator", h.ns.name);
    wait_for(crbs, &crb, |b: Option<&ClusterRoleBinding>| b.is_none()).await;
    // Nothing runs for a refused claim; the CA stays for when the grant returns.
    let deployments: Api<Deployment> = h.ns.api();
    wait_for(deployments, "tenant", |d: Option<&Deployment>| d.is_none()).await;
    let s = h
        .wait_condition(
            "tenant",
            "DeploymentAvailable",
            "Unknown",
            Some("NotGranted"),
        )
        .await;
    let message = &condition(&s, "DeploymentAvailable").message;
    assert!(message.contains("is removed"), "{message}");
    let secrets: Api<Secret> = h.ns.api();
    assert!(secrets.get_opt("tenant-ca").await.unwrap().is_some());
    let events = h.ns.kubectl(&[
        "get",
        "events",
        "-n",
        &h.ns.name,
        "-o",
        "custom-columns=R:.reason",
    ]);
    assert!(String::from_utf8_lossy(&events.stdout).contains("NotGranted"));
}

#[tokio::test]
async fn adoption_needs_a_grant_that_allows_it() {
    let grants = GrantsFile::new("adopt", "grants: []\n");
    let h = Harness::start_with("trust-adopt", grants.settings()).await;
    grants.write(&format!(
        "grants: [{{namespaces: [{}], groups: ['*.custom.api']}}]\n",
        h.ns.name
    ));
    let group = format!("{}.custom.api", h.ns.name);
    let name = format!("v1.{group}");
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    let foreign: APIService = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": name, "labels": {"aggregation.dev/extension-server-namespace": h.ns.name}},
        "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 1,
                 "service": {"namespace": h.ns.name, "name": "someone-elses"}}
    }))
    .unwrap();
    apis.create(&PostParams::default(), &foreign).await.unwrap();
    let foreign = wait_for(apis.clone(), &name, |a: Option<&APIService>| {
        a.is_some_and(|a| a.available().is_some())
    })
    .await
    .unwrap();
    h.create(&Server::in_group("adopter", &group).adopt_existing())
        .await;
    h.wait_condition("adopter", "Ready", "False", Some("AdoptionNotAllowed"))
        .await;
    let untouched = apis.get(&name).await.unwrap();
    assert_eq!(
        untouched.metadata.resource_version,
        foreign.metadata.resource_version
    );

    grants.write(&format!(
        "grants: [{{namespaces: [{}], groups: ['*.custom.api'], adoptExisting: true}}]\n",
        h.ns.name
    ));
    h.wait_condition("adopter", "Registered", "True", None)
        .await;
    let adopted = apis.get(&name).await.unwrap();
    assert_eq!(
        adopted.metadata.annotations.unwrap()["aggregation.dev/owner"],
        format!("{}/adopter", h.ns.name)
    );
    assert!(adopted.spec.ca_bundle.is_some());
}

#[tokio::test]
async fn a_server_named_default_never_takes_the_default_service_account() {
    let h = Harness::start("trust-default").await;
    let accounts: Api<ServiceAccount> = h.ns.api();
    let before = wait_for(accounts.clone(), "default", |a: Option<&ServiceAccount>| {
        a.is_some()
    })
    .await
    .unwrap();
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("default", &group)).await;
    let s = h
        .wait_condition("default", "Ready", "False", Some("Conflict"))
        .await;
    let message = &condition(&s, "Registered").message;
    assert!(
        message.contains(&format!("ServiceAccount {}/default exists", h.ns.name)),
        "{message}"
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = format!("aggregation.dev:{}:default:auth-delegator", h.ns.name);
    assert!(crbs.get_opt(&crb).await.unwrap().is_none());

    deleted_leaving_account(&h, "default", &before).await;
}

#[tokio::test]
async fn foreign_objects_in_the_way_stay_untouched() {
    let h = Harness::start("trust-foreign").await;
    let group = |n: &str| format!("{n}.{}.custom.api", h.ns.name);
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    let secrets: Api<Secret> = h.ns.api();
    let secret = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta("s-ca"),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    let services: Api<Service> = h.ns.api();
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "v"}, "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let pdbs: Api<PodDisruptionBudget> = h.ns.api();
    let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"x": "y"}}}
    }))
    .unwrap();
    let pdb = pdbs.create(&PostParams::default(), &pdb).await.unwrap();

    h.create(&Server::in_group("s", &group("s"))).await;
    h.create(&Server::in_group("v", &group("v"))).await;
    h.create(&Server::in_group("p", &group("p")).replicas(2))
        .await;
    for (name, blocker) in [
        ("s", format!("Secret {}/s-ca", h.ns.name)),
        ("v", format!("Service {}/v", h.ns.name)),
        ("p", format!("PodDisruptionBudget {}/p", h.ns.name)),
    ] {
        let s = h
            .wait_condition(name, "Ready", "False", Some("Conflict"))
            .await;
        let message = &condition(&s, "Ready").message;
        assert!(message.contains(&blocker), "{name}: {message}");
    }
    let unchanged = |before: &Option<String>, after: Option<String>| assert_eq!(before, &after);
    unchanged(
        &secret.metadata.resource_version,
        secrets.get("s-ca").await.unwrap().metadata.resource_version,
    );
    unchanged(
        &service.metadata.resource_version,
        services.get("v").await.unwrap().metadata.resource_version,
    );
    // The disruption controller writes the PDB's status; nothing of ours may appear on it.
    let live = pdbs.get("p").await.unwrap();
    assert_eq!(live.metadata.uid, pdb.metadata.uid);
    assert!(
        live.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    assert!(
        live.metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .all(|f| f.manager.as_deref() != Some("extension-server-operator")),
        "the operator wrote to the foreign PDB"
    );

    // Scaled to one, "p" wants no PDB: the foreign one is still not the operator's to delete.
    h.servers()
        .patch(
            "p",
            &Default::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    h.wait_condition("p", "Registered", "True", None).await;
    assert!(pdbs.get_opt("p").await.unwrap().is_some());
}

/// Creates ServiceAccount `name` in the test's namespace.
async fn create_account(h: &Harness, name: &str) -> ServiceAccount {
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    h.ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &account)
        .await
        .unwrap()
}

/// Waits until server `named` is Registered, then checks its auth-delegator binding `crb`
/// names `account`.
async fn bound_to(h: &Harness, crbs: &Api<ClusterRoleBinding>, crb: &str, account: &str) {
    h.wait_condition("named", "Registered", "True", None).await;
    let binding = crbs.get(crb).await.unwrap();
    assert_eq!(binding.subjects.unwrap()[0].name, account);
}

#[tokio::test]
async fn a_named_service_account_must_exist_and_is_never_owned() {
    let h = Harness::start("trust-sa").await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("named", &group).extra("{serviceAccountName: mine}"))
        .await;
    let s = h
        .wait_condition("named", "Ready", "False", Some("Conflict"))
        .await;
    let message = &condition(&s, "Ready").message;
    assert!(
        message.contains(&format!(
            "ServiceAccount {}/mine (spec.serviceAccountName) does not exist",
            h.ns.name
        )),
        "{message}"
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = format!("aggregation.dev:{}:named:auth-delegator", h.ns.name);
    assert!(crbs.get_opt(&crb).await.unwrap().is_none());

    let mine = create_account(&h, "mine").await;
    bound_to(&h, &crbs, &crb, "mine").await;

    deleted_leaving_account(&h, "named", &mine).await;
}

#[tokio::test]
async fn under_grants_a_named_service_account_must_be_granted() {
    let grants = GrantsFile::new("trust-sa-granted", "grants: []\n");
    let h = Harness::start_with("trust-sa-granted", grants.settings()).await;
    let group = format!("{}.custom.api", h.ns.name);
    let grant = |accounts: &str| {
        format!(
            "grants: [{{namespaces: [{}], groups: ['{group}'], serviceAccountNames: [{accounts}]}}]\n",
            h.ns.name
        )
    };
    grants.write(&grant(""));
    let mine = create_account(&h, "mine").await;
    h.create(&Server::in_group("named", &group).extra("{serviceAccountName: mine}"))
        .await;
    let s = h
        .wait_condition("named", "Ready", "False", Some("NotGranted"))
        .await;
    let message = &condition(&s, "Ready").message;
    assert!(
        message.contains("ServiceAccount mine (spec.serviceAccountName) is not granted"),
        "{message}"
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = format!("aggregation.dev:{}:named:auth-delegator", h.ns.name);
    assert!(crbs.get_opt(&crb).await.unwrap().is_none(), "no binding");

    grants.write(&grant("mine"));
    bound_to(&h, &crbs, &crb, "mine").await;
    deleted_leaving_account(&h, "named", &mine).await;
}

/// An adapter's two reserved groups in one server, scaled to zero, for the grants tests.
fn metrics_adapter(name: &str) -> Server {
    Server::in_group(name, "custom.metrics.k8s.io")
        .versions(&["v1beta2", "v1beta1"])
        .extra(
            "{additionalGroups: [{group: external.metrics.k8s.io, versions: [{name: v1beta1}]}]}",
        )
        .replicas(0)
}

#[tokio::test]
async fn reserved_metrics_groups_open_only_to_an_exact_grant() {
    let grants = GrantsFile::new("reserved", "grants: []\n");
    let h = Harness::start_with("trust-reserved", grants.settings()).await;
    let ns = h.ns.name.clone();
    grants.write(&format!(
        "grants: [{{namespaces: [{ns}], groups: ['*.k8s.io', '*.metrics.k8s.io', '*.kubernetes.io']}}]\n"
    ));
    h.create(&metrics_adapter("adapter")).await;
    let s = h
        .wait_condition("adapter", "Ready", "False", Some("ProtectedGroup"))
        .await;
    let message = &condition(&s, "Registered").message;
    assert!(message.contains("reserved for Kubernetes"), "{message}");
    nothing_created(&h, "adapter", "v1beta2.custom.metrics.k8s.io").await;

    // Named exactly, the groups open. Scaled to zero, so nothing is registered and discovery
    // never meets an unavailable metrics API: the claim stops at the scale, not the grant.
    grants.write(&format!(
        "grants: [{{namespaces: [{ns}], groups: [custom.metrics.k8s.io, external.metrics.k8s.io, metrics.k8s.io, rbac.authorization.k8s.io]}}]\n"
    ));
    h.wait_condition("adapter", "Registered", "False", Some("ScaledToZero"))
        .await;
    h.create(
        &Server::in_group("metrics", "metrics.k8s.io")
            .versions(&["v1beta1"])
            .replicas(0),
    )
    .await;
    h.wait_condition("metrics", "Registered", "False", Some("ScaledToZero"))
        .await;
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let crb = format!("aggregation.dev:{ns}:adapter:auth-delegator");
    assert!(crbs.get_opt(&crb).await.unwrap().is_some(), "{crb}");

    // A group kube-apiserver serves stays refused, named exactly or not.
    h.create(&Server::in_group("builtin", "rbac.authorization.k8s.io").versions(&["v9"]))
        .await;
    let s = h
        .wait_condition("builtin", "Ready", "False", Some("ProtectedGroup"))
        .await;
    let message = &condition(&s, "Registered").message;
    assert!(message.contains("Local"), "{message}");
    nothing_created(&h, "builtin", "v9.rbac.authorization.k8s.io").await;
}

#[tokio::test]
async fn a_cluster_role_is_bound_only_while_granted() {
    let grants = GrantsFile::new("roles", "grants: []\n");
    let h = Harness::start_with("trust-roles", grants.settings()).await;
    let ns = h.ns.name.clone();
    let group = format!("{ns}.custom.api");
    grants.write(&format!(
        "grants: [{{namespaces: [{ns}], groups: [{group}], clusterRoles: [view]}}]\n"
    ));
    h.create(&Server::in_group("reader", &group).extra("{clusterRoles: [view]}"))
        .await;
    let binding = format!("aggregation.dev:{ns}:reader:role:view");
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    let bound = wait_for(crbs.clone(), &binding, |b: Option<&ClusterRoleBinding>| {
        b.is_some()
    })
    .await
    .unwrap();
    assert_eq!(bound.role_ref.name, "view");
    let subject = &bound.subjects.unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("reader", Some(ns.as_str()))
    );

    // Withdrawn: refused, and the binding goes.
    grants.write(&format!(
        "grants: [{{namespaces: [{ns}], groups: [{group}]}}]\n"
    ));
    let s = h
        .wait_condition("reader", "Ready", "False", Some("NotGranted"))
        .await;
    assert!(
        condition(&s, "Registered")
            .message
            .contains("ClusterRole view"),
        "{s:?}"
    );
    wait_for(crbs, &binding, |b: Option<&ClusterRoleBinding>| b.is_none()).await;
}

/// A sample server on port 443 serving `groups` (comma-separated) at `v1beta1`.
fn serving(name: &str, group: &str, groups: &str) -> Server {
    Server::in_group(name, group)
        .versions(&["v1beta1"])
        .priorities(100, 100)
        .port(443)
        .args(&[
            "--secure-port=443".to_string(),
            "--tls-cert-file=/var/run/extension-server/tls/tls.crt".to_string(),
            "--tls-private-key-file=/var/run/extension-server/tls/tls.key".to_string(),
            format!("--group={groups}"),
            "--versions=v1beta1".to_string(),
        ])
}

#[tokio::test]
async fn a_hand_made_metrics_apiservice_is_adopted_without_an_unavailable_moment() {
    const METRICS: &str = "v1beta1.metrics.k8s.io";
    let grants = GrantsFile::new("adopt-metrics", "grants: []\n");
    let h = Harness::start_with("trust-adopt-metrics", grants.settings()).await;
    let ns = h.ns.name.clone();
    let old_group = format!("old.{ns}.custom.api");
    grants.write(&format!(
        "grants: [{{namespaces: [{ns}], groups: [{old_group}, metrics.k8s.io], adoptExisting: true}}]\n"
    ));

    // The hand-made install: a server whose pods also serve metrics.k8s.io, and an APIService
    // for it that nobody manages.
    h.create(&serving(
        "old",
        &old_group,
        &format!("{old_group},metrics.k8s.io"),
    ))
    .await;
    let _old = testenv::runtime::start(&h.ns.cluster, &ns, "old")
        .await
        .unwrap();
    h.wait_condition("old", "Ready", "True", None).await;
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    let old_api = apis.get(&format!("v1beta1.{old_group}")).await.unwrap();
    let hand_made: APIService = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": METRICS, "labels": {"aggregation.dev/extension-server-namespace": ns}},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                 "versionPriority": 100, "caBundle": old_api.spec.ca_bundle,
                 "service": {"namespace": ns, "name": "old", "port": 443}}
    }))
    .unwrap();
    apis.create(&PostParams::default(), &hand_made)
        .await
        .unwrap();
    let available = |a: Option<&APIService>| {
        a.and_then(|a| a.available())
            .is_some_and(|c| c.status == "True")
    };
    wait_for(apis.clone(), METRICS, available).await;

    // Sample availability and a request through the aggregator every 50 ms while the new
    // server takes over, and for 2 s (40 samples) after the APIService names it.
    let sampler = {
        let (apis, client) = (apis.clone(), h.ns.client.clone());
        tokio::spawn(async move {
            let (mut samples, mut after, mut bad) = (0u32, 0u32, Vec::new());
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
            while after < 40 {
                tick.tick().await;
                samples += 1;
                let live = apis.get(METRICS).await;
                if !live.as_ref().is_ok_and(|a| available(Some(a))) {
                    bad.push(format!(
                        "not Available: {:?}",
                        live.as_ref().map(|a| &a.status)
                    ));
                }
                let serves_new =
                    live.is_ok_and(|a| a.spec.service.is_some_and(|s| s.name == "new"));
                after += u32::from(serves_new);
                let mut request = http::Request::new(Vec::new());
                *request.uri_mut() = "/apis/metrics.k8s.io/v1beta1".parse().unwrap();
                if let Err(error) = client.request_text(request).await {
                    bad.push(format!("request failed: {error}"));
                }
            }
            (samples, bad)
        })
    };
    h.create(&serving("new", "metrics.k8s.io", "metrics.k8s.io").adopt_existing())
        .await;
    let _new = testenv::runtime::start(&h.ns.cluster, &ns, "new")
        .await
        .unwrap();
    h.wait_condition("new", "Ready", "True", None).await;
    let (samples, bad) = tokio::time::timeout(std::time::Duration::from_secs(90), sampler)
        .await
        .expect("the sampler saw the takeover")
        .unwrap();
    let adopted = apis.get(METRICS).await.unwrap();
    assert_eq!(adopted.spec.service.unwrap().name, "new");
    assert_eq!(
        adopted.metadata.annotations.unwrap()["aggregation.dev/owner"],
        format!("{ns}/new")
    );
    assert!(samples > 40, "only {samples} samples");
    assert!(
        bad.is_empty(),
        "{} of {samples} samples bad: {bad:?}",
        bad.len()
    );
}
