//! The chart's ValidatingAdmissionPolicy, rendered from the same `grants` value the operator
//! reads, refuses at `kubectl apply` what the operator would refuse, with the same messages.

use extension_server_operator::crd::ExtensionServer;
use testenv::TestNamespace;

use crate::support;
use crate::support::Harness;
use crate::support::chart::kubectl_stdin;
use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;
use crate::support::policy::{apply, install_policy, wait_refused};

#[tokio::test]
async fn the_policy_refuses_what_the_grants_refuse() {
    let granted = TestNamespace::create("vap-granted").await.unwrap();
    let other = TestNamespace::create("vap-other").await.unwrap();
    support::install_crd(&granted.client).await;
    let grants = format!(
        r#"[{{"namespaces":["{}"],"groups":["*.custom.api"],"external":{{"hosts":["*.example.com","127.0.0.1"],"ports":[443]}}}}]"#,
        granted.name
    );
    let installed = install_policy(&granted, &grants, &[&granted.name, &other.name]);

    let refused = Server::in_group("tenant", "x.custom.api").yaml();
    wait_refused(&other, &refused).await;
    let message = apply(&other, &refused).unwrap_err();
    assert!(
        message.contains(&format!(
            "namespace {} has no grant for group x.custom.api",
            other.name
        )),
        "{message}"
    );
    let reserved = apply(&granted, &Server::in_group("kube", "x.k8s.io").yaml()).unwrap_err();
    assert!(
        reserved.contains("reserved for Kubernetes itself"),
        "{reserved}"
    );
    let adopt = apply(
        &granted,
        &Server::in_group("adopt", "y.custom.api")
            .adopt_existing()
            .yaml(),
    )
    .unwrap_err();
    assert!(adopt.contains("no grant lets namespace"), "{adopt}");
    let account = apply(
        &granted,
        &Server::in_group("account", "z.custom.api")
            .extra("{serviceAccountName: admin}")
            .yaml(),
    )
    .unwrap_err();
    assert!(
        account.contains("ServiceAccount admin (spec.serviceAccountName) is not granted"),
        "{account}"
    );
    let insecure = apply(
        &granted,
        &Server::in_group("insecure", "i.custom.api")
            .tls("{mode: Insecure}")
            .yaml(),
    )
    .unwrap_err();
    assert!(
        insecure.contains("tls.mode Insecure is not granted"),
        "{insecure}"
    );
    let external = |name: &str, host: &str| {
        Server::own_group(name)
            .external(host, 443)
            .tls("{mode: Secret, secretName: outside-ca}")
            .yaml()
    };
    for (name, host) in [("loopback", "127.0.0.2"), ("elsewhere", "api.example.org")] {
        let refused = apply(&granted, &external(name, host)).unwrap_err();
        assert!(
            refused.contains(&format!("external backend {host}:443 is not granted")),
            "{refused}"
        );
    }
    apply(&granted, &external("named", "127.0.0.1")).unwrap();
    apply(&granted, &external("covered", "api.example.com")).unwrap();
    apply(&granted, &Server::in_group("tenant", "x.custom.api").yaml()).unwrap();
    for name in ["tenant", "named", "covered"] {
        assert!(
            granted
                .kubectl(&["delete", "extensionserver", name, "-n", &granted.name])
                .status
                .success()
        );
    }
    drop(installed);
}

#[tokio::test]
async fn a_withdrawn_grant_blocks_neither_the_operator_nor_deletion() {
    let grants = GrantsFile::new("vap-withdrawn", "grants: []\n");
    let h = Harness::start_with("vap-withdrawn", grants.settings()).await;
    let group = format!("{}.custom.api", h.ns.name);
    let granted = format!(
        r#"[{{"namespaces":["{}"],"groups":["*.custom.api"]}}]"#,
        h.ns.name
    );
    grants.write(&format!("grants: {granted}\n"));
    let installed = install_policy(&h.ns, &granted, &[&h.ns.name]);
    apply(&h.ns, &Server::in_group("tenant", &group).yaml()).unwrap();
    h.wait_condition("tenant", "Registered", "True", None).await;

    // Withdrawn from the operator and the policy alike; the policy refuses new claims.
    grants.write("grants: []\n");
    let _installed = install_policy(&h.ns, "[]", &[&h.ns.name]);
    wait_refused(&h.ns, &Server::in_group("next", &group).yaml()).await;
    h.wait_condition("tenant", "Registered", "False", Some("NotGranted"))
        .await;

    // A spec change that leaves the claim alone is not judged again.
    let replicas = h.ns.kubectl(&[
        "patch",
        "extensionserver",
        "tenant",
        "-n",
        &h.ns.name,
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    assert!(
        replicas.status.success(),
        "{}",
        String::from_utf8_lossy(&replicas.stderr)
    );

    // Deletion: the operator's finalizer removal is an UPDATE the policy lets through.
    let servers = h.servers();
    servers.delete("tenant", &Default::default()).await.unwrap();
    support::wait_for(servers, "tenant", |s: Option<&ExtensionServer>| s.is_none()).await;
    drop(installed);
}

#[tokio::test]
async fn the_policy_keeps_group_priorities_below_built_in_groups() {
    let ns = TestNamespace::create("vap-priority").await.unwrap();
    support::install_crd(&ns.client).await;
    let grants = format!(
        r#"[{{"namespaces":["{0}"],"groups":["*.custom.api"]}},{{"namespaces":["{0}"],"groups":["raised.custom.api"],"maxGroupPriorityMinimum":5000}}]"#,
        ns.name
    );
    let installed = install_policy(&ns, &grants, &[&ns.name]);
    let hijack = Server::in_group("hijack", "hijack.custom.api")
        .priorities(20000, 15)
        .yaml();
    wait_refused(&ns, &hijack).await;
    let message = apply(&ns, &hijack).unwrap_err();
    assert!(
        message.contains(&format!(
            "a groupPriorityMinimum is above what namespace {} may give its groups",
            ns.name
        )),
        "{message}"
    );
    let additional = Server::in_group("extra", "extra.custom.api")
        .extra("{additionalGroups: [{group: more.custom.api, versions: [{name: v1, groupPriorityMinimum: 1001}]}]}")
        .yaml();
    assert!(apply(&ns, &additional).is_err(), "an additional group too");
    let dry_run = |yaml: &str| {
        kubectl_stdin(
            &ns,
            &["create", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            yaml.as_bytes(),
        )
    };
    for allowed in [
        Server::in_group("at-cap", "plain.custom.api").priorities(1000, 15),
        Server::in_group("raised", "raised.custom.api").priorities(5000, 15),
    ] {
        let out = dry_run(&allowed.yaml());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let above_raised = Server::in_group("raised", "raised.custom.api")
        .priorities(5001, 15)
        .yaml();
    assert!(apply(&ns, &above_raised).is_err());
    drop(installed);
}
