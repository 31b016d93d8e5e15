//! What both parts of the demo show with: kubectl as a user runs it, and the Ready test.

use anyhow::{Result, bail};
use extension_server_operator::crd::ExtensionServer;
use testenv::Cluster;

/// Runs kubectl on the cluster; with `show`, prints the command and its output as a user sees it.
pub fn kubectl(cluster: &Cluster, args: &[&str], show: bool) -> Result<String> {
    let out = testenv::kubectl(cluster, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if show {
        println!("$ kubectl {}", args.join(" "));
        print!("{stdout}");
        println!();
    }
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Whether the server reports `Ready=True`.
pub fn ready(server: Option<&ExtensionServer>) -> bool {
    server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Prints the metrics APIServices as `kubectl get apiservices | grep metrics` would.
pub fn print_metrics_api_services(cluster: &Cluster) -> Result<()> {
    let api_services = kubectl(cluster, &["get", "apiservices"], false)?;
    println!("$ kubectl get apiservices | grep metrics");
    for line in api_services.lines() {
        if line.starts_with("NAME") || line.contains("metrics.k8s.io") {
            println!("{line}");
        }
    }
    println!();
    Ok(())
}
