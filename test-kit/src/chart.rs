//! The Helm chart: rendering it, and feeding manifests to kubectl.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use testenv::TestNamespace;

/// The chart's directory (the kit lives one level below the workspace root).
pub const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../charts/extension-server-operator"
);

/// `helm template <release>` of the chart for Kubernetes v1.35.4 with `extra` flags; fails the
/// test if helm does.
pub fn template(helm: &Path, release: &str, extra: &[&str]) -> String {
    let output = Command::new(helm)
        .args(["template", release, CHART, "--kube-version", "v1.35.4"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the cluster's kubectl with `input` on its standard input.
pub fn kubectl_stdin(ns: &TestNamespace, args: &[&str], input: &[u8]) -> Output {
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
