//! The operator binary as a child process on the local cluster: started scoped to one
//! namespace, with its HTTP endpoints, its memory and signals at hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// One HTTP/1.1 GET to localhost; returns the status code and the body.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response: {response}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A running `extension-server-operator` watching one namespace.
pub struct OperatorProcess {
    pub name: String,
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `binary` with `--namespace=<namespace>`, `/metrics` on a free loopback port,
    /// `kubeconfig`, and `extra` flags; its output goes to `log`.
    pub fn start(
        binary: &Path,
        name: &str,
        namespace: &str,
        kubeconfig: &Path,
        log: PathBuf,
        extra: &[&str],
    ) -> Result<Self> {
        let port = crate::process::free_port()?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg(format!("--namespace={namespace}"))
            .arg(format!("--metrics-address=127.0.0.1:{port}"))
            .arg("--metrics-insecure")
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            port,
            log,
        })
    }

    pub fn pid(&self) -> Result<u32> {
        self.child.id().context("the operator has exited")
    }

    /// Re-checks `/readyz` (or, with `any_answer`, any HTTP answer) every 100 ms until it
    /// holds or `timeout` passes.
    async fn wait_http(&self, timeout: Duration, any_answer: bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticks.tick().await;
            if let Ok((status, _)) = http_get(self.port, "/readyz").await
                && (any_answer || status == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the operator's endpoints did not answer within {timeout:?}");
            }
        }
    }

    /// Waits until the HTTP endpoints answer.
    pub async fn wait_listening(&self) -> Result<()> {
        self.wait_http(Duration::from_secs(30), true).await
    }

    /// Waits until `/readyz` answers 200 (caches synced, or standing by).
    pub async fn wait_ready(&self) -> Result<()> {
        self.wait_http(Duration::from_secs(60), false).await
    }

    /// The value of an unlabelled metric, e.g. `extension_server_operator_api_writes_total`.
    pub async fn metric(&self, series: &str) -> Result<f64> {
        let (_, body) = http_get(self.port, "/metrics").await?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{series} missing from:\n{body}"))
    }

    /// Every sample of a labelled series, e.g. `extension_server_operator_api_requests_total`,
    /// as (labels, value).
    pub async fn samples(&self, series: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let (_, body) = http_get(self.port, "/metrics").await?;
        Ok(parse_samples(&body, series))
    }

    /// The sum of the samples of `series` whose labels pass `keep`.
    pub async fn metric_sum(
        &self,
        series: &str,
        keep: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> Result<f64> {
        Ok(self
            .samples(series)
            .await?
            .iter()
            .filter(|(labels, _)| keep(labels))
            .map(|(_, value)| value)
            .sum())
    }

    /// API writes the operator has sent.
    pub async fn writes(&self) -> Result<f64> {
        self.metric("extension_server_operator_api_writes_total")
            .await
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    /// Sends `signal` (such as `-TERM`) with `kill`.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid()?.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill {signal} failed");
        }
        Ok(())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The samples of `series` in a Prometheus text exposition: `name{a="x",b="y"} 3`.
pub fn parse_samples(body: &str, series: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    body.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(series)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(inner) => inner.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_string(), value.trim_matches('"').to_string()))
                })
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_samples;

    #[test]
    fn labelled_samples_are_parsed() {
        let body = "# HELP x_total X\nx_total{verb=\"get\",resource=\"secrets\"} 3\nx_total{verb=\"patch\",resource=\"extensionservers/status\"} 2\nx_total_other 9\n";
        let samples = parse_samples(body, "x_total");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].0["verb"], "get");
        assert_eq!(samples[1].0["resource"], "extensionservers/status");
        assert_eq!(samples[1].1, 2.0);
    }
}
