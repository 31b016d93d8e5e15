//! A TLS handshake with the server, as the aggregator's proxy would make it.
//!
//! The aggregator's availability check skips TLS verification, so a server presenting a
//! certificate the `caBundle` does not trust still shows `Available=True` while every real request
//! fails. The operator dials the Service the same way the proxy does (ClusterIP and port, server
//! name `<svc>.<ns>.svc`, roots from the `caBundle`) and reports a failed verification.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Handshake, ProbeFailure};
use crate::trust::hosts::restricted_address;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Reaches an external server as the aggregator would: TCP to `host:port`, then (with a
/// bundle) a TLS handshake verifying the certificate for `server_name`. The error says what
/// failed, for status. With `screen`, a name that resolves only to restricted addresses
/// (`screen` holds the kubernetes Service's ClusterIP) is not dialled.
pub async fn dial(
    host: &str,
    port: u16,
    server_name: &str,
    bundle_pem: Option<&[u8]>,
    screen: Option<&[String]>,
) -> Result<(), ProbeFailure> {
    let stream = connect(host, port, screen).await?;
    let Some(bundle_pem) = bundle_pem else {
        return Ok(());
    };
    let config = client_config(bundle_pem).ok_or_else(unusable)?;
    tls(stream, config, host, port, server_name).await.map(drop)
}

/// Asks `GET path` (`/apis/<group>/<version>`) as the aggregator's availability check does,
/// over TLS verified against the bundle (unverified without one: mode Insecure). Answers
/// are 2xx and 3xx, as for the aggregator, and 401 or 403: the operator sends no credential
/// (it never hands one to a tenant's server), and a server's authentication answering means
/// its API is served.
pub async fn discover(
    host: &str,
    port: u16,
    server_name: &str,
    bundle_pem: Option<&[u8]>,
    screen: Option<&[String]>,
    path: &str,
) -> Result<(), ProbeFailure> {
    let stream = connect(host, port, screen).await?;
    let config = match bundle_pem {
        Some(bundle) => client_config(bundle),
        None => unverified_config(),
    };
    let mut stream = tls(
        stream,
        config.ok_or_else(unusable)?,
        host,
        port,
        server_name,
    )
    .await?;
    let asked = super::http::status(&mut stream, server_name, path);
    let status = match tokio::time::timeout(HANDSHAKE_TIMEOUT, asked).await {
        Ok(Ok(status)) => status,
        Ok(Err(why)) => {
            return Err(ProbeFailure::Discovery(format!(
                "GET {path} on {host}:{port}: {why}"
            )));
        }
        Err(_) => {
            return Err(ProbeFailure::Discovery(format!(
                "GET {path} on {host}:{port}: no answer within 3s"
            )));
        }
    };
    match status {
        200..=399 | 401 | 403 => Ok(()),
        other => Err(ProbeFailure::Discovery(format!(
            "GET {path} on {host}:{port} answered {other}"
        ))),
    }
}

fn unusable() -> ProbeFailure {
    ProbeFailure::Handshake("no usable TLS client configuration".into())
}

/// TCP to `host:port` (screened: see [`dial`]), within the timeout.
async fn connect(
    host: &str,
    port: u16,
    screen: Option<&[String]>,
) -> Result<TcpStream, ProbeFailure> {
    let address = match screen {
        Some(apiserver) => Some(screened(host, port, apiserver).await?),
        None => None,
    };
    let connect = async {
        match address {
            Some(address) => TcpStream::connect(address).await,
            None => TcpStream::connect((host, port)).await,
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(ProbeFailure::Dial(format!(
            "dial tcp {host}:{port}: {error}"
        ))),
        Err(_) => Err(ProbeFailure::Dial(format!(
            "dial tcp {host}:{port}: timed out after 3s"
        ))),
    }
}

/// The TLS handshake over `stream`, as `server_name`, within the timeout.
async fn tls(
    stream: TcpStream,
    config: rustls::ClientConfig,
    host: &str,
    port: u16,
    server_name: &str,
) -> Result<TlsStream<TcpStream>, ProbeFailure> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| ProbeFailure::Handshake(e.to_string()))?;
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
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

/// The address to dial for `host`, only when none of the addresses it resolves to is
/// restricted: the aggregator resolves the name on its own and may pick any of them.
async fn screened(host: &str, port: u16, apiserver: &[String]) -> Result<SocketAddr, ProbeFailure> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ProbeFailure::Dial(format!("dial tcp {host}:{port}: {e}")))?
        .collect();
    screen(host, port, &addresses, apiserver)
}

/// Pure part of [`screened`]: the first address, unless any of them is restricted.
fn screen(
    host: &str,
    port: u16,
    addresses: &[SocketAddr],
    apiserver: &[String],
) -> Result<SocketAddr, ProbeFailure> {
    let first = addresses
        .first()
        .ok_or_else(|| ProbeFailure::Dial(format!("dial tcp {host}:{port}: no address")))?;
    match addresses
        .iter()
        .find_map(|a| restricted_address(a.ip(), apiserver).map(|why| (a.ip(), why)))
    {
        Some((ip, why)) => Err(ProbeFailure::Restricted(format!(
            "{host} resolves to {ip}, {why}, which opens only to a grant that lists {host} exactly; not dialled"
        ))),
        None => Ok(*first),
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

/// A client that accepts any certificate (signatures still checked): mode Insecure, where the
/// aggregator does not verify either.
fn unverified_config() -> Option<rustls::ClientConfig> {
    let builder = config_builder()?;
    let verifier = Arc::new(super::insecure::AnyCertificate(
        builder.crypto_provider().clone(),
    ));
    Some(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
}

fn client_config(bundle_pem: &[u8]) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for block in x509_parser::pem::Pem::iter_from_buffer(bundle_pem).flatten() {
        let _ = roots.add(block.contents.into());
    }
    Some(
        config_builder()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A client configuration with the ring provider and its safe protocol versions.
fn config_builder() -> Option<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_restricted_address_among_several_closes_the_host() {
        let open: SocketAddr = "192.0.2.7:443".parse().expect("address");
        let loopback: SocketAddr = "127.0.0.1:443".parse().expect("address");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:443".parse().expect("address");
        assert_eq!(screen("h", 443, &[open], &[]), Ok(open));
        for addresses in [vec![open, loopback], vec![loopback, open], vec![mapped]] {
            let refused = screen("h", 443, &addresses, &[]);
            assert!(
                matches!(refused, Err(ProbeFailure::Restricted(_))),
                "{addresses:?}"
            );
        }
        let kubernetes: SocketAddr = "10.96.0.1:443".parse().expect("address");
        assert!(screen("h", 443, &[open, kubernetes], &["10.96.0.1".to_string()]).is_err());
        assert!(screen("h", 443, &[], &[]).is_err());
    }
}
