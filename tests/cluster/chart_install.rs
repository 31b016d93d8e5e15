//! `helm install` into a namespace that enforces Pod Security "restricted": no warnings, the
//! operator's Deployment becomes Available (pods run on kwok), and `helm uninstall` leaves
//! nothing behind but the CRD.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use testenv::TestNamespace;

use crate::support;
use crate::support::chart::CHART;

fn helm(ns: &TestNamespace, args: &[&str]) -> std::process::Output {
    let output = Command::new(&ns.cluster.tools.helm)
        .env("KUBECONFIG", &ns.cluster.kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn available(deployment: Option<&Deployment>) -> bool {
    deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}

/// Objects of `kinds` labelled with the release, across all namespaces.
fn leftovers(ns: &TestNamespace, release: &str, kinds: &str) -> String {
    let selector = format!("app.kubernetes.io/instance={release}");
    let out = ns.kubectl(&["get", kinds, "-A", "-l", &selector, "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn helm_install_is_clean_under_restricted_and_uninstall_leaves_only_the_crd() {
    let ns = TestNamespace::create("chart-install").await.unwrap();
    let labelled = ns.kubectl(&[
        "label",
        "namespace",
        &ns.name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    assert!(labelled.status.success());
    let release = ns.name.clone();

    let installed = helm(
        &ns,
        &[
            "install",
            &release,
            CHART,
            "--namespace",
            &ns.name,
            "--set",
            "replicaCount=2",
            "--set",
            "podDisruptionBudget.enabled=true",
        ],
    );
    let stderr = String::from_utf8_lossy(&installed.stderr);
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "helm install printed warnings:\n{stderr}"
    );

    let deployments: Api<Deployment> = ns.api();
    let deployment = support::wait_for(deployments, &release, available)
        .await
        .unwrap();
    assert_eq!(
        deployment.status.and_then(|s| s.available_replicas),
        Some(2)
    );
    let args = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap();
    assert!(args.iter().any(|a| a == "--leader-elect"), "{args:?}");

    helm(
        &ns,
        &[
            "uninstall",
            &release,
            "--namespace",
            &ns.name,
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    let kinds = "deployments,replicasets,services,serviceaccounts,roles,rolebindings,\
                 clusterroles,clusterrolebindings,poddisruptionbudgets,configmaps,secrets";
    assert_eq!(
        leftovers(&ns, &release, kinds),
        "",
        "left behind by uninstall"
    );
    support::eventually(
        Duration::from_secs(60),
        "the operator's pods to go",
        || async { leftovers(&ns, &release, "pods").is_empty() },
    )
    .await;
    let releases = ns.kubectl(&[
        "get",
        "secrets",
        "-n",
        &ns.name,
        "-l",
        "owner=helm",
        "-o",
        "name",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&releases.stdout).trim(),
        "",
        "release records left"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    assert!(
        crds.get_opt("extensionservers.aggregation.dev")
            .await
            .unwrap()
            .is_some(),
        "the CRD must stay (Helm's convention)"
    );
}
