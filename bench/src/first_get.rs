//! What a user waits for: from creating an ExtensionServer to the first successful list of its
//! resource through the aggregator. Twenty servers, one at a time, each running the sample
//! server under the kubelet stand-in (kwok reports the pod ready at once). Each wait is split
//! into the operator's part (create to APIService created) and the aggregator's (APIService
//! created to Available=True, then the first list that succeeds).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use testenv::TestNamespace;

use crate::{latency, servers, watch};

pub const SERVERS: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(120);
/// How often the list is tried until it first succeeds: the resolution of the measurement.
const TRY_EVERY: Duration = Duration::from_millis(25);

/// Sorted durations from each create.
pub struct FirstGet {
    /// To the first successful list.
    pub first_get: Vec<Duration>,
    /// To the APIService's creation (the operator's part).
    pub registered: Vec<Duration>,
    /// To the APIService's Available=True (after the aggregator's availability check).
    pub available: Vec<Duration>,
}

impl FirstGet {
    pub fn p50_ms(values: &[Duration]) -> f64 {
        crate::ms(latency::quantile(values, 0.5))
    }

    pub fn p99_ms(values: &[Duration]) -> f64 {
        crate::ms(latency::quantile(values, 0.99))
    }
}

fn manifest(namespace: &str, i: usize) -> Result<ExtensionServer> {
    let group = format!("g{i}.{namespace}.first.api");
    Ok(serde_yaml::from_str(&format!(
        "apiVersion: aggregation.dev/v1alpha1
kind: ExtensionServer
metadata: {{name: g{i}, namespace: {namespace}}}
spec:
  group: {group}
  versions: [{{name: v1}}]
  image: sample-extension-server
  port: 8443
  args:
    - --secure-port=8443
    - --tls-cert-file=/var/run/extension-server/tls/tls.crt
    - --tls-private-key-file=/var/run/extension-server/tls/tls.key
    - --group={group}
"
    ))?)
}

fn available(api_service: &APIService) -> bool {
    api_service.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    })
}

pub async fn run(binary: &std::path::Path) -> Result<FirstGet> {
    let ns = TestNamespace::create("bench-first-get").await?;
    let operator = crate::start(binary, &ns, "operator", &[])?;
    operator.wait_ready().await?;
    let kubelet = testenv::kubelet::start(&ns.cluster, &[&ns.name]).await?;
    let api: Api<ExtensionServer> = ns.api();
    let result = measure(&ns, &api).await;
    servers::delete_all(&api, TIMEOUT).await?;
    kubelet.stop().await;
    ns.delete_and_wait(TIMEOUT).await?;
    drop(operator);
    result
}

async fn measure(ns: &TestNamespace, api: &Api<ExtensionServer>) -> Result<FirstGet> {
    let api_services: Api<APIService> = Api::all(ns.client.clone());
    let mut result = FirstGet {
        first_get: Vec::new(),
        registered: Vec::new(),
        available: Vec::new(),
    };
    for i in 0..SERVERS {
        let server = manifest(&ns.name, i)?;
        let group = format!("g{i}.{}.first.api", ns.name);
        let config = watcher::Config::default().fields(&format!("metadata.name=v1.{group}"));
        let started = Instant::now();
        let registered = tokio::spawn(watch::first_times(
            api_services.clone(),
            config.clone(),
            1,
            |_| true,
            started,
            TIMEOUT,
        ));
        let available = tokio::spawn(watch::first_times(
            api_services.clone(),
            config,
            1,
            available,
            started,
            TIMEOUT,
        ));
        api.create(&PostParams::default(), &server)
            .await
            .with_context(|| format!("creating g{i}"))?;
        let path = format!("/apis/{group}/v1/myresources");
        let listed = async {
            loop {
                if testenv::upstream::get_raw(&ns.client, &path).await.is_ok() {
                    return started.elapsed();
                }
                tokio::time::sleep(TRY_EVERY).await;
            }
        };
        let first_get = tokio::time::timeout(TIMEOUT, listed)
            .await
            .with_context(|| format!("{path} did not answer within {TIMEOUT:?}"))?;
        result.first_get.push(first_get);
        result.registered.extend(registered.await??);
        result.available.extend(available.await??);
    }
    result.first_get.sort();
    result.registered.sort();
    result.available.sort();
    Ok(result)
}
