//! The one HTTP request a probe makes: `GET <path>`, reading only the status line.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest status line read.
const MAX_STATUS_LINE: usize = 1024;

/// Sends `GET path` to `host` over `stream` and returns the status code.
pub async fn status<S>(stream: &mut S, host: &str, path: &str) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nUser-Agent: extension-server-operator\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut buffer = [0u8; 256];
    while !line.windows(2).any(|w| w == b"\r\n") && line.len() < MAX_STATUS_LINE {
        let read = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if read == 0 {
            break;
        }
        line.extend_from_slice(&buffer[..read]);
    }
    parse_status(&line).ok_or_else(|| "no HTTP status line in the answer".to_string())
}

/// The code of an HTTP/1.x status line.
fn parse_status(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.split(|b| *b == b'\r').next()?).ok()?;
    let mut parts = text.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_http_status_line_gives_a_code() {
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(
            parse_status(b"HTTP/1.0 200 OK\r\nContent-Type: x"),
            Some(200)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[tokio::test]
    async fn the_request_names_the_path_and_the_status_is_read() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let answer = tokio::spawn(async move {
            let mut request = vec![0u8; 512];
            let read = server.read(&mut request).await.expect("read");
            server
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        let code = status(&mut client, "s.ns.svc", "/apis/g.example.com/v1").await;
        assert_eq!(code, Ok(503));
        let request = answer.await.expect("server");
        assert!(request.starts_with("GET /apis/g.example.com/v1 HTTP/1.1\r\nHost: s.ns.svc\r\n"));
    }
}
