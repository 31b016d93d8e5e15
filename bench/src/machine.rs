//! Where the numbers come from: the machine, the build profile, the Kubernetes version.

use anyhow::{Context as _, Result};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: String,
    pub cpu_model: String,
    pub kubernetes_version: String,
    /// The `[profile.release]` settings of the workspace Cargo.toml.
    pub build_profile: String,
}

fn nproc() -> String {
    std::process::Command::new("nproc")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `release` plus the settings under `[profile.release]` in the workspace Cargo.toml.
fn release_profile() -> Result<String> {
    let manifest = std::fs::read_to_string(testenv::paths::workspace_root().join("Cargo.toml"))?;
    let settings: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[profile.release]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    Ok(format!("release ({})", settings.join(", ")))
}

pub async fn describe(client: &kube::Client) -> Result<Machine> {
    let version = client
        .apiserver_version()
        .await
        .context("reading /version")?;
    Ok(Machine {
        cores: nproc(),
        cpu_model: cpu_model(),
        kubernetes_version: version.git_version,
        build_profile: release_profile()?,
    })
}
