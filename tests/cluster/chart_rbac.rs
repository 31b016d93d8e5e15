//! The chart's RBAC is exactly what the operator uses.
//!
//! 1. The operator binary, with a kubeconfig that impersonates the chart's ServiceAccount and
//!    with `--leader-elect`, brings the basic example to Ready and deletes it: no 403 in its
//!    logs, no failed reconcile.
//! 2. In-process under the same identity, the operator takes the example through its whole
//!    life (Ready, certificate renewal, CA rotation, scaling down, deletion) plus leader
//!    election. Every request is recorded, and every ClusterRole and Role rule is shown next
//!    to a request that needed it; there is no `*` anywhere.

use std::sync::Arc;
use std::time::Duration;

use extension_server_operator::context::{Context, Settings};
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::http::reviews::{Access, Reviews};
use extension_server_operator::leader::{LeaderElector, LeaseSettings};
use extension_server_operator::metrics::Metrics;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;
use testenv::{TestNamespace, runtime};

use crate::support;
use crate::support::fixture::Server;
use crate::support::requests::{Seen, recording_client};

/// The chart's RBAC objects, rendered for a release named after the namespace.
fn render_rbac(ns: &TestNamespace) -> String {
    support::chart::template(
        &ns.cluster.tools.helm,
        &ns.name,
        &[
            "--namespace",
            &ns.name,
            "--set",
            "leaderElection.enabled=true",
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/clusterrole.yaml",
            "--show-only",
            "templates/clusterrolebinding.yaml",
            "--show-only",
            "templates/leader-election-role.yaml",
            "--show-only",
            "templates/authentication-reader-binding.yaml",
            "--show-only",
            "templates/kube-system-role.yaml",
            "--show-only",
            "templates/kubernetes-service-role.yaml",
        ],
    )
}

#[derive(Deserialize)]
struct Rendered {
    kind: String,
    #[serde(default)]
    rules: Vec<PolicyRule>,
}

/// Every rule of the rendered ClusterRole and Role, with the kind it came from.
fn rules(rendered: &str) -> Vec<(String, PolicyRule)> {
    serde_yaml::Deserializer::from_str(rendered)
        .filter_map(|doc| Rendered::deserialize(doc).ok())
        .filter(|r| r.kind == "ClusterRole" || r.kind == "Role")
        .flat_map(|r| r.rules.into_iter().map(move |rule| (r.kind.clone(), rule)))
        .collect()
}

async fn wait_seen(
    seen: &mut tokio::sync::watch::Receiver<Seen>,
    group: &str,
    resource: &str,
    verb: &str,
) {
    let wanted = (group.to_string(), resource.to_string(), verb.to_string());
    tokio::time::timeout(
        Duration::from_secs(90),
        seen.wait_for(|s| s.contains_key(&wanted)),
    )
    .await
    .unwrap_or_else(|_| panic!("the operator never used {wanted:?}"))
    .unwrap();
}

async fn delete_and_wait(servers: &Api<ExtensionServer>, name: &str) {
    let uid = servers.get(name).await.unwrap().metadata.uid.unwrap();
    servers.delete(name, &Default::default()).await.unwrap();
    support::wait_for(
        servers.clone(),
        name,
        kube::runtime::wait::conditions::is_deleted(&uid),
    )
    .await;
}

/// A kubeconfig for the test cluster that impersonates the chart's ServiceAccount.
fn impersonating_kubeconfig(ns: &TestNamespace) -> std::path::PathBuf {
    let mut kubeconfig = kube::config::Kubeconfig::read_from(&ns.cluster.kubeconfig).unwrap();
    for named in &mut kubeconfig.auth_infos {
        let auth = named.auth_info.get_or_insert_with(Default::default);
        auth.impersonate = Some(format!("system:serviceaccount:{}:{}", ns.name, ns.name));
        auth.impersonate_groups = Some(vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", ns.name),
            "system:authenticated".into(),
        ]);
    }
    let dir = testenv::paths::workspace_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-chart-sa.kubeconfig", ns.name));
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
    path
}

/// Phase 1: the real binary as the chart's ServiceAccount.
async fn binary_reaches_ready_without_a_403(ns: &TestNamespace, kubeconfig: &std::path::Path) {
    let operator = support::operator::start_with_kubeconfig(
        crate::OPERATOR,
        ns,
        "chart-sa",
        kubeconfig,
        &[
            "--leader-elect",
            &format!("--leader-elect-namespace={}", ns.name),
            // The chart names the Lease after the release; its Role may update only that one.
            &format!("--leader-elect-lease-name={}", ns.name),
        ],
    );
    operator.wait_listening().await.unwrap();
    let server = Server::in_group("basic", "my.custom.api")
        .secure_port(443)
        .namespace(&ns.name)
        .replicas(1)
        .build();
    let servers: Api<ExtensionServer> = ns.api();
    servers.create(&Default::default(), &server).await.unwrap();
    let pod = runtime::start(&ns.cluster, &ns.name, "basic")
        .await
        .unwrap();
    support::wait_for(servers.clone(), "basic", support::is_true("Ready")).await;
    delete_and_wait(&servers, "basic").await;
    drop(pod);
    let (_, metrics) = support::operator::http_get(operator.port, "/metrics")
        .await
        .unwrap();
    assert!(
        !metrics.contains("extension_server_operator_reconcile_errors_total{"),
        "a reconcile failed:\n{metrics}"
    );
    operator.signal("-TERM").unwrap();
    let mut operator = operator;
    let exited = tokio::time::timeout(Duration::from_secs(30), operator.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success(), "exit status {exited}");
    let logs = operator.logs();
    assert!(logs.contains("became leader"), "{logs}");
    for denied in ["403", "forbidden", "Forbidden"] {
        assert!(
            !logs.contains(denied),
            "{denied} in the operator's log:\n{logs}"
        );
    }
}

/// Phase 2's ExtensionServer: a new name, so garbage collection of phase 1's children cannot
/// turn its creations into updates.
const LIFECYCLE: &str = "lifecycle";

#[tokio::test]
async fn every_chart_rule_is_needed_and_enough() {
    // Both servers below serve the sample group.
    let _turn = support::sample_group_turn().await;
    let ns = TestNamespace::create("chart-rbac").await.unwrap();
    support::install_crd(&ns.client).await;
    let rendered = render_rbac(&ns);
    let applied = support::chart::kubectl_stdin(&ns, &["apply", "-f", "-"], rendered.as_bytes());
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let kubeconfig = impersonating_kubeconfig(&ns);
    binary_reaches_ready_without_a_403(&ns, &kubeconfig).await;
    // Phase 2 creates the Lease again.
    ns.api::<k8s_openapi::api::coordination::v1::Lease>()
        .delete(&ns.name, &Default::default())
        .await
        .unwrap();

    // Phase 2: in-process under the same identity, with every request recorded.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let (client, mut seen) = recording_client(config);

    // Leader election: create the Lease, renew it, release it.
    let mut elector = LeaderElector::new(
        client.clone(),
        LeaseSettings {
            namespace: ns.name.clone(),
            name: ns.name.clone(),
            identity: "rbac-test".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        },
    );
    assert!(
        elector.try_acquire_or_renew().await.unwrap(),
        "creating the Lease"
    );
    assert!(
        elector.try_acquire_or_renew().await.unwrap(),
        "renewing the Lease"
    );
    elector.release().await.unwrap();

    let ctx = Arc::new(Context::from_parts(
        client,
        Arc::new(Metrics::default()),
        Settings::default(),
    ));
    let operator = tokio::spawn(extension_server_operator::controller::run(
        ctx.clone(),
        Some(ns.name.clone()),
    ));

    let server = Server::in_group(LIFECYCLE, "my.custom.api")
        .secure_port(443)
        .namespace(&ns.name)
        .replicas(2)
        .tls("{certificateDuration: 10s, caDuration: 20s}")
        .build();
    let servers: Api<ExtensionServer> = ns.api();
    servers.create(&Default::default(), &server).await.unwrap();
    let _pod = runtime::start(&ns.cluster, &ns.name, LIFECYCLE)
        .await
        .unwrap();
    support::wait_for(servers.clone(), LIFECYCLE, support::is_true("Ready")).await;
    // CA rotation replaces the CA Secret; a second renewal patches the Event series.
    wait_seen(&mut seen, "", "secrets", "update").await;
    wait_seen(&mut seen, "events.k8s.io", "events", "patch").await;
    // Scaling to one replica deletes the PodDisruptionBudget.
    servers
        .patch(
            LIFECYCLE,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    wait_seen(&mut seen, "policy", "poddisruptionbudgets", "delete").await;
    // Deletion: the finalizer removes the APIService and the bindings.
    delete_and_wait(&servers, LIFECYCLE).await;
    // Judging an external host reads the kubernetes Service's ClusterIP and EndpointSlice.
    extension_server_operator::kubernetes_service::learn_addresses(&ctx)
        .await
        .unwrap();
    // Secure /metrics reviews a scraper's token; the operator's own may not read /metrics.
    let token = ns.kubectl(&["create", "token", &ns.name, "-n", &ns.name]);
    let token = String::from_utf8(token.stdout).unwrap();
    let reviews = Reviews::new(ctx.client.clone());
    let bearer = format!("Bearer {}", token.trim());
    assert_eq!(
        reviews.judge(Some(&bearer), "/metrics").await,
        Access::Forbidden
    );
    assert_eq!(
        ctx.metrics.errors(),
        0,
        "a reconcile failed under the chart's role: {}",
        ctx.metrics
            .encode()
            .lines()
            .filter(|l| l.contains("reconcile_errors_total{"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    operator.abort();

    let seen = seen.borrow().clone();
    let mut table = Vec::new();
    let mut unused = Vec::new();
    // RoleBindings are written in kube-system only: a Role there, never the ClusterRole.
    assert!(
        !rules(&rendered)
            .iter()
            .any(|(kind, rule)| kind == "ClusterRole"
                && rule
                    .resources
                    .iter()
                    .flatten()
                    .any(|r| r == "rolebindings" || r == "roles")),
        "the ClusterRole grants RoleBinding writes in every namespace"
    );
    for (kind, rule) in rules(&rendered) {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for field in [&groups, &resources, &rule.verbs] {
            assert!(
                !field.iter().any(|v| v.contains('*')),
                "wildcard in {kind} rule {rule:?}"
            );
        }
        for group in &groups {
            for resource in &resources {
                for verb in &rule.verbs {
                    let needed_by = if verb == "bind" {
                        // Checked by the API server when the operator writes a binding to it.
                        let binding = if resource == "clusterroles" {
                            "clusterrolebindings"
                        } else {
                            "rolebindings"
                        };
                        seen.get(&(group.clone(), binding.to_string(), "patch".to_string()))
                            .map(|r| {
                                format!(
                                    "{r} (binds {:?})",
                                    rule.resource_names.clone().unwrap_or_default()
                                )
                            })
                    } else {
                        seen.get(&(group.clone(), resource.clone(), verb.clone()))
                            .cloned()
                    };
                    let Some(needed_by) = needed_by else {
                        unused.push(format!("{kind} {verb} {group}/{resource}"));
                        continue;
                    };
                    table.push(format!(
                        "{kind:<11} {verb:<6} {:<40} <- {needed_by}",
                        format!("{group}/{resource}")
                    ));
                }
            }
        }
    }
    println!("{}", table.join("\n"));
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");
    let deleted = support::chart::kubectl_stdin(
        &ns,
        &["delete", "--ignore-not-found", "-f", "-"],
        rendered.as_bytes(),
    );
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
}
