//! The Helm chart: it carries the generated CRD, lints strictly, and its rendered manifests pass a
//! server-side dry run against the real API server.

use std::process::Command;

use extension_server_operator::trust::grants::Grants;
use testenv::TestNamespace;

use crate::support::chart::{CHART, kubectl_stdin, template};

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

/// The README's `helm template` line renders without a cluster, and the chart refuses a
/// Kubernetes older than the tested range.
#[test]
fn the_readme_helm_template_example_renders_without_a_cluster() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("helm template "))
        .expect("the README has a `helm template` example");
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert!(args.contains(&"--kube-version"), "{line}");
    let helm = testenv::tools::ensure_built().unwrap().helm;
    let run = |args: &[&str]| {
        Command::new(&helm)
            .current_dir(root)
            .args(args)
            .output()
            .unwrap()
    };
    let rendered = run(&args);
    assert!(
        rendered.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(String::from_utf8_lossy(&rendered.stdout).contains("kind: Deployment"));
    // Without a version helm assumes v1.20.0; 1.32 is below the tested range.
    let without: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--kube-version" && !a.starts_with("1."))
        .collect();
    let too_old: Vec<&str> = args
        .iter()
        .map(|a| if a.starts_with("1.") { "1.32.0" } else { a })
        .collect();
    for refused in [run(&without), run(&too_old)] {
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(">=1.33.0-0"),
            "{stderr}"
        );
    }
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
    // /metrics is HTTPS and answers only a token: the ServiceMonitor sends Prometheus's, and a
    // ClusterRole to bind it to exists; plain HTTP is an explicit choice.
    for secure in [
        "scheme: https",
        "bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
        "name: eso-metrics-reader",
        r#"nonResourceURLs: ["/metrics"]"#,
        "scheme: HTTPS",
    ] {
        assert!(with_api.contains(secure), "{secure} missing:\n{with_api}");
    }
    assert!(!with_api.contains("--metrics-insecure"));
    let insecure = render(&[
        "--api-versions",
        "monitoring.coreos.com/v1",
        "--set",
        "metricsInsecure=true",
    ]);
    assert!(insecure.contains("--metrics-insecure"));
    assert!(!insecure.contains("scheme: https") && !insecure.contains("metrics-reader"));
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

#[tokio::test]
async fn every_grant_shape_renders_a_policy_the_api_server_accepts() {
    let ns = TestNamespace::create("chart-grants").await.unwrap();
    let helm = &ns.cluster.tools.helm;
    for grants in [
        r#"[{"namespaceSelector":{},"groups":["*.custom.api"],"clusterRoles":["view"]}]"#,
        r#"[{"namespaceSelector":{"matchLabels":{"tier":"platform"}},"groups":["a.custom.api"]}]"#,
        r#"[{"namespaces":[],"namespaceSelector":{},"groups":["a.custom.api"],"adoptExisting":true}]"#,
        r#"[{"namespaces":["team-a"],"groups":["*.team-a.io"],"keepWhenShadowed":true,"serviceAccountNames":["metrics"]}]"#,
        r#"[{"namespaces":["team-a"],"groups":["a.custom.api"],"allowInsecure":true,"external":{"hosts":["127.0.0.1","*.corp.example.com","10.20.0.0/16"],"ports":[443,8443]}}]"#,
        r#"[{"namespaces":["team-a"],"groups":["a.custom.api"],"external":{"hosts":["api.example.com"]}}]"#,
        r#"[{"namespaces":["team-a"],"groups":["a.custom.api","*.b.io"],"maxGroupPriorityMinimum":5000},{"namespaces":["team-b"],"groups":["c.io"],"maxGroupPriorityMinimum":2000}]"#,
    ] {
        let rendered = template(
            helm,
            &ns.name,
            &[
                "--show-only",
                "templates/admission-policy.yaml",
                "--set-json",
                &format!("grants={grants}"),
            ],
        );
        let applied = kubectl_stdin(
            &ns,
            &["apply", "--dry-run=server", "-f", "-"],
            rendered.as_bytes(),
        );
        assert!(
            applied.status.success(),
            "grants {grants}: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }

    // A grant for no namespace at all is refused by the chart's values schema.
    let refused = Command::new(helm)
        .args(["template", "eso", CHART, "--set-json"])
        .arg(r#"grants=[{"groups":["a.custom.api"]}]"#)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("namespaceSelector"),
        "{stderr}"
    );
}

/// The chart renders the grants into both the operator's file and the admission policy, so a
/// grants value the operator would refuse must be refused by `helm install` and `helm upgrade`
/// too: then an invalid value changes neither, and both keep the last valid set.
#[test]
fn the_values_schema_refuses_every_grants_value_the_operator_refuses() {
    let helm = testenv::tools::built().unwrap().helm;
    let cases = [
        r#"[{"namespaces":["a"],"groups":["x.io"]}]"#,
        r#"[{"namespaces":[],"namespaceSelector":{},"groups":["x.io"]}]"#,
        r#"[{"namespaces":["a"],"groups":["*.x.io"],"external":{"hosts":["10.0.0.0/8","127.0.0.1","*.corp.io"],"ports":[443]}}]"#,
        r#"[{"namespaces":[],"groups":["x.io"]}]"#,
        r#"[{"groups":["x.io"]}]"#,
        r#"[{"namespaces":["a"],"groups":["*"]}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"adopt":true}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"external":{"hosts":["10.0.0.0/40"]}}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"external":{"hosts":["300.0.0.0/8"]}}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"external":{"hosts":["Api.io"]}}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"external":{"hosts":["a.io"],"ports":[0]}}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"external":{"ports":[443]}}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"allowInsecure":"yes"}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"maxGroupPriorityMinimum":5000}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"maxGroupPriorityMinimum":20001}]"#,
        r#"[{"namespaces":["a"],"groups":["x.io"],"maxGroupPriorityMinimum":0}]"#,
    ];
    for grants in cases {
        let operator = Grants::parse(&format!("grants: {grants}"));
        let rendered = Command::new(&helm)
            .args(["template", "eso", CHART, "--kube-version", "v1.35.4"])
            .arg("--set-json")
            .arg(format!("grants={grants}"))
            .output()
            .unwrap();
        if operator.is_err() {
            assert!(
                !rendered.status.success(),
                "the operator refuses {grants} ({operator:?}), but the chart renders it"
            );
        } else {
            assert!(
                rendered.status.success(),
                "the operator accepts {grants}, but the chart refuses it: {}",
                String::from_utf8_lossy(&rendered.stderr)
            );
        }
    }
}

/// `childLabels` become `--child-label` arguments, and the values schema refuses exactly what
/// the operator's flag parser refuses.
#[test]
fn child_labels_render_as_flags_and_the_schema_refuses_what_the_operator_refuses() {
    use extension_server_operator::child_labels::ChildLabels;
    let helm = testenv::tools::built().unwrap().helm;
    let cases: [(&str, &str); 9] = [
        ("team", "payments"),
        ("example.com/cost-centre", "cc-7"),
        ("backup", ""),
        ("Team_1.x", "A.b-c_d"),
        ("aggregation.dev/server", "x"),
        ("app.kubernetes.io/managed-by", "me"),
        ("team", "two words"),
        ("-team", "x"),
        ("Example.com/team", "x"),
    ];
    for (key, value) in cases {
        let operator = ChildLabels::parse([format!("{key}={value}").as_str()]);
        let rendered = Command::new(&helm)
            .args(["template", "eso", CHART, "--kube-version", "v1.35.4"])
            .arg("--set-json")
            .arg(format!(r#"childLabels={{"{key}":"{value}"}}"#))
            .output()
            .unwrap();
        if operator.is_err() {
            assert!(
                !rendered.status.success(),
                "the operator refuses {key}={value} ({operator:?}), but the chart renders it"
            );
        } else {
            let stdout = String::from_utf8_lossy(&rendered.stdout);
            assert!(
                rendered.status.success()
                    && stdout.contains(&format!(r#"- "--child-label={key}={value}""#)),
                "the operator accepts {key}={value}, but the chart does not pass it: {}{stdout}",
                String::from_utf8_lossy(&rendered.stderr)
            );
        }
    }
}
