//! Events on transitions: Registered, Unregistered, Conflict, DiscoveryFailed, and TLS steps.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::context::Context;
use crate::crd::{ExtensionServer, ExtensionServerStatus};
use crate::status::conditions::{AVAILABLE, REGISTERED};
use crate::tls::TlsEvent;

fn condition<'a>(
    status: Option<&'a ExtensionServerStatus>,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

/// The Events implied by the change from `old` to `new`.
pub fn transitions(
    old: Option<&ExtensionServerStatus>,
    new: &ExtensionServerStatus,
    tls: &[TlsEvent],
) -> Vec<Event> {
    let mut events = Vec::new();
    let changed = |type_: &str| {
        let before = condition(old, type_).map(|c| (c.status.as_str(), c.reason.as_str()));
        let after = condition(Some(new), type_);
        after.filter(|a| before != Some((a.status.as_str(), a.reason.as_str())))
    };
    let event = |type_: EventType, reason: &str, note: &str| Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Some(c) = changed(REGISTERED) {
        match (c.status.as_str(), c.reason.as_str()) {
            ("True", _) => events.push(event(EventType::Normal, "Registered", &c.message)),
            (_, "Conflict") => events.push(event(EventType::Warning, "Conflict", &c.message)),
            (_, "ScaledToZero" | "Unregistered") => {
                events.push(event(EventType::Normal, "Unregistered", &c.message))
            }
            _ => {}
        }
    }
    if let Some(c) = changed(AVAILABLE) {
        match c.status.as_str() {
            "True" => events.push(event(EventType::Normal, "Available", &c.message)),
            "False" => events.push(event(EventType::Warning, "DiscoveryFailed", &c.message)),
            _ => {}
        }
    }
    for step in tls {
        let (reason, note) = match step {
            TlsEvent::CaCreated => ("CACreated", "created the certificate authority"),
            TlsEvent::CaRotationStarted => (
                "CARotationStarted",
                "added a new CA to the APIServices' caBundle next to the old one",
            ),
            TlsEvent::CaPromoted => (
                "CAPromoted",
                "the new CA now signs the serving certificate; the old CA stays trusted until the pods roll",
            ),
            TlsEvent::CaRotationCompleted => (
                "CARotationCompleted",
                "the pods serve a certificate from the new CA; removed the old CA from the caBundle",
            ),
            TlsEvent::CertificateIssued => ("CertificateIssued", "issued the serving certificate"),
            TlsEvent::CertificateRenewed => ("Renewed", "renewed the serving certificate"),
        };
        events.push(event(EventType::Normal, reason, note));
    }
    events
}

pub async fn publish_transitions(
    ctx: &Context,
    server: &ExtensionServer,
    old: Option<&ExtensionServerStatus>,
    new: &ExtensionServerStatus,
    tls: &[TlsEvent],
) {
    let reference = server.object_ref(&());
    for event in transitions(old, new, tls) {
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = %event.reason, "could not publish an Event");
        }
    }
}
