//! Requeue: when to look at a server again, as a pure function of what the pass found.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// What decides the next pass.
#[derive(Debug, Clone, Default)]
pub struct Due {
    /// The next certificate renewal or CA rotation step.
    pub tls: Option<Timestamp>,
    /// A CA rotation waits on the aggregator and the rollout (re-check soon).
    pub rotating: bool,
    /// An APIService is registered, so its certificate is probed periodically.
    pub probing: bool,
    /// Waiting on something the operator does not watch (an object in the way, a missing
    /// ServiceAccount): look again at the probe pace rather than the resync.
    pub blocked: bool,
    /// An adoption waits for this server's Service to answer (look again soon).
    pub adopting: bool,
    /// When an unavailable APIService reaches `registration.unregisterAfter`.
    pub unregister: Vec<Timestamp>,
}

/// While a CA rotation step waits.
pub const ROTATION_POLL: Duration = Duration::from_secs(5);

/// The time until the earliest due item, at most `resync`, at least one second.
pub fn after(due: &Due, resync: Duration, probe_interval: Duration, now: Timestamp) -> Duration {
    let until = |at: Timestamp| {
        let seconds = at.as_second().saturating_sub(now.as_second()).max(1);
        Duration::from_secs(seconds.unsigned_abs())
    };
    let mut wait = resync;
    if let Some(at) = due.tls {
        wait = wait.min(until(at));
    }
    if due.rotating || due.adopting {
        wait = wait.min(ROTATION_POLL);
    }
    if due.probing || due.blocked {
        wait = wait.min(probe_interval);
    }
    for at in &due.unregister {
        wait = wait.min(until(*at));
    }
    wait.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(300);
    const PROBE: Duration = Duration::from_secs(30);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("timestamp")
    }

    #[test]
    fn nothing_due_waits_for_the_resync() {
        assert_eq!(after(&Due::default(), RESYNC, PROBE, at(0)), RESYNC);
    }

    #[test]
    fn the_earliest_due_item_wins() {
        let due = Due {
            tls: Some(at(100)),
            unregister: vec![at(60), at(500)],
            ..Due::default()
        };
        assert_eq!(after(&due, RESYNC, PROBE, at(0)), Duration::from_secs(60));
        let probing = Due {
            probing: true,
            ..due.clone()
        };
        assert_eq!(after(&probing, RESYNC, PROBE, at(0)), PROBE);
        let blocked = Due {
            blocked: true,
            ..due.clone()
        };
        assert_eq!(after(&blocked, RESYNC, PROBE, at(0)), PROBE);
        let rotating = Due {
            rotating: true,
            ..probing
        };
        assert_eq!(after(&rotating, RESYNC, PROBE, at(0)), ROTATION_POLL);
        let adopting = Due {
            adopting: true,
            ..Due::default()
        };
        assert_eq!(
            after(&adopting, RESYNC, PROBE, at(0)),
            ROTATION_POLL,
            "an adoption waiting for the backend looks again soon"
        );
    }

    #[test]
    fn overdue_items_retry_after_one_second_not_at_once() {
        let due = Due {
            tls: Some(at(10)),
            ..Due::default()
        };
        assert_eq!(after(&due, RESYNC, PROBE, at(50)), Duration::from_secs(1));
    }
}
