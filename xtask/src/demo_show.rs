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
