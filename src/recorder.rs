//! Publishes Events (events.k8s.io/v1). An Event that repeats within [`SERIES_WINDOW`] (same
//! object, type, action, reason, related object and note) patches the first one's `series`
//! instead of creating another, as kubectl and client-go expect.
//!
//! kube's own `Recorder` keeps a copy of every Event it published for its series, in a map that
//! never gives memory back; at 1,000 servers that held 17 MiB. This one remembers only a hash,
//! the Event's name and its count, forgets them after the window, and shrinks its map.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, ResourceExt};

/// How long a published Event can still gain a series (kube's and client-go's 6 minutes).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// A recently published Event.
#[derive(Debug, Clone)]
struct Recent {
    namespace: Box<str>,
    name: Box<str>,
    count: i32,
    last: Timestamp,
}

pub struct Recorder {
    client: Client,
    reporter: Reporter,
    recent: Mutex<HashMap<u64, Recent>>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: Mutex::default(),
        }
    }

    /// Creates the Event on `regarding`, or counts a repeat in the first one's series.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        self.publish_at(event, regarding, Timestamp::now()).await
    }

    async fn publish_at(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<(), kube::Error> {
        let key = series_key(event, regarding);
        let repeat = self.remembered(key, now);
        if let Some(recent) = repeat {
            let count = recent.count + 1;
            match self.count_repeat(&recent, count, now).await {
                Ok(()) => {
                    self.remember(
                        key,
                        Recent {
                            count,
                            last: now,
                            ..recent
                        },
                    );
                    return Ok(());
                }
                // The first Event is gone (deleted, or expired early): start a new one.
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(error),
            }
        }
        let created = self.create(event, regarding, now).await?;
        let recent = Recent {
            namespace: created.namespace().unwrap_or_default().into(),
            name: created.name_any().into(),
            count: 1,
            last: now,
        };
        self.remember(key, recent);
        Ok(())
    }

    /// The Event published under `key` within the window, after forgetting those outside it.
    fn remembered(&self, key: u64, now: Timestamp) -> Option<Recent> {
        let mut recent = self.recent.lock().ok()?;
        forget_expired(&mut recent, now);
        recent.get(&key).cloned()
    }

    fn remember(&self, key: u64, entry: Recent) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.insert(key, entry);
        }
    }

    async fn count_repeat(&self, recent: &Recent, count: i32, now: Timestamp) -> kube::Result<()> {
        let series = EventSeries {
            count,
            last_observed_time: MicroTime(now),
        };
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &recent.namespace);
        let patch = serde_json::json!({ "series": series });
        events
            .patch(&recent.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    async fn create(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> kube::Result<K8sEvent> {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let controller = &self.reporter.controller;
        let object = K8sEvent {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(type_name(event.type_).into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..K8sEvent::default()
        };
        Api::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &object)
            .await
    }

    /// Events remembered for their series.
    #[cfg(test)]
    fn remembered_count(&self) -> usize {
        self.recent.lock().map(|r| r.len()).unwrap_or_default()
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// Drops the Events outside the window, and gives the map's memory back once it is mostly empty.
fn forget_expired(recent: &mut HashMap<u64, Recent>, now: Timestamp) {
    recent.retain(|_, r| r.last + SERIES_WINDOW > now);
    if recent.capacity() > 64 && recent.len() < recent.capacity() / 4 {
        recent.shrink_to_fit();
    }
}

/// What makes two Events one series.
fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    type_name(event.type_).hash(&mut hasher);
    event.action.hash(&mut hasher);
    event.reason.hash(&mut hasher);
    event.note.hash(&mut hasher);
    hash_reference(regarding, &mut hasher);
    event.secondary.is_some().hash(&mut hasher);
    if let Some(related) = &event.secondary {
        hash_reference(related, &mut hasher);
    }
    hasher.finish()
}

fn hash_reference(reference: &ObjectReference, hasher: &mut DefaultHasher) {
    reference.api_version.hash(hasher);
    reference.kind.hash(hasher);
    reference.namespace.hash(hasher);
    reference.name.hash(hasher);
    reference.uid.hash(hasher);
}

#[cfg(test)]
mod tests;
