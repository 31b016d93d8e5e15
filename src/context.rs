//! Shared state of the controller: the client, the Event recorder and the configuration.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::tls::Lifetimes;
use crate::trust::grants::Grants;

/// Operator-wide settings (flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetimes used when an ExtensionServer does not set its own.
    pub default_lifetimes: Lifetimes,
    /// The admin's grants file (`--grants`); `None`: any namespace may claim any unprotected
    /// group, without adoption.
    pub grants_file: Option<std::path::PathBuf>,
    /// Safety-net requeue while nothing else is due.
    pub resync: Duration,
    /// How often the certificate a registered server presents is verified.
    pub probe_interval: Duration,
    /// Most ExtensionServers reconciled at once.
    pub concurrency: u16,
    /// Most TLS probes in flight at once.
    pub probe_concurrency: usize,
    /// Time between two sweeps for objects whose ExtensionServer is gone.
    pub sweep_interval: Duration,
    /// Longest an APIService stays unavailable before it is unregistered (`--max-unavailable`);
    /// `registration.unregisterAfter` can only shorten it.
    pub max_unavailable: Duration,
    /// Labels added to every child (`--child-label`).
    pub child_labels: crate::child_labels::ChildLabels,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_lifetimes: Lifetimes {
                certificate: Duration::from_secs(2160 * 3600),
                ca: Duration::from_secs(43800 * 3600),
            },
            grants_file: None,
            resync: Duration::from_secs(300),
            probe_interval: Duration::from_secs(30),
            concurrency: 16,
            probe_concurrency: 8,
            sweep_interval: Duration::from_secs(300),
            max_unavailable: Duration::from_secs(600),
            child_labels: Default::default(),
        }
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
    /// Servers whose unavailable APIServices were removed, and when they came back (see
    /// `hold_record`). Status records the removal, but the watch cache can lag behind it.
    pub held_back: std::sync::Mutex<crate::hold_record::Holds>,
    /// Probes backends outside the reconcile pass.
    pub prober: Arc<crate::probe::Prober>,
    /// The grants in force (reloaded when the file changes); `None` without `--grants`.
    pub grants: std::sync::RwLock<Option<Arc<Grants>>>,
    /// kube-apiserver's own addresses (the `kubernetes` Service's ClusterIP and endpoints), read
    /// once before an external server is judged.
    pub apiserver_addresses: tokio::sync::OnceCell<Vec<String>>,
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
            prober: Arc::new(crate::probe::Prober::new(settings.probe_concurrency)),
            grants: Default::default(),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            ready: tokio::sync::watch::Sender::new(false),
            synced: tokio::sync::watch::Sender::new(false),
            held_back: Default::default(),
            apiserver_addresses: Default::default(),
        }
    }
}

impl Context {
    /// The grants in force.
    pub fn grants(&self) -> Option<Arc<Grants>> {
        self.grants.read().ok().and_then(|g| g.clone())
    }
}
