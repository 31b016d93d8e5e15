//! The background prober: a pass reads the latest finding for its target and, when a probe is
//! due, starts one in the background; a finding that changes wakes every server that asked. Failures back off per target, so unreachable hosts never hold a reconcile slot and
//! are not dialled at every pass.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::{Finding, Handshake, Kind, Target, dial};
use crate::crd::ExtensionServer;

/// The first retry after a failed probe; it doubles up to the probe interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

struct Entry {
    latest: Option<Finding>,
    /// When the latest finding came in.
    found_at: Option<Instant>,
    in_flight: bool,
    failures: u32,
    due: Instant,
    last_asked: Instant,
    waiters: HashSet<ObjectRef<ExtensionServer>>,
}

/// The board of targets, their latest findings and who asked.
pub struct Prober {
    limit: Arc<Semaphore>,
    board: Mutex<HashMap<Target, Entry>>,
    wake: mpsc::UnboundedSender<ObjectRef<ExtensionServer>>,
    woken: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<ExtensionServer>>>>,
}

impl Prober {
    /// At most `concurrency` probes in flight.
    pub fn new(concurrency: usize) -> Self {
        let (wake, woken) = mpsc::unbounded_channel();
        Self {
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            board: Mutex::default(),
            wake,
            woken: Mutex::new(Some(woken)),
        }
    }

    /// The servers to reconcile because a finding they asked for changed (once).
    pub fn wakes(&self) -> Option<impl Stream<Item = ObjectRef<ExtensionServer>> + use<>> {
        let receiver = self.woken.lock().ok()?.take()?;
        Some(futures::stream::unfold(receiver, |mut receiver| async {
            receiver.recv().await.map(|server| (server, receiver))
        }))
    }

    /// The one door: records `asker`, starts a probe of `target` when one is due (or at once
    /// with `doubt`, when the aggregator reports the backend down and the finding was good), and
    /// returns the latest finding; `None` while the first probe runs.
    pub fn latest(
        self: &Arc<Self>,
        asker: &ObjectRef<ExtensionServer>,
        target: Target,
        interval: Duration,
        doubt: bool,
    ) -> Option<Finding> {
        let now = Instant::now();
        let mut board = self.board.lock().ok()?;
        // Targets nobody asked about for long are forgotten, when a new one arrives (not at
        // every look: a pass should not walk the whole board).
        if !board.contains_key(&target) {
            let forget_after = interval.saturating_mul(10);
            board.retain(|_, e| e.in_flight || now.duration_since(e.last_asked) < forget_after);
        }
        let entry = board.entry(target.clone()).or_insert_with(|| Entry {
            latest: None,
            found_at: None,
            in_flight: false,
            failures: 0,
            due: now,
            last_asked: now,
            waiters: HashSet::new(),
        });
        entry.last_asked = now;
        entry.waiters.insert(asker.clone());
        let doubted = doubt
            && entry.latest.as_ref().is_some_and(Finding::ok)
            && entry
                .found_at
                .is_some_and(|at| now.duration_since(at) >= FIRST_RETRY);
        if !entry.in_flight && (now >= entry.due || doubted) {
            entry.in_flight = true;
            let prober = self.clone();
            tokio::spawn(async move {
                let finding = prober.probe(&target).await;
                prober.record(target, finding, interval);
            });
        }
        entry.latest.clone()
    }

    async fn probe(&self, target: &Target) -> Finding {
        let Ok(_permit) = self.limit.acquire().await else {
            return Finding::Verify(Handshake::Inconclusive);
        };
        let bundle = target.bundle.as_deref();
        let screen = target.screen.as_ref();
        let apiserver = screen.map(|s| s.apiserver_addresses.as_slice());
        let (host, port, name) = (&target.host, target.port, &target.server_name);
        match target.kind {
            Kind::Reach => Finding::Reach(dial::dial(host, port, name, bundle, apiserver).await),
            Kind::Discovery => {
                let path = target.path.as_deref().unwrap_or("/apis");
                Finding::Reach(dial::discover(host, port, name, bundle, apiserver, path).await)
            }
            Kind::Verify => Finding::Verify(
                dial::handshake(
                    &target.host,
                    target.port,
                    &target.server_name,
                    bundle.unwrap_or_default(),
                )
                .await,
            ),
        }
    }

    /// Stores a finding, schedules the next probe, and wakes the askers when it changed.
    fn record(&self, target: Target, finding: Finding, interval: Duration) {
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        let Some(entry) = board.get_mut(&target) else {
            return;
        };
        entry.in_flight = false;
        entry.failures = if finding.ok() {
            0
        } else {
            entry.failures.saturating_add(1)
        };
        let wait = match entry.failures {
            0 => interval,
            n => FIRST_RETRY
                .saturating_mul(1 << (n - 1).min(16))
                .min(interval),
        };
        entry.due = Instant::now() + wait;
        entry.found_at = Some(Instant::now());
        if entry.latest.as_ref() != Some(&finding) {
            entry.latest = Some(finding);
            for asker in std::mem::take(&mut entry.waiters) {
                let _ = self.wake.send(asker);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProbeFailure;

    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    }

    #[tokio::test]
    async fn a_pass_never_waits_and_a_changed_finding_wakes_it() {
        let prober = Arc::new(Prober::new(1));
        let mut wakes = Box::pin(prober.wakes().expect("wakes"));
        let asker = ObjectRef::new("ext").within("ns");
        let target = Target {
            host: "127.0.0.1".into(),
            port: closed_port(),
            server_name: "ext.ns.svc".into(),
            bundle: None,
            kind: Kind::Reach,
            path: None,
            screen: None,
        };
        let interval = Duration::from_secs(30);
        assert_eq!(prober.latest(&asker, target.clone(), interval, false), None);
        let woken = futures::StreamExt::next(&mut wakes).await;
        assert_eq!(woken, Some(asker.clone()));
        let found = prober
            .latest(&asker, target, interval, false)
            .expect("a finding");
        assert!(
            matches!(found, Finding::Reach(Err(ProbeFailure::Dial(_)))),
            "{found:?}"
        );
    }
}
