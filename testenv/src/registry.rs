//! A local OCI registry: go-containerregistry's `registry` (in memory), built from its pinned
//! module on first use, on a free loopback port. The release is pushed to it
//! (`cargo xtask release --local`), and the pod-runtime stand-in pulls images from it with
//! `crane`, from the same module.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A running registry; stopped when dropped.
pub struct Registry {
    _child: Child,
    pub port: u16,
    /// The `crane` binary built with it.
    pub crane: PathBuf,
}

impl Registry {
    /// Builds (once) and starts the registry; returns when `/v2/` answers.
    pub async fn start() -> Result<Self> {
        let registry = crate::tools::on_demand_tool("containerregistry")?;
        let crane = registry.with_file_name("crane");
        let port = crate::process::free_port()?;
        let logs = crate::paths::workspace_root().join("target/test-logs");
        std::fs::create_dir_all(&logs)?;
        let log = std::fs::File::create(logs.join(format!("registry-{port}.log")))?;
        let child = Command::new(&registry)
            .arg(format!("-port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", registry.display()))?;
        let started = Self {
            _child: child,
            port,
            crane,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticks.tick().await;
            if started.answers().await {
                return Ok(started);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the registry on port {port} did not answer within 30 s");
            }
        }
    }

    /// `127.0.0.1:<port>`, the host part of its image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn answers(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let request = "GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response).await;
        response.starts_with("HTTP/1.1 200")
    }
}
