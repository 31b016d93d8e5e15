//! metav1.Condition helpers: `lastTransitionTime` changes only when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types, in the order `Ready` checks them.
pub const DEPLOYMENT_AVAILABLE: &str = "DeploymentAvailable";
pub const CERTIFICATE_READY: &str = "CertificateReady";
pub const REGISTERED: &str = "Registered";
pub const AVAILABLE: &str = "Available";
pub const READY: &str = "Ready";

/// A condition before timestamps: what this pass concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub type_: &'static str,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl Verdict {
    pub fn new(
        type_: &'static str,
        status: Status,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn is_true(&self) -> bool {
        self.status == Status::True
    }
}

/// Turns verdicts into conditions, keeping each `lastTransitionTime` unless its status flipped.
pub fn merge(
    previous: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    verdicts
        .iter()
        .map(|v| {
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == v.type_ && c.status == v.status.as_str())
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: v.type_.to_string(),
                status: v.status.as_str().to_string(),
                reason: v.reason.clone(),
                message: v.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// `Ready`: True when every other verdict is True, else the first one that is not.
pub fn ready(verdicts: &[Verdict]) -> Verdict {
    match verdicts.iter().find(|v| !v.is_true()) {
        None => Verdict::new(
            READY,
            Status::True,
            "Ready",
            "the extension API server is running and available through the aggregator",
        ),
        Some(first) => Verdict::new(
            READY,
            Status::False,
            first.reason.clone(),
            format!("{}: {}", first.type_, first.message),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_is_kept_unless_status_flips() {
        let first = merge(
            &[],
            &[Verdict::new(AVAILABLE, Status::False, "A", "a")],
            Some(1),
            time(10),
        );
        let same = merge(
            &first,
            &[Verdict::new(AVAILABLE, Status::False, "B", "b")],
            Some(2),
            time(20),
        );
        assert_eq!(same[0].last_transition_time, time(10));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[Verdict::new(AVAILABLE, Status::True, "C", "c")],
            Some(2),
            time(30),
        );
        assert_eq!(flipped[0].last_transition_time, time(30));
    }

    #[test]
    fn ready_names_the_first_failing_condition() {
        let verdicts = [
            Verdict::new(DEPLOYMENT_AVAILABLE, Status::True, "Ok", ""),
            Verdict::new(REGISTERED, Status::False, "Conflict", "taken"),
            Verdict::new(AVAILABLE, Status::Unknown, "NotRegistered", ""),
        ];
        let ready = ready(&verdicts);
        assert_eq!(ready.status, Status::False);
        assert_eq!(ready.reason, "Conflict");
        assert!(ready.message.starts_with("Registered: "));
    }
}
