//! Aggregated read traffic: `kubectl get myresources.<group>` (a LIST through the
//! kube-apiserver's aggregator) for every group, again and again until stopped, counting the
//! requests sent and those that failed (an error, or a list without the served objects).

use std::time::Duration;

use anyhow::Result;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Time between rounds (one LIST per group each).
const PACE: Duration = Duration::from_millis(20);

/// What the traffic saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub failed: u64,
    /// The first few failures, for the report.
    pub failures: Vec<String>,
}

pub struct Traffic {
    stop: watch::Sender<bool>,
    /// Requests sent so far.
    sent: watch::Receiver<u64>,
    task: JoinHandle<Tally>,
}

impl Traffic {
    /// Starts listing `myresources` in `namespace` for each group, version v1.
    pub fn start(client: kube::Client, namespace: &str, groups: &[String]) -> Self {
        let apis: Vec<(String, Api<DynamicObject>)> = groups
            .iter()
            .map(|group| {
                let resource = ApiResource {
                    group: group.clone(),
                    version: "v1".into(),
                    api_version: format!("{group}/v1"),
                    kind: "MyResource".into(),
                    plural: "myresources".into(),
                };
                let api = Api::namespaced_with(client.clone(), namespace, &resource);
                (group.clone(), api)
            })
            .collect();
        let (stop, mut stopped) = watch::channel(false);
        let (sent_tx, sent) = watch::channel(0);
        let task = tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut rounds = tokio::time::interval(PACE);
            rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.changed() => return tally,
                    _ = rounds.tick() => {}
                }
                for (group, api) in &apis {
                    tally.sent += 1;
                    let failure = match api.list(&ListParams::default()).await {
                        Ok(list) if list.items.is_empty() => Some("an empty list".to_string()),
                        Ok(_) => None,
                        Err(error) => Some(error.to_string()),
                    };
                    if let Some(failure) = failure {
                        tally.failed += 1;
                        if tally.failures.len() < 5 {
                            tally.failures.push(format!("{group}: {failure}"));
                        }
                    }
                }
                sent_tx.send_replace(tally.sent);
            }
        });
        Self { stop, sent, task }
    }

    /// Waits until `more` requests beyond those sent so far have been sent.
    pub async fn wait_for_more(&mut self, more: u64) -> Result<()> {
        let goal = *self.sent.borrow() + more;
        tokio::time::timeout(
            Duration::from_secs(120),
            self.sent.wait_for(|sent| *sent >= goal),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{more} requests were not sent within 120 s"))??;
        Ok(())
    }

    /// Stops the traffic and returns what it saw.
    pub async fn stop(self) -> Result<Tally> {
        let _ = self.stop.send(true);
        Ok(self.task.await?)
    }
}
