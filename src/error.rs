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
    #[error("reading {kind} {name}: {}", api_message(source))]
    Get {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {kind} {name}: {}", api_message(source))]
    Apply {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {}", api_message(source))]
    Delete {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {name} is still being deleted")]
    StillDeleting { kind: Kind, name: String },
    #[error("writing status: {}", api_message(.0))]
    WriteStatus(#[source] kube::Error),
    #[error("serializing {0}: {1}")]
    Serialize(Kind, #[source] serde_json::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("ExtensionServer has no namespace")]
    MissingNamespace,
    #[error("internal error (a bug in the operator; please report it): {0}")]
    Panicked(String),
}

/// The API server's own message for a refused request, without the debug dump.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
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
            Error::Panicked(_) => "Internal".into(),
        }
    }

    /// The `Ready` condition's reason for this failure, naming the step: `InvalidSpec`,
    /// `CertificateFailed`, `<Kind>ReadFailed`, `<Kind>ApplyFailed`, `<Kind>DeleteFailed`,
    /// `StatusWriteFailed`, `FinalizerFailed` or `InternalError`.
    pub fn reason(&self) -> String {
        match self {
            Error::InvalidSpec(_) | Error::MissingNamespace => "InvalidSpec".into(),
            Error::IssueCertificate(_) | Error::ReadCertificate(_) => "CertificateFailed".into(),
            Error::Get { kind, .. } => format!("{kind}ReadFailed"),
            Error::Apply { kind, .. } => format!("{kind}ApplyFailed"),
            Error::Delete { kind, .. } | Error::StillDeleting { kind, .. } => {
                format!("{kind}DeleteFailed")
            }
            Error::WriteStatus(_) => "StatusWriteFailed".into(),
            Error::Finalizer(_) => "FinalizerFailed".into(),
            Error::Serialize(..) | Error::Panicked(_) => "InternalError".into(),
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

    #[test]
    fn reasons_name_the_step_and_messages_carry_the_api_servers_words() {
        let apply = Error::Apply {
            kind: "Deployment".into(),
            name: "ns/x".into(),
            source: api_error(),
        };
        assert_eq!(apply.reason(), "DeploymentApplyFailed");
        assert_eq!(apply.to_string(), "applying Deployment ns/x: denied");
        assert_eq!(Error::Panicked("boom".into()).reason(), "InternalError");
    }
}
