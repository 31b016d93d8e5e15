//! Shared state of the controller: the client, the Event recorder and the configuration.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;
use crate::tls::Lifetimes;

/// Operator-wide settings (flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetimes used when an ExtensionServer does not set its own.
    pub default_lifetimes: Lifetimes,
    /// Group patterns ExtensionServers may claim (`*` as a leading label wildcard). Empty: any.
    pub allowed_groups: Vec<String>,
    /// Safety-net requeue while nothing else is due.
    pub resync: Duration,
    /// How often the certificate a registered server presents is verified.
    pub probe_interval: Duration,
    /// Most ExtensionServers reconciled at once.
    pub concurrency: u16,
    /// Most TLS probes in flight at once.
    pub probe_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_lifetimes: Lifetimes {
                certificate: Duration::from_secs(2160 * 3600),
                ca: Duration::from_secs(43800 * 3600),
            },
            allowed_groups: Vec::new(),
            resync: Duration::from_secs(300),
            probe_interval: Duration::from_secs(30),
            concurrency: 16,
            probe_concurrency: 8,
        }
    }
}

impl Settings {
    /// True if `group` matches one of the allowed patterns (or no patterns are set).
    pub fn group_allowed(&self, group: &str) -> bool {
        self.allowed_groups.is_empty()
            || self
                .allowed_groups
                .iter()
                .any(|pattern| match pattern.strip_prefix("*.") {
                    Some(suffix) => group.ends_with(&format!(".{suffix}")),
                    None => pattern == group,
                })
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Drives `/readyz`: true once the controller's caches have synced, or while standing by
    /// for the leader Lease.
    pub ready: tokio::sync::watch::Sender<bool>,
    /// True once the controller's caches have synced.
    pub synced: tokio::sync::watch::Sender<bool>,
    /// Servers whose APIServices `unregisterAfter` removed, with the generation it happened at.
    /// Status records the same, but the watch cache can lag behind the status write.
    pub held_back: std::sync::Mutex<std::collections::HashMap<String, Option<i64>>>,
    /// Bounds the TLS probes in flight.
    pub probes: tokio::sync::Semaphore,
}

impl Context {
    /// Connects with `config`; every API write is counted in the context's metrics.
    pub fn connect(config: kube::Config, settings: Settings) -> Result<Self, kube::Error> {
        let metrics = Arc::new(Metrics::default());
        let client = crate::client::counting_client(config, metrics.clone())?;
        Ok(Self::from_parts(client, metrics, settings))
    }

    /// A context around an existing client (which may or may not count writes in `metrics`).
    pub fn from_parts(client: Client, metrics: Arc<Metrics>, settings: Settings) -> Self {
        let reporter = Reporter {
            controller: crate::names::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            probes: tokio::sync::Semaphore::new(settings.probe_concurrency.max(1)),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            ready: tokio::sync::watch::Sender::new(false),
            synced: tokio::sync::watch::Sender::new(false),
            held_back: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_groups_match_exactly_or_by_suffix() {
        let settings = Settings {
            allowed_groups: vec!["my.custom.api".into(), "*.example.com".into()],
            ..Settings::default()
        };
        assert!(settings.group_allowed("my.custom.api"));
        assert!(settings.group_allowed("metrics.example.com"));
        assert!(!settings.group_allowed("example.com"));
        assert!(!settings.group_allowed("apps"));
        assert!(Settings::default().group_allowed("anything.at.all"));
    }
}
