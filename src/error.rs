//! Typed errors, each naming the operation that failed, with a bounded category for metrics
//! and Event reasons.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("issuing a certificate: {0}")]
    IssueCertificate(#[from] rcgen::Error),
    #[error("reading a certificate: {0}")]
    ReadCertificate(String),
    #[error("reading {kind} {name}: {source}")]
    Get {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("serializing {0}: {1}")]
    Serialize(String, #[source] serde_json::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("ExtensionServer has no namespace")]
    MissingNamespace,
}

impl Error {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::IssueCertificate(_) | Error::ReadCertificate(_) => "Certificate",
            Error::Get { .. } => "Read",
            Error::Apply { .. } => "Apply",
            Error::Delete { .. } => "Delete",
            Error::WriteStatus(_) => "Status",
            Error::Serialize(..) => "Serialize",
            Error::Finalizer(_) => "Finalizer",
            Error::MissingNamespace => "InvalidSpec",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
