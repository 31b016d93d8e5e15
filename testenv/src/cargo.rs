//! Running cargo from the workspace root, for the task runner and the bench.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs `cargo <args>` in the workspace root with extra environment, printing the command and
/// how long it took.
pub fn run(args: &[&str], env: &[(&str, String)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    eprintln!("==> cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(crate::paths::workspace_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    eprintln!(
        "    cargo {} took {:.0}s",
        args.first().copied().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Applies the committed CRD (taking over fields the tests applied) and waits until it is
/// established.
pub async fn install_crd(cluster: &crate::Cluster) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    const CRD: &str = "extensionservers.aggregation.dev";
    let crds = crate::paths::workspace_root().join("crds");
    let crds = crds.to_string_lossy();
    let args = ["apply", "--server-side", "--force-conflicts", "-f", &crds];
    let out = crate::kubectl(cluster, &args);
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(cluster.client().await?);
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        await_condition(api, CRD, conditions::is_crd_established()),
    )
    .await
    .with_context(|| format!("CRD {CRD} was not established within 60 s"))??;
    Ok(())
}
