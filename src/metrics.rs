//! Operator metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// Counters the controller updates on every reconcile.
#[derive(Debug)]
pub struct Metrics {
    reconciles: watch::Sender<u64>,
    errors: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: watch::Sender::new(0),
            errors: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self) {
        self.reconciles.send_modify(|n| *n += 1);
    }
    pub fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Reconciles finished so far.
    pub fn reconciles(&self) -> u64 {
        *self.reconciles.borrow()
    }
    /// A receiver that sees every change of the reconcile count.
    pub fn watch_reconciles(&self) -> watch::Receiver<u64> {
        self.reconciles.subscribe()
    }
    /// Reconciles that failed so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
