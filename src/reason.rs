//! Condition types and reasons, typed so that every place that sets or reads one agrees.

use std::fmt;

/// The condition types, in the order `Ready` checks them (after `Ready` itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionType {
    Ready,
    DeploymentAvailable,
    /// In place of DeploymentAvailable for an external server.
    BackendReachable,
    CertificateReady,
    Registered,
    Available,
}

impl ConditionType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::DeploymentAvailable => "DeploymentAvailable",
            Self::BackendReachable => "BackendReachable",
            Self::CertificateReady => "CertificateReady",
            Self::Registered => "Registered",
            Self::Available => "Available",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every reason the operator sets. `Available` may also carry the aggregator's own reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Ready: everything is True.
    Ready,
    // DeploymentAvailable
    MinimumReplicasAvailable,
    ScaledToZero,
    Progressing,
    NoReadyReplicas,
    // BackendReachable
    BackendReachable,
    BackendUnreachable,
    /// The first probe of the backend has not answered yet.
    Probing,
    // CertificateReady
    Valid,
    InsecureSkipVerify,
    SecretInvalid,
    Expired,
    // Registered
    Registered,
    Conflict,
    Unregistered,
    WaitingForCertificate,
    WaitingForReadyReplicas,
    ProtectedGroup,
    NotGranted,
    AdoptionNotAllowed,
    // Available
    Passed,
    NotRegistered,
    WaitingForAggregator,
    TlsVerificationFailed,
    // Ready, when a pass fails
    /// The spec cannot work (only with a CRD older than the operator's rules).
    InvalidSpec,
    /// A bug: the pass panicked.
    InternalError,
    /// A step failed, named `<Kind><Verb>Failed`, such as `DeploymentApplyFailed`.
    StepFailed(String),
    /// The aggregator's reason for an unavailable APIService, such as `FailedDiscoveryCheck`.
    Aggregator(String),
}

/// The reasons with a fixed spelling, for parsing.
const FIXED: [Reason; 26] = [
    Reason::Ready,
    Reason::MinimumReplicasAvailable,
    Reason::ScaledToZero,
    Reason::Progressing,
    Reason::NoReadyReplicas,
    Reason::BackendReachable,
    Reason::BackendUnreachable,
    Reason::Probing,
    Reason::Valid,
    Reason::InsecureSkipVerify,
    Reason::SecretInvalid,
    Reason::Expired,
    Reason::Registered,
    Reason::Conflict,
    Reason::Unregistered,
    Reason::WaitingForCertificate,
    Reason::WaitingForReadyReplicas,
    Reason::ProtectedGroup,
    Reason::NotGranted,
    Reason::AdoptionNotAllowed,
    Reason::Passed,
    Reason::NotRegistered,
    Reason::WaitingForAggregator,
    Reason::TlsVerificationFailed,
    Reason::InvalidSpec,
    Reason::InternalError,
];

impl Reason {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ready => "Ready",
            Self::MinimumReplicasAvailable => "MinimumReplicasAvailable",
            Self::ScaledToZero => "ScaledToZero",
            Self::Progressing => "Progressing",
            Self::NoReadyReplicas => "NoReadyReplicas",
            Self::BackendReachable => "BackendReachable",
            Self::BackendUnreachable => "BackendUnreachable",
            Self::Probing => "Probing",
            Self::Valid => "Valid",
            Self::InsecureSkipVerify => "InsecureSkipVerify",
            Self::SecretInvalid => "SecretInvalid",
            Self::Expired => "Expired",
            Self::Registered => "Registered",
            Self::Conflict => "Conflict",
            Self::Unregistered => "Unregistered",
            Self::WaitingForCertificate => "WaitingForCertificate",
            Self::WaitingForReadyReplicas => "WaitingForReadyReplicas",
            Self::ProtectedGroup => "ProtectedGroup",
            Self::NotGranted => "NotGranted",
            Self::AdoptionNotAllowed => "AdoptionNotAllowed",
            Self::Passed => "Passed",
            Self::NotRegistered => "NotRegistered",
            Self::WaitingForAggregator => "WaitingForAggregator",
            Self::TlsVerificationFailed => "TLSVerificationFailed",
            Self::InvalidSpec => "InvalidSpec",
            Self::InternalError => "InternalError",
            Self::StepFailed(reason) | Self::Aggregator(reason) => reason,
        }
    }

    /// Reads a reason back from a condition; `...Failed` is a failed step, other unknown
    /// spellings are the aggregator's.
    pub fn parse(text: &str) -> Self {
        if let Some(fixed) = FIXED.iter().find(|r| r.as_str() == text) {
            return fixed.clone();
        }
        if text.ends_with("Failed") {
            return Self::StepFailed(text.to_string());
        }
        Self::Aggregator(text.to_string())
    }

    /// The reason for a failed pass.
    pub fn for_failure(error: &crate::error::Error) -> Self {
        Self::parse(&error.reason())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_reasons_round_trip_and_others_are_the_aggregators() {
        for reason in FIXED {
            assert_eq!(Reason::parse(reason.as_str()), reason);
        }
        assert_eq!(
            Reason::parse("FailedDiscoveryCheck"),
            Reason::Aggregator("FailedDiscoveryCheck".into())
        );
        assert_eq!(
            Reason::parse("DeploymentApplyFailed"),
            Reason::StepFailed("DeploymentApplyFailed".into())
        );
    }
}
