//! Operator metrics in Prometheus text format.
//!
//! - `extension_server_operator_reconciles_total`
//! - `extension_server_operator_reconcile_errors_total{category}` (bounded, see `Error::category`)
//! - `extension_server_operator_reconcile_duration_seconds` (histogram)
//! - `extension_server_operator_api_writes_total`
//! - `extension_server_operator_api_requests_total{verb,resource}` (every request, watches included)
//! - `extension_server_operator_certificate_expiry_timestamp_seconds{namespace,name}`
//! - `extension_server_operator_apiservice_available{apiservice,namespace,name}` (1 or 0)
//! - `extension_server_operator_orphans_removed_total{kind}` (by the sweep)
//!
//! The per-server series go when their server or version does.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiServiceLabels {
    pub apiservice: String,
    pub namespace: String,
    pub name: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles_seen: watch::Sender<u64>,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    error_count: AtomicU64,
    duration: Histogram,
    writes: Counter,
    requests: Family<RequestLabels, Counter>,
    certificate_expiry: Family<ServerLabels, Gauge>,
    apiservice_available: Family<ApiServiceLabels, Gauge>,
    orphans_removed: Family<KindLabels, Counter>,
    leader: Gauge,
    grants_valid: Gauge,
    undecodable: Counter,
    /// The APIService series recorded per server (`namespace/name`), so they can be removed.
    apiservices_of: Mutex<HashMap<(String, String), BTreeSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("reconciles", &self.reconciles.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("extension_server_operator"),
            reconciles_seen: watch::Sender::new(0),
            reconciles: Counter::default(),
            errors: Family::default(),
            error_count: AtomicU64::new(0),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            writes: Counter::default(),
            requests: Family::default(),
            certificate_expiry: Family::default(),
            apiservice_available: Family::default(),
            orphans_removed: Family::default(),
            leader: Gauge::default(),
            grants_valid: Gauge::default(),
            undecodable: Counter::default(),
            apiservices_of: Mutex::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "grants_valid",
            "1 while the grants file last read is valid; 0 while an invalid one leaves the previous grants in force",
            metrics.grants_valid.clone(),
        );
        registry.register(
            "undecodable_objects",
            "ExtensionServers the operator could not decode and skipped (counted at each list or watch event)",
            metrics.undecodable.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles finished",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by category",
            metrics.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            metrics.duration.clone(),
        );
        registry.register(
            "api_writes",
            "Create, update, patch and delete requests sent to the API server",
            metrics.writes.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent to the API server, by Kubernetes verb and resource",
            metrics.requests.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the serving certificate of an ExtensionServer expires (Unix time)",
            metrics.certificate_expiry.clone(),
        );
        registry.register(
            "apiservice_available",
            "1 when the aggregator reports the APIService Available, else 0",
            metrics.apiservice_available.clone(),
        );
        registry.register(
            "orphans_removed",
            "Cluster-scoped and kube-system objects deleted by the sweep because their ExtensionServer was gone, by kind",
            metrics.orphans_removed.clone(),
        );
        registry.register(
            "leader",
            "1 while this process runs the controller (holds the Lease, or runs without election)",
            metrics.leader.clone(),
        );
        metrics
    }
}

impl Metrics {
    /// Records one finished reconcile.
    pub fn reconciled(&self, took: Duration, error_category: Option<&str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(category) = error_category {
            self.errors
                .get_or_create(&ErrorLabels {
                    category: category.to_string(),
                })
                .inc();
            self.error_count.fetch_add(1, Ordering::Relaxed);
        }
        self.reconciles_seen.send_modify(|n| *n += 1);
    }

    /// Records whether the grants file last read was valid (an invalid one leaves the previous
    /// grants in force).
    /// Counts an ExtensionServer skipped because it could not be decoded.
    pub fn undecodable(&self) {
        self.undecodable.inc();
    }

    /// ExtensionServers skipped so far because they could not be decoded.
    pub fn undecodable_count(&self) -> u64 {
        self.undecodable.get()
    }

    pub fn set_grants_valid(&self, valid: bool) {
        self.grants_valid.set(i64::from(valid));
    }

    /// Records whether this process is running the controller.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts one API request; every verb but get, list and watch is also a write.
    pub fn requested(&self, verb: &str, resource: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
            })
            .inc();
        if !matches!(verb, "get" | "list" | "watch") {
            self.writes.inc();
        }
    }

    pub fn set_certificate_expiry(&self, namespace: &str, name: &str, unix_seconds: i64) {
        self.certificate_expiry
            .get_or_create(&ServerLabels {
                namespace: namespace.into(),
                name: name.into(),
            })
            .set(unix_seconds);
    }

    pub fn set_apiservice_available(
        &self,
        apiservice: &str,
        namespace: &str,
        name: &str,
        available: bool,
    ) {
        self.apiservice_available
            .get_or_create(&ApiServiceLabels {
                apiservice: apiservice.into(),
                namespace: namespace.into(),
                name: name.into(),
            })
            .set(i64::from(available));
        self.recorded()
            .entry((namespace.into(), name.into()))
            .or_default()
            .insert(apiservice.into());
    }

    /// Removes the APIService series of this server that are not in `current` (a version
    /// removed from the spec, or no longer registered).
    pub fn keep_apiservices(&self, namespace: &str, name: &str, current: &[&str]) {
        let mut recorded = self.recorded();
        let Some(apiservices) = recorded.get_mut(&(namespace.into(), name.into())) else {
            return;
        };
        apiservices.retain(|apiservice| {
            let keep = current.contains(&apiservice.as_str());
            if !keep {
                self.apiservice_available.remove(&ApiServiceLabels {
                    apiservice: apiservice.clone(),
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            keep
        });
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), BTreeSet<String>>> {
        self.apiservices_of
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one object removed by the sweep.
    pub fn orphan_removed(&self, kind: &str) {
        self.orphans_removed
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Drops every per-server series of a deleted ExtensionServer.
    pub fn forget_server(&self, namespace: &str, name: &str) {
        self.certificate_expiry.remove(&ServerLabels {
            namespace: namespace.into(),
            name: name.into(),
        });
        self.keep_apiservices(namespace, name, &[]);
        self.recorded().remove(&(namespace.into(), name.into()));
    }

    /// Reconciles finished so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }
    /// A receiver that sees every change of the reconcile count.
    pub fn watch_reconciles(&self) -> watch::Receiver<u64> {
        self.reconciles_seen.subscribe()
    }
    /// Reconciles that failed so far.
    pub fn errors(&self) -> u64 {
        self.error_count.load(Ordering::Relaxed)
    }
    /// API writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(metrics: &Metrics) -> Vec<String> {
        metrics
            .encode()
            .lines()
            .filter(|l| l.contains("name=\"srv\"") && !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn series_of_removed_versions_and_servers_go() {
        let metrics = Metrics::default();
        metrics.set_certificate_expiry("ns", "srv", 1);
        for version in ["v1.g", "v2.g"] {
            metrics.set_apiservice_available(version, "ns", "srv", true);
        }
        assert_eq!(series(&metrics).len(), 3);
        metrics.keep_apiservices("ns", "srv", &["v1.g"]);
        let left = series(&metrics);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|s| !s.contains("v2.g")), "{left:?}");
        metrics.forget_server("ns", "srv");
        assert_eq!(series(&metrics), Vec::<String>::new());
    }
}
