//! Operator metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the controller updates on every reconcile.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    errors: AtomicU64,
}

impl Metrics {
    pub fn reconciled(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
    }
    pub fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Reconciles started so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }
    /// Reconciles that failed so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
