//! The local cluster's kubelet stand-in as a process of its own, as `cargo xtask cluster up`
//! and `cargo xtask demo` start it: it runs the pods of every namespace but the tests' own
//! ([`super::start_cluster_wide`]). Detached like the cluster's components, it names its pid
//! file inside the cluster's directory, so that `cargo xtask cluster down` stops it with them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::cluster::Cluster;
use crate::process;

/// The flag that gives the daemon its pid file.
pub const PID_FILE_FLAG: &str = "--pid-file";
/// How long the daemon may take to watch the cluster.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The pid file of `cluster`'s stand-in.
pub fn pid_file(cluster: &Cluster) -> PathBuf {
    cluster.dir.join("kubelet.pid")
}

/// The stand-in's pid, if it runs.
pub fn running(cluster: &Cluster) -> Option<u32> {
    let pid = std::fs::read_to_string(pid_file(cluster))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    process::alive(pid).then_some(pid)
}

/// Starts the stand-in unless it runs: `program` with `args`, then [`PID_FILE_FLAG`] and the
/// pid file, logging to `<logs>/kubelet.log`. Returns its pid once it watches the cluster.
pub fn ensure_running(cluster: &Cluster, program: &Path, args: &[&str]) -> Result<u32> {
    if let Some(pid) = running(cluster) {
        return Ok(pid);
    }
    let pid_file = pid_file(cluster);
    let _ = std::fs::remove_file(&pid_file);
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.push(format!("{PID_FILE_FLAG}={}", pid_file.display()));
    let pid = process::spawn("kubelet", program, &all, &cluster.logs())?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if running(cluster) == Some(pid) {
            return Ok(pid);
        }
        if !process::alive(pid) || Instant::now() > deadline {
            process::terminate(&[pid], Duration::from_secs(5));
            bail!(
                "the kubelet stand-in did not start within {}s; see {}",
                START_TIMEOUT.as_secs(),
                cluster.logs().join("kubelet.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops `cluster`'s stand-in and its containers, if it runs; true if it did.
pub fn stop(cluster: &Cluster) -> bool {
    let Some(pid) = running(cluster) else {
        return false;
    };
    // Beyond the containers' own grace period (15 s), so they stop cleanly.
    process::terminate(&[pid], Duration::from_secs(20));
    true
}

/// The daemon's body: runs the stand-in on `instance` until SIGTERM or SIGINT, after writing
/// its pid to `pid_file`. The containers stop with the process.
pub async fn serve(instance: &str, pid_file: &Path) -> Result<()> {
    let cluster = crate::cluster::existing(instance).await?;
    let kubelet = super::start_cluster_wide(&cluster).await?;
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    std::fs::write(pid_file, std::process::id().to_string())
        .with_context(|| format!("writing {}", pid_file.display()))?;
    eprintln!("kubelet stand-in: running the pods of cluster {instance}");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    eprintln!("kubelet stand-in: stopping");
    kubelet.stop().await;
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}
