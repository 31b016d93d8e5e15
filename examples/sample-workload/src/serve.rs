//! An HTTP/1.1 server that answers every request with `ok` and exposes the count of the
//! requests it answered at `/metrics` (requests for `/metrics` are not counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub async fn run(listen: &str) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!("serving on {listen}");
    let served = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let served = served.clone();
        tokio::spawn(async move {
            let _ = connection(stream, &served).await;
        });
    }
}

/// Answers the requests of one connection (keep-alive) until the client closes it.
async fn connection(stream: TcpStream, served: &AtomicU64) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if lines.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut close = false;
        loop {
            let mut header = String::new();
            if lines.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            if header.trim().is_empty() {
                break;
            }
            close |= header.to_ascii_lowercase().starts_with("connection: close");
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (content_type, body) = if path == "/metrics" {
            (
                "text/plain; version=0.0.4",
                metrics(served.load(Ordering::Relaxed)),
            )
        } else {
            served.fetch_add(1, Ordering::Relaxed);
            ("text/plain", "ok\n".to_string())
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        write.write_all(response.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

fn metrics(served: u64) -> String {
    format!(
        "# HELP http_requests_total HTTP requests served.\n# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\",method=\"get\"}} {served}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_and_scrapes_are_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move { connection(stream, &counter).await });
            }
        });
        let mut stream = TcpStream::connect(address).await.unwrap();
        for path in ["/", "/work", "/metrics"] {
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
        }
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
            .await
            .unwrap();
        assert!(
            response.ends_with("http_requests_total{code=\"200\",method=\"get\"} 2\n"),
            "{response}"
        );
    }
}
