//! `cargo xtask image`: the static operator binary, built with cargo outside the image, and the
//! image around it, built with podman from the repository's Dockerfile. Tagged with the crate's
//! version and the git revision, with the OCI labels. Writes the reference, the image's size and
//! the binary's to `target/image/report.json`, and fails past either goal.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::cmd::{output, run};

/// The image the chart deploys by default (`image.repository`).
pub const REPOSITORY: &str = "ghcr.io/aggregation-dev/extension-server-operator";
/// The one Rust target this machine has; the release workflow adds aarch64.
const TARGET: &str = "x86_64-unknown-linux-gnu";
const BINARY: &str = "extension-server-operator";
/// The image's size goal.
const MAX_MIB: f64 = 15.0;
/// The static binary's size goal, guarded here because `cargo xtask test` builds it anyway.
const MAX_BINARY_MIB: f64 = 12.0;
/// Where the built image's reference and size are written, under `target/image/`.
const REPORT: &str = "report.json";

/// A built image.
pub struct Image {
    pub version: String,
    pub revision: String,
    /// `<repository>:<version>`.
    pub reference: String,
    pub size_mib: f64,
}

/// Builds the static binary and the image, and checks what the chart relies on.
pub fn build() -> Result<Image> {
    let root = testenv::paths::workspace_root();
    let version = crate_version(&root)?;
    let revision = git(&root, &["rev-parse", "--short=12", "HEAD"])?;
    eprintln!("==> static {BINARY} {version} ({revision}) for {TARGET}");
    crate::cmd::cargo(
        &[
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--bin",
            BINARY,
        ],
        &[("RUSTFLAGS", "-C target-feature=+crt-static".into())],
    )?;
    let context = root.join("target/image");
    let staged = context.join("amd64").join(BINARY);
    std::fs::create_dir_all(context.join("amd64"))?;
    std::fs::copy(
        root.join("target")
            .join(TARGET)
            .join("release")
            .join(BINARY),
        &staged,
    )?;
    let binary_mib = std::fs::metadata(&staged)?.len() as f64 / (1024.0 * 1024.0);
    ensure!(
        binary_mib <= MAX_BINARY_MIB,
        "the static binary is {binary_mib:.2} MiB, over its {MAX_BINARY_MIB} MiB goal"
    );
    ensure_podman()?;
    let reference = format!("{REPOSITORY}:{version}");
    eprintln!("==> podman build {reference}");
    podman_build(
        &version,
        &revision,
        &[
            reference.clone(),
            format!("{REPOSITORY}:{version}-{revision}"),
        ],
    )?;
    let size_mib = check(&reference, &version, &revision)?;
    eprintln!(
        "==> {reference}: {size_mib:.1} MiB (binary {binary_mib:.2} MiB), user 65532:65532, entrypoint /{BINARY}"
    );
    let report = serde_json::json!({
        "reference": reference,
        "size_mib": size_mib,
        "binary_mib": binary_mib,
    });
    std::fs::write(
        context.join(REPORT),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    Ok(Image {
        version,
        revision,
        reference,
        size_mib,
    })
}

/// The same binary as `image`, labelled and tagged as `version` (the "new release" of the
/// upgrade test). Returns its reference.
pub fn as_version(image: &Image, version: &str) -> Result<String> {
    let reference = format!("{REPOSITORY}:{version}");
    eprintln!("==> podman build {reference}");
    podman_build(version, &image.revision, std::slice::from_ref(&reference))?;
    Ok(reference)
}

/// Builds the Dockerfile over the staged binary in `target/image` with the OCI labels.
fn podman_build(version: &str, revision: &str, tags: &[String]) -> Result<()> {
    let root = testenv::paths::workspace_root();
    let mut build = Command::new("podman");
    build
        .args(["build", "--quiet", "--no-cache", "--file"])
        .arg(root.join("Dockerfile"))
        .args(["--build-arg", "TARGETARCH=amd64"])
        .arg(format!("--build-arg=VERSION={version}"))
        .arg(format!("--build-arg=REVISION={revision}"));
    for tag in tags {
        build.args(["--tag", tag]);
    }
    run(build.arg(root.join("target/image")))
}

/// Inspects the image: non-root numeric user, the operator as entrypoint with `run`, the OCI
/// labels, the size goal, and the binary in its filesystem runs. Returns the size in MiB.
fn check(reference: &str, version: &str, revision: &str) -> Result<f64> {
    let inspect = output(Command::new("podman").args(["image", "inspect", reference]))?;
    let inspected: serde_json::Value = serde_json::from_str(&inspect)?;
    let image = &inspected[0];
    let config = &image["Config"];
    ensure!(config["User"] == "65532:65532", "user: {}", config["User"]);
    ensure!(
        config["Entrypoint"] == serde_json::json!([format!("/{BINARY}")]),
        "entrypoint: {}",
        config["Entrypoint"]
    );
    ensure!(
        config["Cmd"] == serde_json::json!(["run"]),
        "cmd: {}",
        config["Cmd"]
    );
    let labels = &config["Labels"];
    for (key, want) in [
        ("org.opencontainers.image.version", version),
        ("org.opencontainers.image.revision", revision),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
    ] {
        ensure!(labels[key] == want, "label {key}: {}", labels[key]);
    }
    ensure!(
        labels["org.opencontainers.image.source"].is_string(),
        "no source label"
    );
    let size_mib = image["Size"].as_f64().unwrap_or(f64::MAX) / (1024.0 * 1024.0);
    ensure!(
        size_mib <= MAX_MIB,
        "{size_mib:.1} MiB is over {MAX_MIB} MiB"
    );
    // `podman run` cannot start containers on this machine, so the image's own file is run.
    let root = exported(reference)?;
    let printed = output(Command::new(root.join(BINARY)).arg("--version"))?;
    ensure!(printed.contains(version), "--version printed {printed}");
    Ok(size_mib)
}

/// The image's filesystem, unpacked under `target/image/rootfs`.
fn exported(reference: &str) -> Result<PathBuf> {
    let root = testenv::paths::workspace_root().join("target/image/rootfs");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let container = output(Command::new("podman").args(["create", reference]))?;
    let tar = root.with_extension("tar");
    let exported = run(Command::new("podman")
        .args(["export", "--output"])
        .arg(&tar)
        .arg(container.trim()));
    run(Command::new("podman").args(["rm", container.trim()]))?;
    exported?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&root))?;
    Ok(root)
}

/// Installs podman from Debian's packages when it is missing.
fn ensure_podman() -> Result<()> {
    if Command::new("podman").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("==> installing podman (apt-get)");
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "podman"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("podman is needed for the image; install it with apt-get install podman")
}

/// The version in the workspace root's `Cargo.toml` (`[package]`).
fn crate_version(root: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("no version in Cargo.toml")
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    output(Command::new("git").arg("-C").arg(root).args(args)).map(|s| s.trim().to_string())
}
