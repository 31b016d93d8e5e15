//! RSS with foreign Secrets that carry the operator's labels: 100 of 700 KB each, next to one
//! registered ExtensionServer. A label alone never admits a Secret, and its data is never sent
//! to the operator, so RSS stays within 5 MiB of the baseline.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use testenv::TestNamespace;

use crate::servers;

pub const SECRETS: usize = 100;
pub const SECRET_BYTES: usize = 700 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

/// RSS in MiB before and after the foreign Secrets.
pub struct ForeignSecrets {
    pub before_mib: f64,
    pub after_mib: f64,
}

pub async fn run(binary: &Path) -> Result<ForeignSecrets> {
    let ns = TestNamespace::create("bench-secrets").await?;
    let operator = crate::start(binary, &ns, "operator", &[])?;
    operator.wait_ready().await?;
    let api: Api<ExtensionServer> = ns.api();
    servers::create(&api, &ns.name, 0..1).await?;
    crate::watch::first_times(
        api.clone(),
        kube::runtime::watcher::Config::default(),
        1,
        servers::registered,
        std::time::Instant::now(),
        TIMEOUT,
    )
    .await
    .context("the server did not register")?;
    let secrets: Api<Secret> = ns.api();
    let serving = format!("{}-tls", servers::name(0));
    let labels = secrets
        .get(&serving)
        .await?
        .metadata
        .labels
        .unwrap_or_default();
    recreated(&secrets, &serving).await?;
    let before = operator.rss_kib()?;
    futures::stream::iter(0..SECRETS)
        .map(|i| {
            let (secrets, labels) = (secrets.clone(), labels.clone());
            async move {
                let payload: Vec<u8> = (0..SECRET_BYTES).map(|b| (b * 31 + i) as u8).collect();
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("foreign-{i}")),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([("blob".to_string(), ByteString(payload))])),
                    ..Default::default()
                };
                secrets.create(&PostParams::default(), &secret).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;
    // The operator has seen every creation once it has seen this later deletion.
    recreated(&secrets, &serving).await?;
    let after = operator.rss_kib()?;
    servers::delete_all(&api, TIMEOUT).await?;
    ns.delete_and_wait(TIMEOUT).await?;
    Ok(ForeignSecrets {
        before_mib: before as f64 / 1024.0,
        after_mib: after as f64 / 1024.0,
    })
}

/// Deletes Secret `name` and waits until the operator has written it again.
async fn recreated(secrets: &Api<Secret>, name: &str) -> Result<()> {
    let old = secrets.get(name).await?.metadata.uid;
    secrets.delete(name, &Default::default()).await?;
    let again = move |s: Option<&Secret>| s.is_some_and(|s| s.metadata.uid != old);
    tokio::time::timeout(
        TIMEOUT,
        kube::runtime::wait::await_condition(secrets.clone(), name, again),
    )
    .await
    .context("the operator did not write its Secret again")??;
    Ok(())
}
