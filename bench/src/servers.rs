//! ExtensionServers for the bench: `s<i>` serving `s<i>.<namespace>.bench.api`, created with
//! bounded concurrency, and the conditions the bench waits for.

use std::time::Duration;

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

/// The image of every bench workload; kwok marks the pods Ready without running it.
pub const IMAGE: &str = "img";
/// Parallel create requests when making many ExtensionServers.
const CREATE_CONCURRENCY: usize = 16;

pub fn name(i: usize) -> String {
    format!("s{i}")
}

pub fn manifest(namespace: &str, i: usize) -> Result<ExtensionServer> {
    Ok(serde_yaml::from_str(&format!(
        "apiVersion: aggregation.dev/v1alpha1\nkind: ExtensionServer\nmetadata: {{name: s{i}, namespace: {namespace}}}\nspec: {{group: s{i}.{namespace}.bench.api, versions: [{{name: v1}}], image: {IMAGE}}}\n"
    ))?)
}

/// Creates `s<i>` for every i in `range`, `CREATE_CONCURRENCY` at a time.
pub async fn create(
    api: &Api<ExtensionServer>,
    namespace: &str,
    range: std::ops::Range<usize>,
) -> Result<()> {
    futures::stream::iter(range)
        .map(|i| async move {
            api.create(&PostParams::default(), &manifest(namespace, i)?)
                .await
                .with_context(|| format!("creating s{i}"))?;
            anyhow::Ok(())
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Registered=True.
pub fn registered(server: &ExtensionServer) -> bool {
    server.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Registered" && c.status == "True")
    })
}

/// Deletes every ExtensionServer in the namespace and waits until the operator's finalizer
/// has let them all go.
pub async fn delete_all(api: &Api<ExtensionServer>, timeout: Duration) -> Result<()> {
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .context("deleting the ExtensionServers")?;
    crate::watch::until_empty(api.clone(), watcher::Config::default(), timeout)
        .await
        .context("ExtensionServers were not cleaned up")
}
