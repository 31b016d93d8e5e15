//! The chart's ClusterRole is enough: the operator, running as the chart's ServiceAccount
//! (impersonated), brings the seed's basic example to Ready without a single failed reconcile.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use extension_server_operator::context::{Context, Settings};
use testenv::{TestNamespace, runtime};

const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/extension-server-operator"
);

fn kubectl_stdin(ns: &TestNamespace, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(&ns.cluster.tools.kubectl)
        .env("KUBECONFIG", &ns.cluster.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_operator_needs_nothing_beyond_the_chart_role() {
    let ns = TestNamespace::create("chart-rbac").await.unwrap();
    support::install_crd(&ns.client).await;
    // The chart's RBAC only, under a release named after the namespace.
    let template = Command::new(&ns.cluster.tools.helm)
        .args([
            "template",
            &ns.name,
            CHART,
            "--kube-version",
            "v1.35.4",
            "--namespace",
            &ns.name,
        ])
        .args(["--show-only", "templates/serviceaccount.yaml"])
        .args(["--show-only", "templates/clusterrole.yaml"])
        .args(["--show-only", "templates/clusterrolebinding.yaml"])
        .output()
        .unwrap();
    assert!(
        template.status.success(),
        "{}",
        String::from_utf8_lossy(&template.stderr)
    );
    let applied = kubectl_stdin(&ns, &["apply", "-f", "-"], &template.stdout);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let mut config = support::config_for(&ns).await;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{}:{}", ns.name, ns.name));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{}", ns.name),
        "system:authenticated".into(),
    ]);
    let ctx = Arc::new(Context::connect(config, Settings::default()).unwrap());
    let operator = tokio::spawn(extension_server_operator::controller::run(
        ctx.clone(),
        Some(ns.name.clone()),
    ));

    // The sample server serves my.custom.api; test binaries run one at a time.
    let group = "my.custom.api";
    let server: extension_server_operator::crd::ExtensionServer = serde_yaml::from_str(&format!(
        "apiVersion: aggregation.dev/v1alpha1\nkind: ExtensionServer\nmetadata: {{name: basic, namespace: {}}}\nspec: {{group: {group}, versions: [{{name: v1}}], image: img, port: 443, args: [--secure-port=443]}}\n",
        ns.name
    ))
    .unwrap();
    let servers: kube::Api<extension_server_operator::crd::ExtensionServer> = ns.api();
    servers.create(&Default::default(), &server).await.unwrap();
    let _pod = runtime::start(&ns.cluster, &ns.name, "basic")
        .await
        .unwrap();
    let ready = |s: Option<&extension_server_operator::crd::ExtensionServer>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    };
    support::wait_for(servers.clone(), "basic", ready).await;
    assert_eq!(
        ctx.metrics.errors(),
        0,
        "a reconcile failed under the chart's role"
    );

    // Deletion works under the role too: the finalizer removes the APIService and bindings.
    let uid = servers.get("basic").await.unwrap().metadata.uid.unwrap();
    servers.delete("basic", &Default::default()).await.unwrap();
    support::wait_for(
        servers,
        "basic",
        kube::runtime::wait::conditions::is_deleted(&uid),
    )
    .await;
    assert_eq!(
        ctx.metrics.errors(),
        0,
        "cleanup failed under the chart's role"
    );
    operator.abort();
    let release = ns.name.clone();
    ns.kubectl(&["delete", "clusterrolebinding,clusterrole", &release]);
}
