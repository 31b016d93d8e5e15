//! `cargo xtask chaos`: the fault suite at full size on the local control plane. Each part is a
//! module of the `chaos` test binary (`tests/chaos/`) or the property modules of the `pure` one
//! (`tests/pure/properties*.rs`), and writes its results to `target/chaos/parts/`; this gathers
//! them into `target/chaos/report.json` and `report.md`. `cargo xtask test` runs the same
//! binaries at their short size.

mod bugs;
mod report;

use std::path::PathBuf;

use anyhow::{Context, Result};
use testenv::SHARED_INSTANCE;

/// The suite's test binaries, in the order they run: the parts crash, faults, restarts,
/// mutations and churn in `chaos`, and the property cases in `pure`.
const BINARIES: [&str; 2] = ["chaos", "pure"];

pub fn dir() -> PathBuf {
    testenv::paths::workspace_root().join("target/chaos")
}

pub async fn run() -> Result<()> {
    crate::cmd::cargo(&["build", "--locked", "-p", "sample-extension-server"], &[])?;
    let cluster = testenv::cluster::up(SHARED_INSTANCE).await?;
    let before = crate::leftovers::Snapshot::take(&cluster)?;
    let parts = dir().join("parts");
    let _ = std::fs::remove_dir_all(&parts);
    std::fs::create_dir_all(&parts)?;
    let started = std::time::Instant::now();
    let mut args = vec!["test", "--locked"];
    for binary in BINARIES {
        args.extend(["--test", binary]);
    }
    // One test binary at a time, each test in it one at a time: the parts share one cluster.
    args.extend(["--", "--test-threads=1", "--nocapture"]);
    let mut env = vec![
        ("CHAOS_SCALE", "full".to_string()),
        ("KUBECONFIG", cluster.kubeconfig.display().to_string()),
        ("PATH", crate::cmd::path_with(&cluster)),
    ];
    if let Ok(seed) = std::env::var("CHAOS_SEED") {
        env.push(("CHAOS_SEED", seed));
    }
    let outcome = crate::cmd::cargo(&args, &env);
    let report = report::gather(&parts, started.elapsed(), outcome.is_ok())
        .context("gathering target/chaos/parts")?;
    report::write(&dir(), &report)?;
    eprintln!(
        "==> chaos report: {} and report.md",
        dir().join("report.json").display()
    );
    outcome?;
    crate::leftovers::assert_none_since(&cluster, &before)?;
    report::check(&report)
}
