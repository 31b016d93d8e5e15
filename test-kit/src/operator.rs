//! The operator binary built for the tests, as a child process scoped to a test namespace.
//!
//! Only an integration test of the operator's package can name the binary cargo built for it
//! (`env!("CARGO_BIN_EXE_extension-server-operator")`), so the test binary passes it in.

use std::path::Path;

use testenv::TestNamespace;
pub use testenv::operator::{OperatorProcess, http_get};

/// Starts `binary` against the test cluster, scoped to `ns`, with `extra` flags.
pub fn start(
    binary: impl AsRef<Path>,
    ns: &TestNamespace,
    name: &str,
    extra: &[&str],
) -> OperatorProcess {
    start_with_kubeconfig(binary, ns, name, &ns.cluster.kubeconfig, extra)
}

/// Like [`start`], with another kubeconfig (another identity).
pub fn start_with_kubeconfig(
    binary: impl AsRef<Path>,
    ns: &TestNamespace,
    name: &str,
    kubeconfig: &Path,
    extra: &[&str],
) -> OperatorProcess {
    let log = testenv::paths::workspace_root()
        .join("target/test-logs")
        .join(format!("{}-{name}.log", ns.name));
    OperatorProcess::start(binary.as_ref(), name, &ns.name, kubeconfig, log, extra).unwrap()
}
