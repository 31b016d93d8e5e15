//! The operator binary built for these tests, as a child process scoped to a test namespace.

use std::path::Path;

use testenv::TestNamespace;
pub use testenv::operator::{OperatorProcess, http_get};

/// Starts the operator against the test cluster, scoped to `ns`, with `extra` flags.
pub fn start(ns: &TestNamespace, name: &str, extra: &[&str]) -> OperatorProcess {
    start_with_kubeconfig(ns, name, &ns.cluster.kubeconfig, extra)
}

/// Like [`start`], with another kubeconfig (another identity).
pub fn start_with_kubeconfig(
    ns: &TestNamespace,
    name: &str,
    kubeconfig: &Path,
    extra: &[&str],
) -> OperatorProcess {
    let log = testenv::paths::workspace_root()
        .join("target/test-logs")
        .join(format!("{}-{name}.log", ns.name));
    OperatorProcess::start(
        Path::new(env!("CARGO_BIN_EXE_extension-server-operator")),
        name,
        &ns.name,
        kubeconfig,
        log,
        extra,
    )
    .unwrap()
}
