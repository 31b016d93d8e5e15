//! Builds the pinned Go binaries into the cache, once per pin.
//!
//! Each module under `testenv/go/<name>` is built into
//! `<cache>/tools/<name>-<version>-<hash>/bin`, where the hash covers go.mod, go.sum, the Go
//! version and the build flags. A completed build is never redone; a changed pin builds anew.
//!
//! Kubernetes comes in several pinned minors ([`KUBERNETES_MINORS`]): `testenv/go/kubernetes` is
//! the default, [`DEFAULT_KUBERNETES`]; the others live in `testenv/go/kubernetes-<minor>`.
//! [`KUBERNETES_ENV`] selects one for every process (`cargo xtask test --kubernetes <minor>`
//! sets it).
//!
//! Upstream aggregated servers that only some tests run ([`UPSTREAM_MODULES`]) are built
//! lazily, by [`upstream_server`] on first use, never by `cargo xtask cluster up`: the
//! control plane's cold build does not grow for someone who never runs them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::paths;

/// One pinned Go module and what it builds.
struct GoModule {
    name: &'static str,
    /// The module whose version names the cache directory.
    pinned: &'static str,
    packages: &'static [&'static str],
    /// Stamps the pinned version as the Kubernetes version (`k8s.io/component-base/version`);
    /// right for Kubernetes itself, wrong for a server versioned on its own.
    stamp_kubernetes_version: bool,
}

const MODULES: &[GoModule] = &[
    GoModule {
        name: "etcd",
        pinned: "go.etcd.io/etcd/server/v3",
        packages: &["."],
        stamp_kubernetes_version: true,
    },
    GoModule {
        name: "kubernetes",
        pinned: "k8s.io/kubernetes",
        packages: &[
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
        ],
        stamp_kubernetes_version: true,
    },
    GoModule {
        name: "kwok",
        pinned: "sigs.k8s.io/kwok",
        packages: &["sigs.k8s.io/kwok/cmd/kwok"],
        stamp_kubernetes_version: true,
    },
    GoModule {
        name: "helm",
        pinned: "helm.sh/helm/v3",
        packages: &["helm.sh/helm/v3/cmd/helm"],
        stamp_kubernetes_version: true,
    },
    GoModule {
        name: "prometheus",
        pinned: "github.com/prometheus/prometheus",
        packages: &[
            "github.com/prometheus/prometheus/cmd/promtool",
            "github.com/prometheus/prometheus/cmd/prometheus",
        ],
        stamp_kubernetes_version: true,
    },
];

/// Upstream aggregated API servers that the pod-runtime stand-in runs
/// ([`crate::runtime::IMAGES`]), built only when a test asks for one ([`upstream_server`]).
const UPSTREAM_MODULES: &[GoModule] = &[
    // The reference adapter of sigs.k8s.io/custom-metrics-apiserver: custom.metrics.k8s.io
    // v1beta1 and v1beta2, external.metrics.k8s.io v1beta1.
    GoModule {
        name: "custom-metrics-adapter",
        pinned: "sigs.k8s.io/custom-metrics-apiserver",
        packages: &["sigs.k8s.io/custom-metrics-apiserver/test-adapter"],
        stamp_kubernetes_version: false,
    },
    // metrics.k8s.io v1beta1, scraped from kubelets (kwok's resource metrics here).
    GoModule {
        name: "metrics-server",
        pinned: "sigs.k8s.io/metrics-server",
        packages: &["sigs.k8s.io/metrics-server/cmd/metrics-server"],
        stamp_kubernetes_version: false,
    },
    // custom.metrics.k8s.io (and external.metrics.k8s.io) from Prometheus queries; run by the
    // kubelet stand-in (crate::kubelet).
    GoModule {
        name: "prometheus-adapter",
        pinned: "sigs.k8s.io/prometheus-adapter",
        packages: &["sigs.k8s.io/prometheus-adapter/cmd/adapter"],
        stamp_kubernetes_version: false,
    },
    // keda-operator (`operator`) and KEDA's external.metrics.k8s.io server (`adapter`).
    GoModule {
        name: "keda",
        pinned: "github.com/kedacore/keda/v2",
        packages: &[
            "github.com/kedacore/keda/v2/cmd/operator",
            "github.com/kedacore/keda/v2/cmd/adapter",
        ],
        stamp_kubernetes_version: false,
    },
];

/// The names of the upstream servers [`upstream_server`] builds.
pub fn upstream_servers() -> Vec<&'static str> {
    UPSTREAM_MODULES.iter().map(|m| m.name).collect()
}

/// Tools the tests run that the control plane does not need, built on first use.
const ON_DEMAND_TOOLS: &[GoModule] = &[
    // The local OCI registry (`registry`, the first package) and crane, which pulls from it.
    GoModule {
        name: "containerregistry",
        pinned: "github.com/google/go-containerregistry",
        packages: &[
            "github.com/google/go-containerregistry/cmd/registry",
            "github.com/google/go-containerregistry/cmd/crane",
        ],
        stamp_kubernetes_version: false,
    },
    // Checks the GitHub workflows.
    GoModule {
        name: "actionlint",
        pinned: "github.com/rhysd/actionlint",
        packages: &["github.com/rhysd/actionlint/cmd/actionlint"],
        stamp_kubernetes_version: false,
    },
];

/// The binary of upstream server `name` (a directory under `testenv/go`, such as
/// `custom-metrics-adapter`), built into the cache on first use and reused afterwards.
/// Concurrent callers serialise on a lock file; one builds, the others wait.
pub fn upstream_server(name: &str) -> Result<PathBuf> {
    let module = UPSTREAM_MODULES
        .iter()
        .find(|m| m.name == name)
        .with_context(|| {
            format!(
                "no upstream server {name}; choose one of {}",
                upstream_servers().join(", ")
            )
        })?;
    build_on_demand(module)
}

/// The binary of tool `name` (such as `actionlint`), built on first use like
/// [`upstream_server`].
pub fn on_demand_tool(name: &str) -> Result<PathBuf> {
    let module = ON_DEMAND_TOOLS
        .iter()
        .find(|m| m.name == name)
        .with_context(|| format!("no on-demand tool {name}"))?;
    build_on_demand(module)
}

fn build_on_demand(module: &GoModule) -> Result<PathBuf> {
    let name = module.name;
    let binary = module
        .packages
        .first()
        .and_then(|p| p.rsplit('/').next())
        .context("an upstream module builds no package")?;
    let tools = paths::cache_dir().join("tools");
    std::fs::create_dir_all(&tools)?;
    let lock = std::fs::File::create(tools.join(format!("{name}.lock")))?;
    lock.lock()
        .with_context(|| format!("locking the build of {name}"))?;
    let bin = ensure_module(module, DEFAULT_KUBERNETES, &go_version()?)?;
    Ok(bin.join(binary))
}

/// The Kubernetes minors the suite is run on.
pub const KUBERNETES_MINORS: [&str; 4] = ["1.33", "1.34", "1.35", "1.36"];
/// The minor used unless [`KUBERNETES_ENV`] names another.
pub const DEFAULT_KUBERNETES: &str = "1.35";
/// Environment variable selecting the Kubernetes minor, such as `1.33`.
pub const KUBERNETES_ENV: &str = "ESO_KUBERNETES";

/// The selected Kubernetes minor: [`KUBERNETES_ENV`], or [`DEFAULT_KUBERNETES`].
pub fn selected_kubernetes() -> Result<String> {
    let minor = std::env::var(KUBERNETES_ENV).unwrap_or_else(|_| DEFAULT_KUBERNETES.into());
    check_kubernetes(&minor)?;
    Ok(minor)
}

/// Fails unless `minor` is one of [`KUBERNETES_MINORS`].
pub fn check_kubernetes(minor: &str) -> Result<()> {
    if !KUBERNETES_MINORS.contains(&minor) {
        bail!(
            "Kubernetes {minor} is not pinned; choose one of {}",
            KUBERNETES_MINORS.join(", ")
        );
    }
    Ok(())
}

/// The directory under `testenv/go` of `module` for Kubernetes `minor`.
fn module_dir_name(module: &GoModule, minor: &str) -> String {
    if module.name == "kubernetes" && minor != DEFAULT_KUBERNETES {
        format!("kubernetes-{minor}")
    } else {
        module.name.to_string()
    }
}

/// Paths of the built binaries.
#[derive(Debug, Clone)]
pub struct Tools {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubectl: PathBuf,
    pub kwok: PathBuf,
    pub helm: PathBuf,
    /// Checks and unit-tests the chart's alerting rules.
    pub promtool: PathBuf,
    /// The Prometheus server, run by the kubelet stand-in for `quay.io/prometheus/prometheus`.
    pub prometheus: PathBuf,
    /// Directories holding the binaries, for `PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// The pinned Kubernetes version, such as `v1.35.4`.
    pub kubernetes_version: String,
}

impl Tools {
    /// The binaries in the `bin` directories of [`MODULES`], in that order.
    fn in_dirs(dirs: Vec<PathBuf>, kubernetes_version: String) -> Self {
        let [etcd, kubernetes, kwok, helm, prometheus] =
            [&dirs[0], &dirs[1], &dirs[2], &dirs[3], &dirs[4]];
        Tools {
            etcd: etcd.join("etcd"),
            kube_apiserver: kubernetes.join("kube-apiserver"),
            kube_controller_manager: kubernetes.join("kube-controller-manager"),
            kube_scheduler: kubernetes.join("kube-scheduler"),
            kubectl: kubernetes.join("kubectl"),
            kwok: kwok.join("kwok"),
            helm: helm.join("helm"),
            promtool: prometheus.join("promtool"),
            prometheus: prometheus.join("prometheus"),
            bin_dirs: dirs,
            kubernetes_version,
        }
    }
}

/// Returns the cached binaries for the selected Kubernetes minor, building any module whose
/// pin has no completed build yet.
pub fn ensure_built() -> Result<Tools> {
    ensure_built_for(&selected_kubernetes()?)
}

/// Like [`ensure_built`], for Kubernetes `minor`.
pub fn ensure_built_for(minor: &str) -> Result<Tools> {
    check_kubernetes(minor)?;
    let go_version = go_version()?;
    let mut dirs = Vec::new();
    for module in MODULES {
        dirs.push(ensure_module(module, minor, &go_version)?);
    }
    Ok(Tools::in_dirs(dirs, kubernetes_version(minor)?))
}

/// Returns the cached binaries for the selected Kubernetes minor without building; fails if
/// any is missing.
pub fn built() -> Result<Tools> {
    built_for(&selected_kubernetes()?)
}

/// Returns the cached binaries for Kubernetes `minor` without building; fails if any is
/// missing.
pub fn built_for(minor: &str) -> Result<Tools> {
    let go_version = go_version()?;
    let mut dirs = Vec::new();
    for module in MODULES {
        let dir = module_cache_dir(module, minor, &go_version)?;
        if !dir.join(".complete").exists() {
            bail!(
                "{} is not built yet; run `cargo xtask cluster up` first",
                module_dir_name(module, minor)
            );
        }
        dirs.push(dir.join("bin"));
    }
    Ok(Tools::in_dirs(dirs, kubernetes_version(minor)?))
}

/// The Kubernetes version pinned for `minor`, such as `v1.35.4`.
fn kubernetes_version(minor: &str) -> Result<String> {
    let kubernetes = MODULES
        .iter()
        .find(|m| m.name == "kubernetes")
        .context("no kubernetes module")?;
    let dir = paths::go_modules_dir().join(module_dir_name(kubernetes, minor));
    let go_mod = std::fs::read_to_string(dir.join("go.mod"))
        .with_context(|| format!("reading {}", dir.join("go.mod").display()))?;
    pinned_version(&go_mod, kubernetes.pinned)
        .with_context(|| format!("{} does not pin {}", dir.display(), kubernetes.pinned))
}

fn go_version() -> Result<String> {
    let out = go_command(&paths::go_modules_dir())
        .arg("version")
        .output()
        .context("running `go version` (is Go installed and on PATH?)")?;
    if !out.status.success() {
        bail!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn go_command(dir: &Path) -> Command {
    let mut cmd = Command::new("go");
    cmd.current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly -buildvcs=false");
    cmd
}

fn pinned_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (name, version) = if first == "require" {
            (words.next()?, words.next()?)
        } else {
            (first, words.next()?)
        };
        (name == module && version.starts_with('v')).then(|| version.to_string())
    })
}

fn ldflags(module: &GoModule, version: &str) -> String {
    let mut flags = vec!["-s".to_string(), "-w".to_string()];
    if !module.stamp_kubernetes_version {
        return flags.join(" ");
    }
    // Stamp the Kubernetes version, or clients and `/version` report v0.0.0.
    let minor = version.split('.').nth(1).unwrap_or("0");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        flags.push(format!("-X {pkg}.gitVersion={version}"));
        flags.push(format!("-X {pkg}.gitMajor=1"));
        flags.push(format!("-X {pkg}.gitMinor={minor}"));
        flags.push(format!("-X {pkg}.gitTreeState=clean"));
    }
    flags.join(" ")
}

fn module_cache_dir(module: &GoModule, minor: &str, go_version: &str) -> Result<PathBuf> {
    let name = module_dir_name(module, minor);
    let dir = paths::go_modules_dir().join(&name);
    let go_mod = std::fs::read_to_string(dir.join("go.mod"))
        .with_context(|| format!("reading {}", dir.join("go.mod").display()))?;
    let go_sum = std::fs::read_to_string(dir.join("go.sum")).unwrap_or_default();
    let version = pinned_version(&go_mod, module.pinned)
        .with_context(|| format!("{} does not pin {}", dir.display(), module.pinned))?;
    let mut hasher = Sha256::new();
    for part in [
        go_mod.as_str(),
        go_sum.as_str(),
        go_version,
        &ldflags(module, &version),
        &module.packages.join(" "),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(paths::cache_dir()
        .join("tools")
        .join(format!("{name}-{version}-{hash}")))
}

fn ensure_module(module: &GoModule, minor: &str, go_version: &str) -> Result<PathBuf> {
    let target = module_cache_dir(module, minor, go_version)?;
    if target.join(".complete").exists() {
        return Ok(target.join("bin"));
    }
    let source = paths::go_modules_dir().join(module_dir_name(module, minor));
    let go_mod = std::fs::read_to_string(source.join("go.mod"))?;
    let version = pinned_version(&go_mod, module.pinned).unwrap_or_default();
    let staging = target.with_extension("partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(staging.join("bin"))?;

    eprintln!(
        "==> building {} {version} into {}",
        module.name,
        target.display()
    );
    let started = Instant::now();
    eprintln!("    downloading Go modules...");
    let status = go_command(&source)
        .args(["mod", "download"])
        .status()
        .context("go mod download")?;
    if !status.success() {
        bail!("`go mod download` failed for {}", module.name);
    }
    let total = count_packages(&source, module.packages)?;
    let mut build = go_command(&source);
    build
        .args([
            "build",
            "-v",
            "-trimpath",
            "-ldflags",
            &ldflags(module, &version),
            "-o",
        ])
        .arg(format!("{}/", staging.join("bin").display()))
        .args(module.packages)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = build.spawn().context("starting go build")?;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let mut compiled = 0usize;
        let mut last_report = Instant::now();
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            compiled += 1;
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
            if last_report.elapsed().as_secs() >= 15 {
                last_report = Instant::now();
                eprintln!(
                    "    [{}] compiled {compiled} of at most {total} packages, {}s elapsed",
                    module.name,
                    started.elapsed().as_secs()
                );
                std::io::stderr().flush().ok();
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("go build failed for {}:\n{}", module.name, tail.join("\n"));
    }
    if module.name == "kwok" {
        copy_kwok_stages(&source, &staging)?;
    }
    std::fs::write(staging.join(".complete"), format!("{go_version}\n"))?;
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&staging, &target)?;
    eprintln!(
        "==> built {} in {}s",
        module.name,
        started.elapsed().as_secs()
    );
    Ok(target.join("bin"))
}

fn count_packages(dir: &Path, packages: &[&str]) -> Result<usize> {
    let out = go_command(dir)
        .args(["list", "-deps"])
        .args(packages)
        .output()
        .context("go list -deps")?;
    if !out.status.success() {
        bail!("go list failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout.iter().filter(|b| **b == b'\n').count())
}

/// kwok's "fast" stages (node initialize, lease heartbeat, pod ready/complete/delete), copied
/// from the pinned module so the cluster does not depend on the module cache at run time.
fn copy_kwok_stages(source: &Path, staging: &Path) -> Result<()> {
    let out = go_command(source)
        .args(["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"])
        .output()?;
    let module_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let stages = module_dir.join("kustomize").join("stage");
    let dest = staging.join("stages");
    std::fs::create_dir_all(&dest)?;
    for sub in ["node/fast", "node/heartbeat-with-lease", "pod/fast"] {
        for entry in std::fs::read_dir(stages.join(sub))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                std::fs::copy(&path, dest.join(name))?;
            }
        }
    }
    Ok(())
}

/// The kwok stage files that ship next to the kwok binary.
pub fn kwok_stage_files(tools: &Tools) -> Result<Vec<PathBuf>> {
    let dir = tools
        .kwok
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("stages"))
        .context("kwok has no parent directory")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}
