//! Per-object retry delays after failed passes: exponential with jitter while the same step keeps
//! failing, back to the first delay when another step fails (the pass got further), reset on
//! success. A refusal that will not go away by itself (a 4xx, an invalid spec) waits up to
//! [`CAP`]; the API server's passing trouble (a 5xx, a 429, a timeout, a dropped connection)
//! only up to [`TRANSIENT_CAP`], so a bad minute of the API server costs a server no more than
//! half a minute after it ends.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

pub use crate::error::Persistence;

/// The first retry comes after about this long.
pub const FIRST: Duration = Duration::from_secs(1);
/// Retries never wait longer than this.
pub const CAP: Duration = Duration::from_secs(300);
/// Retries after transient failures never wait longer than this.
pub const TRANSIENT_CAP: Duration = Duration::from_secs(30);
/// Each delay is spread by up to this share either way, so failing objects do not retry in step.
const JITTER: f64 = 0.2;

/// The delay after `failures` failures in a row (1 for the first), with `spread` in `[0, 1)`
/// choosing where in the jitter band it falls. Pure.
pub fn delay(failures: u32, spread: f64, persistence: Persistence) -> Duration {
    let cap = match persistence {
        Persistence::Transient => TRANSIENT_CAP,
        Persistence::Lasting => CAP,
    };
    let exponent = failures.saturating_sub(1).min(16);
    let base = FIRST.saturating_mul(1 << exponent).min(cap);
    let factor = 1.0 + JITTER * (2.0 * spread.clamp(0.0, 1.0) - 1.0);
    base.mul_f64(factor).min(cap)
}

/// Failures in a row of the same step, per object.
pub struct Backoffs<K> {
    failures: Mutex<HashMap<K, (String, u32)>>,
}

impl<K: Hash + Eq> Default for Backoffs<K> {
    fn default() -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Backoffs<K> {
    /// Counts one more failure of `key` at `step` and returns how long to wait before the next
    /// try. A failure at another step than the last one starts again from [`FIRST`].
    pub fn failed(&self, key: &K, step: &str, persistence: Persistence) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (last, count) = failures
            .entry(key.clone())
            .or_insert_with(|| (step.to_string(), 0));
        if last != step {
            *last = step.to_string();
            *count = 0;
        }
        *count = count.saturating_add(1);
        delay(*count, spread(), persistence)
    }

    /// Forgets the failures of `key`: the next failure waits [`FIRST`] again.
    pub fn succeeded(&self, key: &K) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// A number in `[0, 1)`, different on every call; good enough to spread retries.
fn spread() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let random = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (random >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::Persistence::{Lasting, Transient};
    use super::*;

    #[test]
    fn delays_double_from_one_second_up_to_the_cap() {
        let middle: Vec<u64> = (1..=10).map(|n| delay(n, 0.5, Lasting).as_secs()).collect();
        assert_eq!(middle, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(delay(u32::MAX, 0.99, Lasting), CAP);
    }

    #[test]
    fn transient_failures_never_wait_past_half_a_minute() {
        let middle: Vec<u64> = (1..=8)
            .map(|n| delay(n, 0.5, Transient).as_secs())
            .collect();
        assert_eq!(middle, [1, 2, 4, 8, 16, 30, 30, 30]);
        let backoffs = Backoffs::default();
        for _ in 0..20 {
            assert!(backoffs.failed(&"a", "ReadSecret", Transient) <= TRANSIENT_CAP);
        }
        // A lasting failure of the same step goes on doubling from where it was.
        assert!(backoffs.failed(&"a", "ReadSecret", Lasting) > TRANSIENT_CAP);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        assert_eq!(delay(4, 0.0, Lasting), Duration::from_millis(6400));
        assert!(delay(4, 0.999, Lasting) <= Duration::from_millis(9600));
        for _ in 0..100 {
            let s = spread();
            assert!((0.0..1.0).contains(&s), "{s}");
        }
    }

    #[test]
    fn success_resets_the_count() {
        let backoffs = Backoffs::default();
        for _ in 0..5 {
            backoffs.failed(&"a", "ApplyDeployment", Lasting);
        }
        assert!(backoffs.failed(&"a", "ApplyDeployment", Lasting) >= Duration::from_secs(25));
        assert!(backoffs.failed(&"b", "ApplyDeployment", Lasting) <= Duration::from_millis(1200));
        backoffs.succeeded(&"a");
        assert!(backoffs.failed(&"a", "ApplyDeployment", Lasting) <= Duration::from_millis(1200));
    }

    #[test]
    fn only_the_same_step_failing_again_doubles_the_delay() {
        let backoffs = Backoffs::default();
        for _ in 0..5 {
            backoffs.failed(&"a", "ApplyDeployment", Lasting);
        }
        // Transient faults that hit one step after another never escalate.
        for step in ["ReadSecret", "ApplyService", "ReadSecret", "WriteStatus"] {
            assert!(backoffs.failed(&"a", step, Lasting) <= Duration::from_millis(1200));
        }
        assert!(backoffs.failed(&"a", "WriteStatus", Lasting) >= Duration::from_millis(1600));
    }
}
