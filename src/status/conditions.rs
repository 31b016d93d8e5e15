//! metav1.Condition helpers: `lastTransitionTime` changes only when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::reason::{ConditionType, Reason};

/// A condition before timestamps: what this pass concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub type_: ConditionType,
    pub status: Status,
    pub reason: Reason,
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

impl Conclusion {
    pub fn new(
        type_: ConditionType,
        status: Status,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
    pub fn is_true(&self) -> bool {
        self.status == Status::True
    }
}

/// Turns conclusions into conditions, keeping each `lastTransitionTime` unless its status flipped.
pub fn merge(
    previous: &[Condition],
    conclusions: &[Conclusion],
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    conclusions
        .iter()
        .map(|v| {
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == v.type_.as_str() && c.status == v.status.as_str())
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: v.type_.as_str().to_string(),
                status: v.status.as_str().to_string(),
                reason: v.reason.as_str().to_string(),
                message: v.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// `Ready`: True when every other verdict is True, else the first one that is not. A claim
/// that cannot proceed (a conflict, a refusal) is named before anything that is only waiting.
pub fn ready(conclusions: &[Conclusion]) -> Conclusion {
    let stuck = |v: &&Conclusion| {
        v.status == Status::False
            && matches!(
                v.reason,
                Reason::Conflict
                    | Reason::ProtectedGroup
                    | Reason::NotGranted
                    | Reason::AdoptionNotAllowed
            )
    };
    let first = conclusions
        .iter()
        .find(stuck)
        .or_else(|| conclusions.iter().find(|v| !v.is_true()));
    match first {
        None => Conclusion::new(
            ConditionType::Ready,
            Status::True,
            Reason::Ready,
            "the extension API server is running and available through the aggregator",
        ),
        Some(first) => Conclusion::new(
            ConditionType::Ready,
            Status::False,
            first.reason.clone(),
            format!("{}: {}", first.type_, first.message),
        ),
    }
}

/// The condition of `type_` in a status's list.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("time"))
    }

    fn available(status: Status, reason: &str) -> Conclusion {
        Conclusion::new(
            ConditionType::Available,
            status,
            Reason::Aggregator(reason.into()),
            reason.to_lowercase(),
        )
    }

    #[test]
    fn transition_time_is_kept_unless_status_flips() {
        let first = merge(&[], &[available(Status::False, "A")], Some(1), time(10));
        let same = merge(&first, &[available(Status::False, "B")], Some(2), time(20));
        assert_eq!(same[0].last_transition_time, time(10));
        assert_eq!(same[0].observed_generation, Some(2));
        assert_eq!(same[0].reason, "B");
        let flipped = merge(&same, &[available(Status::True, "C")], Some(2), time(30));
        assert_eq!(flipped[0].last_transition_time, time(30));
    }

    #[test]
    fn ready_names_the_first_failing_condition() {
        let conclusions = [
            Conclusion::new(
                ConditionType::DeploymentAvailable,
                Status::True,
                Reason::MinimumReplicasAvailable,
                "",
            ),
            Conclusion::new(
                ConditionType::Registered,
                Status::False,
                Reason::Conflict,
                "taken",
            ),
            Conclusion::new(
                ConditionType::Available,
                Status::Unknown,
                Reason::NotRegistered,
                "",
            ),
        ];
        let ready = ready(&conclusions);
        assert_eq!(ready.status, Status::False);
        assert_eq!(ready.reason, Reason::Conflict);
        assert_eq!(ready.message, "Registered: taken");
    }

    #[test]
    fn ready_is_true_only_when_every_other_condition_is() {
        let all_true = [Conclusion::new(
            ConditionType::Available,
            Status::True,
            Reason::Passed,
            "",
        )];
        assert_eq!(ready(&all_true).reason, Reason::Ready);
        assert!(ready(&all_true).is_true());
    }
}
