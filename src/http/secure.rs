//! The TLS side of the secure metrics endpoint: a serving certificate from `--metrics-cert-dir`
//! (`tls.crt`, `tls.key`), or a self-signed one made at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::tls::certs;

/// Why the endpoint has no TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics serving certificate or key: {0}")]
    Pem(String),
    #[error("making a self-signed metrics certificate: {0}")]
    Generate(#[from] crate::error::Error),
}

/// The acceptor for `cert_dir`'s `tls.crt` and `tls.key`, or for a self-signed certificate.
pub fn acceptor(cert_dir: Option<&Path>) -> Result<TlsAcceptor, SecureError> {
    let (cert_pem, key_pem) = match cert_dir {
        Some(dir) => (read(&dir.join("tls.crt"))?, read(&dir.join("tls.key"))?),
        None => {
            let lifetime = Duration::from_secs(365 * 24 * 3600);
            let ca = certs::generate_ca(
                "extension-server-operator metrics",
                Timestamp::now(),
                lifetime,
            )?;
            let names = ["localhost".to_string()];
            let serving = certs::issue_serving(&ca, &names, Timestamp::now(), lifetime)?;
            (serving.cert_pem.into_bytes(), serving.key_pem.into_bytes())
        }
    };
    server_config(&cert_pem, &key_pem).map(|c| TlsAcceptor::from(Arc::new(c)))
}

/// A rustls server configuration for one certificate chain and key (PEM).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, SecureError> {
    let pem = |e: rustls::pki_types::pem::Error| SecureError::Pem(e.to_string());
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| SecureError::Pem(e.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>, SecureError> {
    std::fs::read(path).map_err(|source| SecureError::Read {
        path: path.display().to_string(),
        source,
    })
}
