//! The ExtensionServer cache, and a way to wait until it has seen the operator's own write, so
//! the next pass does not start from a status the operator has already replaced.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use crate::crd::ExtensionServer;

/// The ExtensionServer cache and its change signal.
#[derive(Clone)]
pub struct Servers {
    pub store: Store<ExtensionServer>,
    changed: Arc<Notify>,
}

impl Servers {
    /// A cache of `api`, and the stream that keeps it (to drive the controller).
    pub fn watch(
        api: Api<ExtensionServer>,
    ) -> (
        Self,
        impl Stream<Item = Result<ExtensionServer, watcher::Error>> + Send + 'static,
    ) {
        let (store, writer) = reflector::store();
        let changed = Arc::new(Notify::new());
        let signal = changed.clone();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(super::stores::slim)
            .reflect(writer)
            .inspect(move |_| signal.notify_waiters())
            .touched_objects();
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
    use super::not_older;

    #[test]
    fn resource_versions_compare_as_integers_when_they_are() {
        assert!(not_older("10", "9"));
        assert!(not_older("10", "10"));
        assert!(!not_older("9", "10"));
        assert!(not_older("abc", "abc"));
        assert!(!not_older("abd", "abc"));
    }
}
