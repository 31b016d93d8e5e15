//! Status after a failed pass: `Ready=False` naming the step, the rest as last observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{self, Conclusion, Status};
use crate::crd::ExtensionServerStatus;
use crate::reason::{ConditionType, Reason};

/// `previous` with `Ready=False` (`reason`, `message`) at `generation`. The other conditions
/// keep their own observedGeneration: they still describe what was last seen.
pub fn failed(
    previous: Option<&ExtensionServerStatus>,
    generation: Option<i64>,
    reason: Reason,
    message: &str,
    now: Time,
) -> ExtensionServerStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let verdict = Conclusion::new(ConditionType::Ready, Status::False, reason, message);
    let ready = conditions::merge(&status.conditions, &[verdict], generation, now);
    status
        .conditions
        .retain(|c| c.type_ != ConditionType::Ready.as_str());
    status.conditions.splice(0..0, ready);
    status.observed_generation = generation;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("time"))
    }

    fn ready(
        status: &ExtensionServerStatus,
    ) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        conditions::find(&status.conditions, ConditionType::Ready).expect("Ready")
    }

    #[test]
    fn a_failure_sets_ready_false_at_the_current_generation_and_keeps_the_rest() {
        let registered = Conclusion::new(
            ConditionType::Registered,
            Status::True,
            Reason::Registered,
            "ok",
        );
        let ok = Conclusion::new(ConditionType::Ready, Status::True, Reason::Ready, "ok");
        let previous = ExtensionServerStatus {
            observed_generation: Some(1),
            conditions: conditions::merge(&[], &[ok, registered], Some(1), time(10)),
            ..Default::default()
        };
        let reason = Reason::StepFailed("DeploymentApplyFailed".into());
        let failed_once = failed(Some(&previous), Some(2), reason.clone(), "denied", time(20));
        assert_eq!(failed_once.observed_generation, Some(2));
        let condition = ready(&failed_once);
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "DeploymentApplyFailed")
        );
        assert_eq!(condition.observed_generation, Some(2));
        assert_eq!(condition.last_transition_time, time(20));
        let registered = conditions::find(&failed_once.conditions, ConditionType::Registered);
        assert_eq!(registered.and_then(|c| c.observed_generation), Some(1));

        // The same failure again changes nothing, so nothing is written.
        let again = failed(Some(&failed_once), Some(2), reason, "denied", time(30));
        assert_eq!(again, failed_once);
    }
}
