//! Typed errors, each naming the operation that failed, with a bounded category (the step and
//! the kind it acted on) for metrics and Event reasons.

use std::borrow::Cow;

use thiserror::Error;

/// The kind of object an operation acted on, such as `Deployment`.
pub type Kind = Cow<'static, str>;

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
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {name} is still being deleted")]
    StillDeleting { kind: Kind, name: String },
    #[error("writing status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("serializing {0}: {1}")]
    Serialize(Kind, #[source] serde_json::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("ExtensionServer has no namespace")]
    MissingNamespace,
}

impl Error {
    /// A bounded label naming the failed step, for metrics and Event reasons: `InvalidSpec`,
    /// `Certificate`, `Read<Kind>`, `Apply<Kind>`, `Delete<Kind>`, `WriteStatus`, `Finalizer`.
    pub fn category(&self) -> Cow<'static, str> {
        match self {
            Error::InvalidSpec(_) | Error::MissingNamespace => "InvalidSpec".into(),
            Error::IssueCertificate(_) | Error::ReadCertificate(_) => "Certificate".into(),
            Error::Get { kind, .. } => format!("Read{kind}").into(),
            Error::Apply { kind, .. } => format!("Apply{kind}").into(),
            Error::Delete { kind, .. } | Error::StillDeleting { kind, .. } => {
                format!("Delete{kind}").into()
            }
            Error::WriteStatus(_) => "WriteStatus".into(),
            Error::Serialize(kind, _) => format!("Serialize{kind}").into(),
            Error::Finalizer(_) => "Finalizer".into(),
        }
    }

    /// Unwraps the finalizer's error so a failure inside apply or cleanup keeps its own step.
    pub fn from_finalizer(error: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match error {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            other => Error::Finalizer(Box::new(other)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::finalizer::Error as F;

    fn api_error() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("denied", "Forbidden")
                .with_code(403)
                .boxed(),
        )
    }

    #[test]
    fn categories_name_the_step_and_kind() {
        let apply = Error::Apply {
            kind: "Deployment".into(),
            name: "x".into(),
            source: api_error(),
        };
        assert_eq!(apply.category(), "ApplyDeployment");
        let cleanup = Error::from_finalizer(F::CleanupFailed(Error::Delete {
            kind: "APIService".into(),
            name: "v1.g".into(),
            source: api_error(),
        }));
        assert_eq!(cleanup.category(), "DeleteAPIService");
        let add = Error::from_finalizer(F::AddFinalizer(api_error()));
        assert_eq!(add.category(), "Finalizer");
    }
}
