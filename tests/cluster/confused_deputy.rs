//! No confused deputy: an ExtensionServer gives its creator at most the powers of a Deployment
//! in its namespace, and pod-level powers only to a creator who may create Deployments there
//! (the chart's policy asks the request's own authorizer). Whoever writes the pod template, the
//! operator keeps its ServiceAccount and the TLS volumes and mounts.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use testenv::TestNamespace;

use crate::support::Harness;
use crate::support::chart::kubectl_stdin;
use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;
use crate::support::policy::install_policy;

/// A user who may manage ExtensionServers in `ns`, and nothing else.
fn tenant(ns: &TestNamespace) -> String {
    let user = format!("tenant@{}", ns.name);
    let rbac = format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{{"name":"servers-only"}},
"rules":[{{"apiGroups":["aggregation.dev"],"resources":["extensionservers"],"verbs":["*"]}}]}}
{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"servers-only"}},
"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"servers-only"}},
"subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"{user}"}}]}}"#
    );
    let out = kubectl_stdin(ns, &["apply", "-n", &ns.name, "-f", "-"], rbac.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    user
}

/// `kubectl apply` of `yaml` as `user`: Ok, or the refusal's text.
fn apply_as(ns: &TestNamespace, user: &str, yaml: &str) -> Result<(), String> {
    let args = ["--as", user, "apply", "-n", &ns.name, "-f", "-"];
    let out = kubectl_stdin(ns, &args, yaml.as_bytes());
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
    }
}

#[tokio::test]
async fn pod_powers_need_the_right_to_create_deployments_and_the_operator_keeps_its_invariants() {
    let grants = GrantsFile::new("deputy", "grants: []\n");
    let h = Harness::start_with("deputy", grants.settings()).await;
    let ns = &h.ns;
    let granted = format!(
        r#"[{{"namespaces":["{}"],"groups":["*.custom.api"]}}]"#,
        ns.name
    );
    grants.write(&format!("grants: {granted}\n"));
    let _installed = install_policy(ns, &granted, &[&ns.name]);
    let user = tenant(ns);

    let attacks = [
        (
            "account",
            "{podTemplate: {spec: {serviceAccountName: powerful}}}",
        ),
        (
            "volume",
            "{podTemplate: {spec: {volumes: [{name: s, secret: {secretName: db-password}}], containers: [{name: server, volumeMounts: [{name: s, mountPath: /s}]}]}}}",
        ),
        (
            "env",
            "{env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: db-password, key: password}}}]}",
        ),
        (
            "host",
            "{podTemplate: {spec: {hostPID: true, securityContext: {runAsUser: 0}, volumes: [{name: root, hostPath: {path: /}}]}}}",
        ),
        (
            "control-plane",
            "{tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]}",
        ),
    ];
    let first = Server::own_group(attacks[0].0).extra(attacks[0].1).yaml();
    crate::support::eventually(
        std::time::Duration::from_secs(30),
        "the policy to refuse the tenant",
        || {
            let args = [
                "--as",
                &user,
                "create",
                "--dry-run=server",
                "-n",
                &ns.name,
                "-f",
                "-",
            ];
            let refused = !kubectl_stdin(ns, &args, first.as_bytes()).status.success();
            async move { refused }
        },
    )
    .await;
    for (name, fields) in attacks {
        let refused =
            apply_as(ns, &user, &Server::own_group(name).extra(fields).yaml()).expect_err(name);
        assert!(
            refused.contains(&format!(
                "{user} may not create Deployments in namespace {}",
                ns.name
            )),
            "{name}: {refused}"
        );
    }

    // The baseline: the operator's own restricted pod, its own ServiceAccount.
    apply_as(ns, &user, &Server::own_group("baseline").yaml()).unwrap();
    h.wait_condition("baseline", "DeploymentAvailable", "True", None)
        .await;

    // Someone who may create Deployments gets the template, but not the operator's choices.
    let trusted = Server::own_group("trusted").pod_template(
        "{spec: {serviceAccountName: powerful, volumes: [{name: serving-cert, secret: {secretName: db-password}}], containers: [{name: server, volumeMounts: [{name: serving-cert, mountPath: /elsewhere}]}]}}",
    );
    h.create(&trusted).await;
    h.wait_condition("trusted", "DeploymentAvailable", "True", None)
        .await;
    let deployments: Api<Deployment> = ns.api();
    let pod = deployments
        .get("trusted")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template;
    let spec = pod.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("trusted"));
    let tls = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "serving-cert");
    let secret = tls
        .and_then(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.clone());
    assert_ne!(secret.as_deref(), Some("db-password"));
    let server = spec.containers.iter().find(|c| c.name == "server").unwrap();
    let tls_mounts: Vec<&str> = server
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == "serving-cert")
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(tls_mounts.len(), 1, "{tls_mounts:?}");
    assert_ne!(tls_mounts[0], "/elsewhere");
    h.delete_and_wait("trusted").await;
    h.delete_and_wait("baseline").await;
}
