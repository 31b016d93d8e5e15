//! The gates: `cargo xtask fast` (no control plane) and `cargo xtask test` (everything CI
//! runs).

use std::time::Instant;

use anyhow::Result;
use testenv::SHARED_INSTANCE;

use crate::cmd::{cargo, path_with};

/// The lints every loop runs first.
fn lints() -> Result<()> {
    cargo(&["fmt", "--all", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )
}

/// The fast loop: lints, the unit tests (with the mock-API reconcile tests) and the pure tests.
/// Nothing here starts a control plane or builds a Go tool.
pub fn fast() -> Result<()> {
    let started = Instant::now();
    lints()?;
    cargo(&["test", "--workspace", "--lib", "--bins", "--locked"], &[])?;
    cargo(&["test", "--locked", "--test", "pure"], &[])?;
    eprintln!(
        "==> the fast loop passed in {:.0}s (`cargo xtask test` runs everything)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every check, on Kubernetes `minor` (such as `1.35`).
pub async fn test(minor: &str) -> Result<()> {
    testenv::tools::check_kubernetes(minor)?;
    eprintln!("==> the whole suite; `cargo xtask fast` is the quick loop without a control plane");
    lints()?;
    crate::cmd::build_stand_in_binaries()?;
    let cluster = testenv::cluster::up_with(SHARED_INSTANCE, minor).await?;
    let before = crate::leftovers::Snapshot::take(&cluster)?;
    cargo(
        &["test", "--workspace", "--locked", "--no-fail-fast"],
        &[
            ("KUBECONFIG", cluster.kubeconfig.display().to_string()),
            ("PATH", path_with(&cluster)),
            // Every test process (and the instances it starts) runs this minor.
            (testenv::tools::KUBERNETES_ENV, minor.to_string()),
        ],
    )?;
    // The release path: the image, the local OCI registry, install, upgrade under traffic.
    crate::release::local().await?;
    crate::leftovers::assert_none_since(&cluster, &before)?;
    eprintln!(
        "==> all checks passed; the cluster is still running (stop it with `cargo xtask cluster down`)"
    );
    Ok(())
}
