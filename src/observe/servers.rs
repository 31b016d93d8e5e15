//! The ExtensionServer cache, and a way to wait until it has seen the operator's own write, so
//! the next pass does not start from a status the operator has already replaced.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use tokio::sync::Notify;

use super::listed::Listed;
use crate::crd::ExtensionServer;

/// The ExtensionServer cache and its change signal.
#[derive(Clone)]
pub struct Servers {
    pub store: Store<ExtensionServer>,
    changed: Arc<Notify>,
}

impl Servers {
    /// A cache of `api`, and the stream that keeps it (to drive the controller). A new
    /// generation (a spec change, or deletion), labels or annotations (`kubectl annotate` to
    /// retry at once) and finalizers (the pass after the one that added ours) start a pass; a
    /// status write does not: the operator's own, after a failure, would otherwise run the next
    /// pass at once and defeat the backoff.
    pub fn watch(
        api: Api<Listed>,
        undecodable: impl Fn(&ObjectMeta, &str) + Send + 'static,
    ) -> (
        Self,
        impl Stream<Item = Result<ExtensionServer, watcher::Error>> + Send + 'static,
    ) {
        let (store, writer) = reflector::store();
        let changed = Arc::new(Notify::new());
        let signal = changed.clone();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| std::future::ready(decoded(event, &undecodable).transpose()))
            .modify(super::stores::slim)
            .reflect(writer)
            .inspect(move |_| signal.notify_waiters())
            .touched_objects()
            .predicate_filter(starts_a_pass, PredicateConfig::default());
        (Self { store, changed }, stream)
    }

    /// A cache filled by hand, for the mock-API scenarios.
    #[cfg(test)]
    pub fn from_store(store: Store<ExtensionServer>) -> Self {
        Self {
            store,
            changed: Arc::new(Notify::new()),
        }
    }

    /// Waits up to `limit` until the cache holds `key` at `resource_version` or later.
    /// Returns false on timeout; callers go on either way.
    pub async fn caught_up(
        &self,
        key: &ObjectRef<ExtensionServer>,
        resource_version: &str,
        limit: Duration,
    ) -> bool {
        let wait = async {
            loop {
                // Registered before the check, so a change in between is not missed.
                let changed = self.changed.notified();
                let seen = self
                    .store
                    .get(key)
                    .and_then(|s| s.metadata.resource_version.clone());
                if seen.is_some_and(|seen| not_older(&seen, resource_version)) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// The event with its ExtensionServer decoded; an object that could not be decoded is
/// reported and left out (`None`), so every other server goes on.
fn decoded(
    event: Result<Event<Listed>, watcher::Error>,
    undecodable: &impl Fn(&ObjectMeta, &str),
) -> Result<Option<Event<ExtensionServer>>, watcher::Error> {
    let usable = |listed: Listed| match listed.decoded {
        Ok(server) => Some(server),
        Err(why) => {
            undecodable(&listed.metadata, &why);
            None
        }
    };
    Ok(match event? {
        Event::Apply(listed) => usable(listed).map(Event::Apply),
        Event::InitApply(listed) => usable(listed).map(Event::InitApply),
        Event::Delete(listed) => listed.decoded.ok().map(Event::Delete),
        Event::Init => Some(Event::Init),
        Event::InitDone => Some(Event::InitDone),
    })
}

/// A hash of what starts a pass when it changes: the metadata a user or the finalizer
/// changes and the generation, not the status.
fn starts_a_pass(server: &ExtensionServer) -> Option<u64> {
    let meta = &server.metadata;
    let mut hasher = std::hash::DefaultHasher::new();
    let deleting = meta.deletion_timestamp.is_some();
    let watched = (
        meta.generation,
        deleting,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
    );
    watched.hash(&mut hasher);
    Some(hasher.finish())
}

/// True if `seen` is `wanted` or newer. resourceVersions are opaque, but etcd's are integers;
/// anything else only compares equal.
fn not_older(seen: &str, wanted: &str) -> bool {
    match (seen.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(seen), Ok(wanted)) => seen >= wanted,
        _ => seen == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::{not_older, starts_a_pass};
    use crate::crd::{ExtensionServer, ExtensionServerStatus};

    #[test]
    fn resource_versions_compare_as_integers_when_they_are() {
        assert!(not_older("10", "9"));
        assert!(not_older("10", "10"));
        assert!(!not_older("9", "10"));
        assert!(not_older("abc", "abc"));
        assert!(!not_older("abd", "abc"));
    }

    #[test]
    fn a_status_write_starts_no_pass_and_user_metadata_does() {
        let mut server: ExtensionServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "aggregation.dev/v1alpha1", "kind": "ExtensionServer",
            "metadata": {"name": "s", "generation": 1, "resourceVersion": "5"},
            "spec": {"group": "g.example.com", "versions": [{"name": "v1"}], "image": "i"},
        }))
        .expect("server");
        let first = starts_a_pass(&server);
        server.status = Some(ExtensionServerStatus {
            observed_generation: Some(1),
            ..Default::default()
        });
        server.metadata.resource_version = Some("6".into());
        assert_eq!(starts_a_pass(&server), first, "status and resourceVersion");

        let changes: [fn(&mut ExtensionServer); 4] = [
            |s| s.metadata.generation = Some(2),
            |s| s.metadata.annotations = Some([("retry".into(), "1".into())].into()),
            |s| s.metadata.labels = Some([("team".into(), "a".into())].into()),
            |s| s.metadata.finalizers = Some(vec!["aggregation.dev/cleanup".into()]),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut changed = server.clone();
            change(&mut changed);
            assert_ne!(starts_a_pass(&changed), first, "change {i}");
        }
    }
}
