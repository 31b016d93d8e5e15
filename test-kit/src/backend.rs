//! A stand-in backend for external-server tests: HTTPS on `host:port` with a given certificate,
//! answering `/apis/...` (the aggregator's discovery check) with a status the test switches,
//! and everything else (`/readyz`, `/livez`) with 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use extension_server_operator::tls::certs::KeyedCert;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The running backend; stops when dropped.
pub struct Backend {
    discovery: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// Serves on `host:port` with `cert`; discovery answers `discovery_status` until changed.
    pub async fn start(host: &str, port: u16, cert: &KeyedCert, discovery_status: u16) -> Self {
        let chain = super::der_certs(cert.cert_pem.as_bytes());
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((host, port)).await.unwrap();
        let discovery = Arc::new(AtomicU16::new(discovery_status));
        let status = discovery.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let status = status.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = vec![0u8; 4096];
                    let Ok(read) = tls.read(&mut request).await else {
                        return;
                    };
                    let text = String::from_utf8_lossy(&request[..read]);
                    let path = text.split(' ').nth(1).unwrap_or("/");
                    let code = match path.starts_with("/apis") {
                        true => status.load(Ordering::SeqCst),
                        false => 200,
                    };
                    let body = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"x/v1","resources":[]}"#;
                    let answer = format!(
                        "HTTP/1.1 {code} Answer\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { discovery, task }
    }

    /// What `/apis/...` answers from now on.
    pub fn answer_discovery(&self, status: u16) {
        self.discovery.store(status, Ordering::SeqCst);
    }
}
