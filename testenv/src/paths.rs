//! Where the test environment keeps its source pins, build cache and cluster state.

use std::path::PathBuf;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The pinned Go modules that build the control plane, kwok and helm.
pub fn go_modules_dir() -> PathBuf {
    workspace_root().join("testenv").join("go")
}

/// The build cache, outside the repository: `$ESO_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/extension-server-operator`, else `~/.cache/extension-server-operator`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ESO_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("extension-server-operator")
}

/// Runtime state of one named local cluster: PKI, kubeconfigs, etcd data and logs.
pub fn cluster_dir(instance: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join("cluster")
        .join(instance)
}
