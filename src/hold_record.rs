//! One server's removals for staying unavailable, as the operator remembers them: a server
//! removed again within [`FLAP_WINDOW`] of coming back is held at least twice as long each time
//! ([`minimum_hold`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A removal this soon after the server came back counts as a flap.
pub const FLAP_WINDOW: Duration = Duration::from_secs(3600);
/// The longest minimum hold.
const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);

/// One server's removals, kept by the operator (status keeps only the last verdict).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldRecord {
    /// When the APIServices were last removed, while they stay out.
    held_since: Option<Instant>,
    /// Removals in a row, each within [`FLAP_WINDOW`] of coming back.
    flaps: u32,
    /// When the server last came back.
    returned_at: Option<Instant>,
}

/// Every server's hold, by owner key.
pub type Holds = HashMap<String, HoldRecord>;

/// The least time a server stays out after its `flaps`-th quick removal: none for the first
/// removal (only the discovery check decides), then `unregister_after` doubled per flap.
pub fn minimum_hold(unregister_after: Duration, flaps: u32) -> Duration {
    match flaps {
        0 => Duration::ZERO,
        n => unregister_after
            .saturating_mul(1u32 << n.min(20))
            .min(MAX_HOLD),
    }
}

impl HoldRecord {
    /// Records a removal at `now`.
    pub fn removed(&mut self, now: Instant) {
        let soon = self
            .returned_at
            .is_some_and(|back| now.saturating_duration_since(back) < FLAP_WINDOW);
        self.flaps = if soon {
            self.flaps.saturating_add(1)
        } else {
            0
        };
        self.held_since = Some(now);
        self.returned_at = None;
    }

    /// True while the minimum hold after the last removal runs.
    pub fn holding(&self, unregister_after: Duration, now: Instant) -> bool {
        self.held_since.is_some_and(|since| {
            now.saturating_duration_since(since) < minimum_hold(unregister_after, self.flaps)
        })
    }

    /// True from a removal until the server comes back.
    pub fn is_held(&self) -> bool {
        self.held_since.is_some()
    }

    /// Records that the server came back at `now`.
    pub fn released(&mut self, now: Instant) {
        self.held_since = None;
        self.returned_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(20);

    #[test]
    fn a_server_removed_again_soon_after_coming_back_is_held_twice_as_long_each_time() {
        let start = Instant::now();
        let mut record = HoldRecord::default();
        record.removed(start);
        assert!(
            !record.holding(CAP, start),
            "the first hold waits only for discovery"
        );
        let mut now = start;
        for expected in [40, 80, 160] {
            now += Duration::from_secs(60);
            record.released(now);
            now += CAP;
            record.removed(now);
            let hold = Duration::from_secs(expected);
            assert!(record.holding(CAP, now + hold - Duration::from_secs(1)));
            assert!(!record.holding(CAP, now + hold), "{expected} s");
        }
    }

    #[test]
    fn a_removal_long_after_coming_back_starts_over() {
        let start = Instant::now();
        let mut record = HoldRecord::default();
        record.removed(start);
        record.released(start + CAP);
        record.removed(start + CAP * 2);
        assert_eq!(record.flaps, 1);
        record.released(start + CAP * 3);
        record.removed(start + CAP * 3 + FLAP_WINDOW);
        assert_eq!(record.flaps, 0);
        assert!(minimum_hold(CAP, 40) <= MAX_HOLD);
    }
}
