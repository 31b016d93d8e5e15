//! Clean release builds of the operator package, with the workspace's release profile and with
//! cargo's plain defaults (what the profile replaced), each from an empty target directory so
//! that every dependency is compiled (LTO changes how all of them are built).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Set to 1 to measure (two clean release builds take minutes); without it the last saved
/// measurement is reported.
pub const ENV: &str = "ESO_BENCH_BUILD_TIME";

/// The profile before this change: cargo's release defaults.
const DEFAULTS: &[&str] = &[
    "--config",
    "profile.release.lto=false",
    "--config",
    "profile.release.strip=\"none\"",
    "--config",
    "profile.release.codegen-units=16",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildTimes {
    pub before_seconds: f64,
    pub after_seconds: f64,
    pub before_binary_mib: f64,
    pub after_binary_mib: f64,
}

fn clean_build(label: &str, extra: &[&str]) -> Result<(f64, f64)> {
    let dir = testenv::paths::workspace_root()
        .join("target/bench/build-time")
        .join(label);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let mut args = vec![
        "build",
        "--release",
        "--locked",
        "-p",
        "extension-server-operator",
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    testenv::cargo::run(&args, &[("CARGO_TARGET_DIR", dir.display().to_string())])?;
    let seconds = started.elapsed().as_secs_f64();
    let size = mib(&dir.join("release/extension-server-operator"))?;
    std::fs::remove_dir_all(&dir)?;
    Ok((seconds, size))
}

pub fn mib(path: &Path) -> Result<f64> {
    Ok(std::fs::metadata(path)?.len() as f64 / (1024.0 * 1024.0))
}

/// Where the last measurement is kept, so runs without `ESO_BENCH_BUILD_TIME=1` report it.
fn saved() -> std::path::PathBuf {
    testenv::paths::workspace_root().join("target/bench/build-time.json")
}

/// Measures both builds when `ESO_BENCH_BUILD_TIME=1` and saves the result; otherwise
/// returns the last saved measurement, if any.
pub fn measure() -> Result<Option<BuildTimes>> {
    if std::env::var(ENV).as_deref() != Ok("1") {
        return Ok(std::fs::read(saved())
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok()));
    }
    let (before_seconds, before_binary_mib) = clean_build("before", DEFAULTS)?;
    let (after_seconds, after_binary_mib) = clean_build("after", &[])?;
    let times = BuildTimes {
        before_seconds,
        after_seconds,
        before_binary_mib,
        after_binary_mib,
    };
    std::fs::write(saved(), serde_json::to_string_pretty(&times)?)?;
    Ok(Some(times))
}
