//! A load generator: GET requests to one URL at a fixed rate, each on a connection of its
//! own, so a Service spreads them over its pods.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn run(url: &str, rate: f64) -> Result<()> {
    if !(rate > 0.0 && rate.is_finite()) {
        bail!("--rate must be a positive number of requests per second");
    }
    let (host, path) = split(url)?;
    eprintln!("sending {rate} requests per second to {url}");
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (host, path) = (host.clone(), path.clone());
        tokio::spawn(async move {
            if let Err(error) = get(&host, &path).await {
                eprintln!("GET {host}{path}: {error:#}");
            }
        });
    }
}

/// `http://host:port/path` as (`host:port`, `/path`).
fn split(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, format!("/{path}")))
}

async fn get(host: &str, path: &str) -> Result<()> {
    let mut stream = TcpStream::connect(host).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.1 2") {
        bail!("{}", String::from_utf8_lossy(&response));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split("http://workload.demo.svc:8080/work").unwrap(),
            ("workload.demo.svc:8080".into(), "/work".into())
        );
        assert_eq!(split("http://w").unwrap(), ("w:80".into(), "/".into()));
        assert!(split("https://w").is_err());
    }
}
