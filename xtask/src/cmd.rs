//! Running commands: cargo, and other programs with their output shown or captured.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Runs `cargo <args>` in the workspace root with extra environment.
pub fn cargo(args: &[&str], env: &[(&str, String)]) -> Result<()> {
    testenv::cargo::run(args, env)
}

/// PATH with the cluster's tools (kubectl, helm) first.
pub fn path_with(cluster: &testenv::Cluster) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let bins: Vec<String> = cluster
        .tools
        .bin_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    format!("{}:{path}", bins.join(":"))
}

/// Runs `command` with its output shown (progress of long steps); fails when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Runs `command` and returns its stdout; fails with its output when it fails.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the binaries the stand-ins run for the sample images: the sample extension server
/// and the sample workload.
pub fn build_stand_in_binaries() -> Result<()> {
    cargo(
        &[
            "build",
            "--locked",
            "-p",
            "sample-extension-server",
            "-p",
            "sample-workload",
        ],
        &[],
    )
}

/// Starts the cluster's kubelet stand-in (this binary, `cluster kubelet`) unless it runs.
pub fn ensure_kubelet(cluster: &testenv::Cluster) -> Result<()> {
    let program = std::env::current_exe()?;
    let pid = testenv::kubelet::daemon::ensure_running(
        cluster,
        &program,
        &["cluster", "kubelet", "--instance", &cluster.instance],
    )?;
    eprintln!(
        "==> the kubelet stand-in (pid {pid}) runs the pods of cluster {}; its log: {}",
        cluster.instance,
        cluster.logs().join("kubelet.log").display()
    );
    Ok(())
}
