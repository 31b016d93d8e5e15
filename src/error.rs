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

/// Whether a failure is the API server's passing trouble or one that stays until something
/// changes; retries after the first kind wait less.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    Transient,
    Lasting,
}

/// A 5xx, a 429, a 409 (another write came first), or no answer at all.
pub fn passing_trouble(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || matches!(status.code, 409 | 429),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
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

    /// Whether the failure is the API server's passing trouble (a 5xx, a 429, a conflict, a
    /// timeout or a dropped connection), retried within half a minute, or one that lasts until
    /// something changes.
    pub fn persistence(&self) -> Persistence {
        use kube::runtime::finalizer::Error as F;
        let source = match self {
            Error::Get { source, .. }
            | Error::Apply { source, .. }
            | Error::Delete { source, .. }
            | Error::WriteStatus(source) => source,
            Error::Finalizer(inner) => match inner.as_ref() {
                F::AddFinalizer(source) | F::RemoveFinalizer(source) => source,
                F::ApplyFailed(inner) | F::CleanupFailed(inner) => return inner.persistence(),
                _ => return Persistence::Lasting,
            },
            Error::StillDeleting { .. } => return Persistence::Transient,
            _ => return Persistence::Lasting,
        };
        if passing_trouble(source) {
            Persistence::Transient
        } else {
            Persistence::Lasting
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
        api_error_with(403)
    }

    fn api_error_with(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("denied", "Forbidden")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn the_api_servers_passing_trouble_is_transient_and_refusals_last() {
        let read = |source| Error::Get {
            kind: "Secret".into(),
            name: "ns/x-ca".into(),
            source,
        };
        for code in [500, 503, 429, 409] {
            assert_eq!(
                read(api_error_with(code)).persistence(),
                Persistence::Transient
            );
        }
        let timeout =
            kube::Error::Service(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)));
        assert_eq!(read(timeout).persistence(), Persistence::Transient);
        for code in [400, 403, 404, 422] {
            assert_eq!(
                read(api_error_with(code)).persistence(),
                Persistence::Lasting
            );
        }
        let add = Error::Finalizer(Box::new(F::AddFinalizer(api_error_with(500))));
        assert_eq!(add.persistence(), Persistence::Transient);
        assert_eq!(
            Error::InvalidSpec("x".into()).persistence(),
            Persistence::Lasting
        );
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
