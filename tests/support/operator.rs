//! The operator binary as a real child process: its metrics, its memory, and signals to it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;

use testenv::TestNamespace;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// One HTTP/1.1 GET to localhost; returns the status code and the body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A running `extension-server-operator` watching one test namespace.
pub struct OperatorProcess {
    pub name: String,
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts the binary against the test cluster, scoped to `ns`, with `extra` flags.
    pub fn start(ns: &TestNamespace, name: &str, extra: &[&str]) -> Self {
        Self::start_with_kubeconfig(ns, name, &ns.cluster.kubeconfig, extra)
    }

    /// Like [`start`](Self::start), with another kubeconfig (another identity).
    pub fn start_with_kubeconfig(
        ns: &TestNamespace,
        name: &str,
        kubeconfig: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let port = testenv::process::free_port().unwrap();
        let logs = testenv::paths::workspace_root().join("target/test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = logs.join(format!("{}-{name}.log", ns.name));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_extension-server-operator"))
            .arg(format!("--namespace={}", ns.name))
            .arg(format!("--metrics-address=127.0.0.1:{port}"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            name: name.to_string(),
            child,
            port,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Waits until the HTTP endpoints answer.
    pub async fn wait_listening(&self) {
        super::eventually(
            std::time::Duration::from_secs(30),
            "the operator's HTTP endpoints",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    /// The value of an unlabelled metric, e.g. `extension_server_operator_api_writes_total`.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = http_get(self.port, "/metrics").await;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from:\n{body}"))
    }

    pub async fn writes(&self) -> f64 {
        self.metric("extension_server_operator_api_writes_total")
            .await
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
