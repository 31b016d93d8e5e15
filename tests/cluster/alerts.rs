//! The chart's alerts: the PrometheusRule renders only when enabled and its API exists, it embeds
//! `files/alerts.yaml` unchanged, promtool checks and unit-tests that file, and the API server
//! accepts the PrometheusRule (a server-side dry run against the prometheus-operator CRD).

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;
use testenv::TestNamespace;

use crate::support::chart::{CHART, kubectl_stdin, template};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/extension-server-operator/files/alerts.yaml"
);
const RULES_TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/alerts_test.yaml"
);
const CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/monitoring.coreos.com_prometheusrules.yaml"
);
const API: &str = "monitoring.coreos.com/v1/PrometheusRule";
/// The dry run gets its own cluster: on the shared one, the CRD would make the
/// monitoring.coreos.com/v1 API exist, and every `helm install` of the chart (ServiceMonitor on
/// by default) would then render a ServiceMonitor that has no CRD.
const INSTANCE: &str = "alerts";

/// Runs `program` and fails the test, with its output, unless it succeeds.
fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?}:\n{text}",
        program.display()
    );
    text
}

/// Only the PrometheusRule of the chart rendered with the API and `extra`.
fn prometheus_rule(helm: &Path, namespace: &str, extra: &[&str]) -> String {
    let mut args = vec!["--namespace", namespace, "--api-versions", API];
    args.extend_from_slice(&["--show-only", "templates/prometheusrule.yaml"]);
    args.extend_from_slice(&["--set", "prometheusRule.enabled=true"]);
    args.extend_from_slice(extra);
    template(helm, "eso", &args)
}

fn rules() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(RULES).unwrap()).unwrap()
}

#[test]
fn prometheus_rule_renders_only_when_enabled_and_its_api_exists() {
    let helm = testenv::tools::built().unwrap().helm;
    let render = |extra: &[&str]| template(&helm, "eso", extra);
    let enabled = ["--set", "prometheusRule.enabled=true"];
    assert!(!render(&[]).contains("kind: PrometheusRule"));
    assert!(!render(&enabled).contains("kind: PrometheusRule"));
    // A cluster with the Prometheus Operator, the value left at its default.
    let group = ["--api-versions", "monitoring.coreos.com/v1"];
    assert!(!render(&[&group[..], &["--api-versions", API]].concat()).contains("PrometheusRule"));
    assert!(render(&[&enabled[..], &["--api-versions", API]].concat()).contains("PrometheusRule"));

    let rendered = prometheus_rule(
        &helm,
        "monitoring",
        &["--set", "prometheusRule.additionalLabels.release=kps"],
    );
    let object: Value = serde_yaml::from_str(&rendered).unwrap();
    assert_eq!(object["kind"], "PrometheusRule");
    assert_eq!(object["metadata"]["namespace"], "monitoring");
    assert_eq!(object["metadata"]["labels"]["release"], "kps");
    assert_eq!(
        object["spec"],
        rules(),
        "the rules file must be embedded as is"
    );
}

#[test]
fn every_alert_has_a_severity_annotations_and_a_runbook_in_the_chart_readme() {
    let readme = std::fs::read_to_string(format!("{CHART}/README.md")).unwrap();
    let rules = rules();
    let alerts = rules["groups"][0]["rules"].as_sequence().unwrap();
    assert_eq!(alerts.len(), 4);
    for rule in alerts {
        let name = rule["alert"].as_str().unwrap();
        assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
        for key in ["summary", "description"] {
            assert!(rule["annotations"][key].is_string(), "{name}: {key}");
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = format!(
            "charts/extension-server-operator/README.md#{}",
            name.to_lowercase()
        );
        assert!(url.ends_with(&anchor), "{name}: {url}");
        assert!(
            readme.contains(&format!("\n### {name}\n")),
            "{name}: no runbook"
        );
    }
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let promtool = testenv::tools::built().unwrap().promtool;
    let checked = run(&promtool, &["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS: 4 rules found"), "{checked}");
    run(&promtool, &["test", "rules", RULES_TEST]);
}

#[tokio::test]
async fn prometheus_rule_passes_a_server_side_dry_run() {
    let _instance = testenv::cluster::TearDown(INSTANCE);
    let cluster = testenv::cluster::up(INSTANCE).await.unwrap();
    let ns = TestNamespace::create_on(cluster, "alerts").await.unwrap();
    let crd = std::fs::read(CRD).unwrap();
    let applied = kubectl_stdin(&ns, &["apply", "--server-side", "-f", "-"], &crd);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let established = ns.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/prometheusrules.monitoring.coreos.com",
        "--timeout=60s",
    ]);
    assert!(
        established.status.success(),
        "{}",
        String::from_utf8_lossy(&established.stderr)
    );

    let rendered = prometheus_rule(&ns.cluster.tools.helm, &ns.name, &[]);
    let dry_run = kubectl_stdin(
        &ns,
        &["apply", "--dry-run=server", "-f", "-"],
        rendered.as_bytes(),
    );
    let out = String::from_utf8_lossy(&dry_run.stdout);
    assert!(
        dry_run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&dry_run.stderr)
    );
    assert!(
        out.contains("prometheusrule.monitoring.coreos.com/eso created (server dry run)"),
        "{out}"
    );
}
