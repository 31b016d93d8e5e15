//! A TLS handshake with the server, as the aggregator's proxy would make it.
//!
//! The aggregator's availability check skips TLS verification, so a server presenting a
//! certificate the `caBundle` does not trust still shows `Available=True` while every real request
//! fails. The operator dials the Service the same way the proxy does (ClusterIP and port, server
//! name `<svc>.<ns>.svc`, roots from the `caBundle`) and reports a failed verification.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::outcome::{Handshake, ProbeFailure};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Like [`handshake`], but waits for a permit of `limit` first, so probes stay bounded.
pub async fn bounded(
    limit: &Semaphore,
    address: &str,
    port: u16,
    server_name: &str,
    bundle_pem: &[u8],
) -> Handshake {
    let Ok(_permit) = limit.acquire().await else {
        return Handshake::Inconclusive;
    };
    handshake(address, port, server_name, bundle_pem).await
}

/// Reaches an external server as the aggregator would: TCP to `host:port`, then (with a
/// bundle) a TLS handshake verifying the certificate for `server_name`. The error says what
/// failed, for status.
pub async fn reach(
    limit: &Semaphore,
    host: &str,
    port: u16,
    server_name: &str,
    bundle_pem: Option<&[u8]>,
) -> Result<(), ProbeFailure> {
    let _permit = limit
        .acquire()
        .await
        .map_err(|e| ProbeFailure::Dial(e.to_string()))?;
    let connect = TcpStream::connect((host, port));
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            return Err(ProbeFailure::Dial(format!(
                "dial tcp {host}:{port}: {error}"
            )));
        }
        Err(_) => {
            return Err(ProbeFailure::Dial(format!(
                "dial tcp {host}:{port}: timed out after 3s"
            )));
        }
    };
    let Some(bundle_pem) = bundle_pem else {
        return Ok(());
    };
    let unusable = || ProbeFailure::Handshake("no usable TLS client configuration".into());
    let config = client_config(bundle_pem).ok_or_else(unusable)?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| ProbeFailure::Handshake(e.to_string()))?;
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            let why = format!("TLS handshake with {host}:{port} as {server_name}: {error}");
            Err(match invalid_certificate(&error) {
                true => ProbeFailure::Untrusted(why),
                false => ProbeFailure::Handshake(why),
            })
        }
        Err(_) => Err(ProbeFailure::Handshake(format!(
            "TLS handshake with {host}:{port}: timed out after 3s"
        ))),
    }
}

/// True when rustls refused the peer's certificate (it does not verify, or none was sent).
fn invalid_certificate(error: &std::io::Error) -> bool {
    matches!(
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

fn client_config(bundle_pem: &[u8]) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for block in x509_parser::pem::Pem::iter_from_buffer(bundle_pem).flatten() {
        let _ = roots.add(block.contents.into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?;
    Some(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Handshakes with `address:port` and verifies the certificate for `server_name` against
/// `bundle_pem`.
pub async fn handshake(
    address: &str,
    port: u16,
    server_name: &str,
    bundle_pem: &[u8],
) -> Handshake {
    let Some(config) = client_config(bundle_pem) else {
        return Handshake::Inconclusive;
    };
    let Ok(name) = ServerName::try_from(server_name.to_string()) else {
        return Handshake::Inconclusive;
    };
    let attempt = async {
        let stream = TcpStream::connect((address, port)).await?;
        TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
        Ok(Ok(_)) => Handshake::Trusted,
        Ok(Err(error)) => match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(reason)) => {
                Handshake::Untrusted(format!("x509: the certificate is not trusted ({reason:?})"))
            }
            _ => Handshake::Inconclusive,
        },
        Err(_) => Handshake::Inconclusive,
    }
}
