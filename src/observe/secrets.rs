//! The Secret cache, metadata first: the label-selected watch asks for metadata only, and only a
//! Secret this operator controls (an ExtensionServer's controller ownerRef) is then read whole
//! and trimmed to the keys the operator reads. A Secret that merely carries our labels never has
//! its data sent to the operator at all.

use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};

use super::admit;
use super::packed::{Packed, packing};

/// Tries of a GET of one admitted Secret before the change is dropped (a later event, or the
/// live read before a CA or certificate is minted, catches up).
const READS: u32 = 3;

/// A cache of the Secrets in `namespace` (or everywhere) that this operator controls, and the
/// stream of changed Secrets that keeps it. `trim` slims each before it is stored.
pub fn controlled(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    trim: fn(&mut Secret),
) -> (
    Store<Packed<Secret>>,
    impl Stream<Item = Result<Secret, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    // An Api of PartialObjectMeta asks for metadata only.
    let api: Api<PartialObjectMeta<Secret>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let stream = watcher::watcher(api, config)
        .default_backoff()
        .filter_map(|event| {
            std::future::ready(match event {
                Ok(event) => admit::filter(event, admit::controlled).map(Ok),
                Err(error) => Some(Err(error)),
            })
        })
        .then(move |event| {
            let client = client.clone();
            async move {
                match event {
                    Ok(event) => whole(&client, event).await.map(Ok),
                    Err(error) => Some(Err(error)),
                }
            }
        })
        .filter_map(std::future::ready)
        .modify(trim)
        .inspect_ok(packing(writer))
        .touched_objects();
    (reader, stream)
}

/// The event with each applied Secret read whole; `None` when it is gone already (its delete
/// follows) or cannot be read.
async fn whole(client: &Client, event: Event<PartialObjectMeta<Secret>>) -> Option<Event<Secret>> {
    Some(match event {
        Event::Apply(meta) => Event::Apply(read(client, meta).await?),
        Event::InitApply(meta) => Event::InitApply(read(client, meta).await?),
        Event::Delete(meta) => Event::Delete(Secret {
            metadata: meta.metadata,
            ..Secret::default()
        }),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    })
}

async fn read(client: &Client, meta: PartialObjectMeta<Secret>) -> Option<Secret> {
    let name = meta.metadata.name?;
    let namespace = meta.metadata.namespace?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    for attempt in 0..READS {
        match api.get_opt(&name).await {
            Ok(found) => return found,
            Err(error) => {
                tracing::debug!(%error, %namespace, %name, attempt, "reading a Secret of ours");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    None
}
