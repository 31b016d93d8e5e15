//! Events: one per transition of a condition (Registered, Unregistered, Conflict, Available,
//! DiscoveryFailed), one per TLS step, and one per delegated-auth binding put back.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use crate::context::Context;
use crate::crd::ExtensionServerStatus;
use crate::names::{KUBE_SYSTEM, ServerNames};
use crate::outcome::Restored;
use crate::status::conditions::find;
use crate::status::{ConditionType, Reason};
use crate::tls::TlsEvent;

/// The Events implied by the change from `old` to `new`, by the TLS step and by restored
/// bindings. Pure.
pub fn transitions(
    old: Option<&ExtensionServerStatus>,
    new: &ExtensionServerStatus,
    tls: &[TlsEvent],
    restored: &[Restored],
    names: &ServerNames,
) -> Vec<Event> {
    let mut events = Vec::new();
    let changed = |type_: ConditionType| {
        let before = old
            .and_then(|s| find(&s.conditions, type_))
            .map(|c| (c.status.as_str(), c.reason.as_str()));
        find(&new.conditions, type_)
            .filter(|a| before != Some((a.status.as_str(), a.reason.as_str())))
    };
    if let Some(c) = changed(ConditionType::Registered) {
        match (c.status.as_str(), Reason::parse(&c.reason)) {
            ("True", _) => events.push(event(EventType::Normal, "Registered", &c.message)),
            (_, Reason::Conflict) => events.push(event(EventType::Warning, "Conflict", &c.message)),
            (
                _,
                reason @ (Reason::ProtectedGroup | Reason::NotGranted | Reason::AdoptionNotAllowed),
            ) => events.push(event(EventType::Warning, reason.as_str(), &c.message)),
            (_, Reason::ScaledToZero | Reason::Unregistered) => {
                events.push(event(EventType::Normal, "Unregistered", &c.message))
            }
            _ => {}
        }
    }
    if let Some(c) = changed(ConditionType::CertificateReady).filter(|c| c.status == "False") {
        events.push(event(EventType::Warning, &c.reason, &c.message));
    }
    if let Some(c) = changed(ConditionType::Available) {
        match c.status.as_str() {
            "True" => events.push(event(EventType::Normal, "Available", &c.message)),
            "False" => events.push(event(EventType::Warning, "DiscoveryFailed", &c.message)),
            _ => {}
        }
    }
    events.extend(tls.iter().map(|step| tls_event(*step, names)));
    for binding in restored {
        let note = match binding {
            Restored::AuthDelegator => format!(
                "ClusterRoleBinding {} was missing and has been restored; while it was missing the server could not create TokenReviews or SubjectAccessReviews, so every request through the aggregator failed authorization",
                names.cluster_role_binding()
            ),
            Restored::AuthReader => format!(
                "RoleBinding {KUBE_SYSTEM}/{} was missing and has been restored; while it was missing the server could not read {KUBE_SYSTEM}/extension-apiserver-authentication, so it could not authenticate the aggregator; pods that started meanwhile must be restarted",
                names.auth_reader_binding()
            ),
        };
        events.push(event(EventType::Warning, "RBACRestored", &note));
    }
    events
}

/// The Event of one TLS step.
fn tls_event(step: TlsEvent, names: &ServerNames) -> Event {
    let normal = |reason, note| event(EventType::Normal, reason, note);
    match step {
        TlsEvent::CaCreated => normal("CACreated", "created the certificate authority"),
        TlsEvent::CaRecreated => event(
            EventType::Warning,
            "CARecreated",
            &format!(
                "Secret {}/{} was missing: created a new CA; the CA the APIServices trusted stays in their caBundle until the pods serve a certificate from the new one",
                names.namespace,
                names.ca_secret()
            ),
        ),
        TlsEvent::CaRotationStarted => normal(
            "CARotationStarted",
            "added a new CA to the APIServices' caBundle next to the old one",
        ),
        TlsEvent::CaPromoted => normal(
            "CAPromoted",
            "the new CA now signs the serving certificate; the old CA stays trusted until the pods roll",
        ),
        TlsEvent::CaRotationCompleted => normal(
            "CARotationCompleted",
            "the pods serve a certificate from the new CA; removed the old CA from the caBundle",
        ),
        TlsEvent::CertificateIssued => {
            normal("CertificateIssued", "issued the serving certificate")
        }
        TlsEvent::CertificateRenewed => normal("Renewed", "renewed the serving certificate"),
    }
}

/// One Warning Event for a failed pass, unless `old` already showed the same failure
/// (reason and message): a retry that fails the same way is not news. Pure.
pub fn failure(old: Option<&ExtensionServerStatus>, new: &ExtensionServerStatus) -> Option<Event> {
    let ready = |status: &ExtensionServerStatus| {
        find(&status.conditions, ConditionType::Ready)
            .filter(|c| c.status == "False")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (reason, message) = ready(new)?;
    if old.and_then(ready) == Some((reason.clone(), message.clone())) {
        return None;
    }
    Some(event(EventType::Warning, &reason, &message))
}

fn event(type_: EventType, reason: &str, note: &str) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

pub async fn publish(ctx: &Context, reference: &ObjectReference, events: Vec<Event>) {
    for event in events {
        if let Err(error) = ctx.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason = %event.reason, "could not publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::fixtures::names;

    fn status(conditions: &[(ConditionType, &str, Reason)]) -> ExtensionServerStatus {
        ExtensionServerStatus {
            conditions: conditions
                .iter()
                .map(|(type_, status, reason)| Condition {
                    type_: type_.as_str().into(),
                    status: (*status).into(),
                    reason: reason.as_str().into(),
                    message: format!("{type_} is {status}"),
                    observed_generation: Some(1),
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..ExtensionServerStatus::default()
        }
    }

    fn reasons(events: &[Event]) -> Vec<(&str, bool)> {
        events
            .iter()
            .map(|e| (e.reason.as_str(), e.type_ == EventType::Warning))
            .collect()
    }

    #[test]
    fn each_transition_emits_one_event_and_a_repeat_emits_none() {
        let waiting = status(&[
            (
                ConditionType::Registered,
                "False",
                Reason::WaitingForReadyReplicas,
            ),
            (ConditionType::Available, "Unknown", Reason::NotRegistered),
        ]);
        let registered = status(&[
            (ConditionType::Registered, "True", Reason::Registered),
            (ConditionType::Available, "True", Reason::Passed),
        ]);
        let first = transitions(Some(&waiting), &registered, &[], &[], &names());
        assert_eq!(
            reasons(&first),
            [("Registered", false), ("Available", false)]
        );
        let repeat = transitions(Some(&registered), &registered, &[], &[], &names());
        assert_eq!(reasons(&repeat), []);
        assert!(transitions(None, &waiting, &[], &[], &names()).is_empty());
    }

    #[test]
    fn failures_are_warnings() {
        let registered = status(&[
            (ConditionType::Registered, "True", Reason::Registered),
            (ConditionType::Available, "True", Reason::Passed),
        ]);
        let broken = status(&[
            (ConditionType::Registered, "False", Reason::Conflict),
            (
                ConditionType::Available,
                "False",
                Reason::Aggregator("FailedDiscoveryCheck".into()),
            ),
        ]);
        let events = transitions(Some(&registered), &broken, &[], &[], &names());
        assert_eq!(
            reasons(&events),
            [("Conflict", true), ("DiscoveryFailed", true)]
        );
        let unregistered = status(&[(ConditionType::Registered, "False", Reason::Unregistered)]);
        let events = transitions(Some(&registered), &unregistered, &[], &[], &names());
        assert_eq!(reasons(&events), [("Unregistered", false)]);
    }

    #[test]
    fn a_failure_is_one_warning_until_its_reason_or_message_changes() {
        let failed = |message: &str| {
            crate::status::failed(
                None,
                Some(1),
                Reason::StepFailed("DeploymentApplyFailed".into()),
                message,
                Time(Timestamp::UNIX_EPOCH),
            )
        };
        let first = failure(None, &failed("denied"));
        assert_eq!(
            first.map(|e| (e.reason, e.type_ == EventType::Warning)),
            Some(("DeploymentApplyFailed".to_string(), true))
        );
        assert!(failure(Some(&failed("denied")), &failed("denied")).is_none());
        assert!(failure(Some(&failed("denied")), &failed("quota exceeded")).is_some());
    }

    #[test]
    fn a_new_reason_with_the_same_status_is_a_transition_too() {
        let scaled = status(&[(ConditionType::Registered, "False", Reason::ScaledToZero)]);
        let conflict = status(&[(ConditionType::Registered, "False", Reason::Conflict)]);
        let events = transitions(Some(&scaled), &conflict, &[], &[], &names());
        assert_eq!(reasons(&events), [("Conflict", true)]);
    }

    #[test]
    fn tls_steps_and_restored_bindings_each_get_an_event() {
        let same = status(&[]);
        let events = transitions(
            Some(&same),
            &same,
            &[TlsEvent::CaCreated, TlsEvent::CertificateIssued],
            &[Restored::AuthDelegator],
            &names(),
        );
        assert_eq!(
            reasons(&events),
            [
                ("CACreated", false),
                ("CertificateIssued", false),
                ("RBACRestored", true)
            ]
        );
        let note = events[2].note.as_deref().unwrap_or_default();
        assert!(
            note.contains("aggregation.dev:ns:srv:auth-delegator"),
            "{note}"
        );
    }
}
