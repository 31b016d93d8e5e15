//! The Helm chart: it carries the generated CRD, lints strictly, and its rendered manifests pass a
//! server-side dry run against the real API server.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

mod support;

use std::process::Command;

use support::chart::{CHART, kubectl_stdin, template};
use testenv::TestNamespace;

#[test]
fn chart_crd_is_the_generated_crd() {
    let root = env!("CARGO_MANIFEST_DIR");
    let generated =
        std::fs::read(format!("{root}/crds/extensionservers.aggregation.dev.yaml")).unwrap();
    let in_chart = std::fs::read(format!(
        "{CHART}/crds/extensionservers.aggregation.dev.yaml"
    ))
    .unwrap();
    assert!(generated == in_chart, "copy crds/ into the chart's crds/");
}

#[tokio::test]
async fn chart_lints_and_renders_valid_objects() {
    let ns = TestNamespace::create("chart").await.unwrap();
    let helm = &ns.cluster.tools.helm;
    let lint = Command::new(helm)
        .args(["lint", "--strict", CHART])
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let rendered = template(
        helm,
        "eso",
        &[
            "--namespace",
            &ns.name,
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            "replicaCount=2",
        ],
    );
    let applied = kubectl_stdin(
        &ns,
        &["apply", "--dry-run=server", "-f", "-"],
        rendered.as_bytes(),
    );
    let out = String::from_utf8_lossy(&applied.stdout);
    assert!(
        applied.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    for kind in [
        "serviceaccount/",
        "clusterrole.rbac",
        "clusterrolebinding.rbac",
        "deployment.apps/",
        "service/",
        "poddisruptionbudget.policy/",
        "role.rbac.authorization.k8s.io/eso-leader-election",
        "rolebinding.rbac.authorization.k8s.io/eso-leader-election",
    ] {
        assert!(out.contains(kind), "{kind} missing from:\n{out}");
    }
    assert!(!rendered.contains("verbs: [\"*\"]"));
    assert!(
        rendered.contains("- --leader-elect\n"),
        "replicas > 1 must elect a leader"
    );
}

#[test]
fn service_monitor_renders_only_when_its_api_exists() {
    let helm = testenv::tools::built().unwrap().helm;
    let render = |extra: &[&str]| template(&helm, "eso", extra);
    assert!(!render(&[]).contains("kind: ServiceMonitor"));
    let with_api = render(&["--api-versions", "monitoring.coreos.com/v1"]);
    assert!(with_api.contains("kind: ServiceMonitor"));
    assert!(
        !render(&[
            "--api-versions",
            "monitoring.coreos.com/v1",
            "--set",
            "serviceMonitor.enabled=false"
        ])
        .contains("kind: ServiceMonitor")
    );
}
