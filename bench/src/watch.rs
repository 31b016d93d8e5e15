//! Waiting on the API with watches, never with sleeps: when each object first met a condition,
//! until a selection is empty, and a live mirror of one field per object.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Watches `api` until `want` objects have met `condition`; returns when each first met it,
/// measured from `started`, in the order they did.
pub async fn first_times<K>(
    api: Api<K>,
    config: watcher::Config,
    want: usize,
    condition: impl Fn(&K) -> bool,
    started: Instant,
    timeout: Duration,
) -> Result<Vec<Duration>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut events = watcher::watcher(api, config).boxed();
    let waiting = async {
        while seen.len() < want {
            let event = events.try_next().await?.context("the watch ended")?;
            if let Event::Apply(object) | Event::InitApply(object) = event
                && condition(&object)
            {
                seen.entry(object.name_any())
                    .or_insert_with(|| started.elapsed());
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, waiting)
        .await
        .with_context(|| format!("only {} of {want} met the condition", seen.len()))??;
    let mut times: Vec<Duration> = seen.into_values().collect();
    times.sort();
    Ok(times)
}

/// Waits until no object of `api` matches `config`.
pub async fn until_empty<K>(api: Api<K>, config: watcher::Config, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut present: BTreeMap<String, ()> = BTreeMap::new();
    let mut listing: BTreeMap<String, ()> = BTreeMap::new();
    let mut listed = false;
    let mut events = watcher::watcher(api, config).boxed();
    let waiting = async {
        loop {
            match events.try_next().await?.context("the watch ended")? {
                Event::Init => listing.clear(),
                Event::InitApply(object) => {
                    listing.insert(object.name_any(), ());
                }
                Event::InitDone => {
                    present = std::mem::take(&mut listing);
                    listed = true;
                }
                Event::Apply(object) => {
                    present.insert(object.name_any(), ());
                }
                Event::Delete(object) => {
                    present.remove(&object.name_any());
                }
            }
            if listed && present.is_empty() {
                return anyhow::Ok(());
            }
        }
    };
    tokio::time::timeout(timeout, waiting)
        .await
        .context("objects were still present")?
}

/// A live map from object name to `field(object)`, fed by a watch in a background task.
pub struct Mirror<V> {
    receiver: watch::Receiver<BTreeMap<String, V>>,
    task: tokio::task::JoinHandle<()>,
}

impl<V: Send + Sync + 'static> Mirror<V> {
    /// Starts watching `api` and waits until the initial listing is in the map.
    pub async fn start<K>(api: Api<K>, field: impl Fn(&K) -> V + Send + 'static) -> Result<Self>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let (sender, receiver) = watch::channel(BTreeMap::new());
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    Event::Apply(object) | Event::InitApply(object) => {
                        let value = field(&object);
                        sender.send_modify(|map| {
                            map.insert(object.name_any(), value);
                        });
                    }
                    Event::Delete(object) => sender.send_modify(|map| {
                        map.remove(&object.name_any());
                    }),
                    Event::InitDone => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Init => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), synced_rx)
            .await
            .context("the initial listing did not complete")?
            .context("the watch ended")?;
        Ok(Self { receiver, task })
    }

    /// Waits until the value for `name` passes `check`.
    pub async fn wait_for(
        &mut self,
        name: &str,
        check: impl Fn(&V) -> bool,
        timeout: Duration,
    ) -> Result<()> {
        tokio::time::timeout(
            timeout,
            self.receiver
                .wait_for(|map| map.get(name).is_some_and(&check)),
        )
        .await
        .with_context(|| format!("{name} did not reach the expected state"))?
        .context("the watch ended")?;
        Ok(())
    }
}

impl<V> Drop for Mirror<V> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
