//! Leader election on a `coordination.k8s.io/v1` Lease, following client-go's rules.
//!
//! - A candidate takes the Lease when it is free (no holder) or when its record has not changed
//!   for `leaseDurationSeconds`, measured on the candidate's own clock from when it first saw
//!   that record. Clock skew between processes therefore does not matter.
//! - Every write carries the resourceVersion that was read, so two candidates cannot both win.
//! - The leader renews every `retry_period`. If it cannot renew for `renew_deadline` (shorter
//!   than the lease duration), it gives up before anyone else may take over.
//! - Releasing clears the holder, so a standby takes over on its next attempt.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

mod lead;
pub use lead::{LeaseLost, lead};

/// Where the Lease lives, who we are, and the timings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a standby waits, after the record last changed, before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Checks that the leader always stops before a standby may take over.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err("the renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_period >= self.renew_deadline {
            return Err("the retry period must be shorter than the renew deadline".into());
        }
        if self.lease_duration.as_secs() < 1 {
            return Err("the lease duration must be at least 1s".into());
        }
        Ok(())
    }
}

/// The current holder of `lease`; an empty identity (a released Lease) is no holder.
pub fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
}

/// The last Lease record this candidate saw, and when it first saw it.
/// The shortest wait between two attempts to acquire.
const MIN_ATTEMPT_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Observed {
    resource_version: Option<String>,
    at: Instant,
}

/// One candidate for the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

impl LeaderElector {
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    /// Waits until this candidate holds the Lease (`true`) or `stop` resolves (`false`).
    /// `stop` interrupts only the wait between attempts: an attempt in flight always finishes,
    /// so a Lease written just before a shutdown is known to be ours and can be released.
    pub async fn acquire_until(&mut self, stop: impl Future<Output = ()>) -> bool {
        tokio::pin!(stop);
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "became leader");
                    return true;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "trying to acquire the lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.next_attempt_in()) => {}
                () = &mut stop => return false,
            }
        }
    }

    /// A standby tries again after the retry period, or as soon as the observed record
    /// expires if that is sooner, so a takeover does not wait for the next retry tick.
    pub fn next_attempt_in(&self) -> Duration {
        let retry = self.settings.retry_period;
        let Some(observed) = &self.observed else {
            return retry;
        };
        let left = self
            .settings
            .lease_duration
            .saturating_sub(observed.at.elapsed());
        left.min(retry).max(MIN_ATTEMPT_INTERVAL)
    }

    /// Renews the Lease every retry period. Returns when leadership is lost: another holder
    /// took it, or no renewal succeeded within the renew deadline.
    pub async fn hold(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            let remaining = self
                .settings
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            match tokio::time::timeout(remaining, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::error!("another candidate holds the lease");
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "renewing the lease"),
                Err(_) => {}
            }
            if last_renewed.elapsed() >= self.settings.renew_deadline {
                tracing::error!(deadline = ?self.settings.renew_deadline, "could not renew the lease in time");
                return;
            }
        }
    }

    /// Gives the Lease up if this candidate holds it, so a standby need not wait for expiry.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await?;
        tracing::info!(lease = %self.settings.name, "released the lease");
        Ok(())
    }

    /// One attempt. `Ok(true)` when this candidate holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(current) = self.api.get_opt(&self.settings.name).await? else {
            let lease = self.record(None, now, 0);
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let resource_version = current.metadata.resource_version.clone();
        if self.observed.as_ref().map(|o| &o.resource_version) != Some(&resource_version) {
            self.observed = Some(Observed {
                resource_version,
                at: Instant::now(),
            });
        }
        let spec = current.spec.clone().unwrap_or_default();
        let held_by = holder(&current);
        let ours = held_by == Some(self.settings.identity.as_str());
        if !ours && held_by.is_some() && !self.expired(&spec) {
            return Ok(false);
        }
        let (acquired, transitions) = if ours {
            (spec.acquire_time.clone().unwrap_or(now.clone()), 0)
        } else {
            (now.clone(), 1)
        };
        let mut lease = self.record(
            Some(current.metadata),
            acquired,
            spec.lease_transitions.unwrap_or(0) + transitions,
        );
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(now);
        }
        self.write(
            self.api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.settings.lease_duration, Duration::from_secs);
        self.observed
            .as_ref()
            .is_some_and(|o| o.at.elapsed() >= duration)
    }

    fn record(&self, metadata: Option<ObjectMeta>, acquired: MicroTime, transitions: i32) -> Lease {
        let metadata = metadata.unwrap_or_else(|| ObjectMeta {
            name: Some(self.settings.name.clone()),
            namespace: Some(self.settings.namespace.clone()),
            ..ObjectMeta::default()
        });
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: i32::try_from(self.settings.lease_duration.as_secs()).ok(),
                acquire_time: Some(acquired.clone()),
                renew_time: Some(acquired),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Records a successful write; a conflict means someone else wrote first.
    fn write(&mut self, result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match result {
            Ok(written) => {
                self.observed = Some(Observed {
                    resource_version: written.metadata.resource_version,
                    at: Instant::now(),
                });
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests;
