//! Prometheus as a cluster runs it (examples/prometheus.yaml), scraping the sample workload
//! (examples/sample-workload.yaml) and the kube-apiserver, on a dedicated instance whose pods
//! the kubelet stand-in runs: real processes on the pod network, their volumes mounted.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;
use testenv::{TestNamespace, manifest, prometheus};

/// Prometheus scrapes every 5 s; the first scrape follows its start and the pod's discovery.
const SCRAPED_WITHIN: Duration = Duration::from_secs(90);

fn example(file: &str) -> PathBuf {
    testenv::paths::workspace_root().join("examples").join(file)
}

/// Polls `promql` until `accept` holds for its result (Prometheus has no watch); on timeout,
/// fails with the last result.
async fn wait_query(
    client: &kube::Client,
    namespace: &str,
    promql: &str,
    accept: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = String::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let outcome = tokio::time::timeout(SCRAPED_WITHIN, async {
        loop {
            ticks.tick().await;
            match prometheus::query(client, namespace, promql).await {
                Ok(result) if accept(&result) => return result,
                Ok(result) => last = format!("{result:?}"),
                Err(error) => last = format!("{error:#}"),
            }
        }
    })
    .await;
    outcome.unwrap_or_else(|_| panic!("{promql} within {SCRAPED_WITHIN:?}; last: {last}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_workload_pods_and_the_api_server() {
    let _instance = testenv::cluster::TearDown("prometheus");
    let cluster = testenv::cluster::up("prometheus").await.unwrap();
    let ns = TestNamespace::create_on(cluster, "prometheus")
        .await
        .unwrap();
    let (name, client) = (ns.name.clone(), ns.client.clone());
    for file in ["prometheus.yaml", "sample-workload.yaml"] {
        let objects = manifest::read(&example(file)).unwrap();
        manifest::apply(&client, &objects, &name).await.unwrap();
    }
    let _kubelet = testenv::kubelet::start(&ns.cluster, &[&name])
        .await
        .unwrap();

    // Each workload pod is a target of its own, labelled with its pod, and counts the load
    // generator's requests.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
    let workload = ListParams::default().labels("app.kubernetes.io/name=sample-workload");
    let served = format!(r#"http_requests_total{{namespace="{name}"}}"#);
    let result = wait_query(&client, &name, &served, |r| {
        r.iter()
            .any(|s| prometheus::value(s).is_some_and(|v| v > 0.0))
    })
    .await;
    let pod_names: Vec<String> = pods
        .list(&workload)
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    let labelled: Vec<&str> = result
        .iter()
        .filter_map(|s| s["metric"]["pod"].as_str())
        .collect();
    assert_eq!(
        labelled, pod_names,
        "one series per workload pod: {result:?}"
    );

    // The API server, whose aggregator reports each APIService's availability.
    let up = r#"up{job="kubernetes-apiservers"}"#;
    wait_query(&client, &name, up, |r| {
        r.first().and_then(prometheus::value) == Some(1.0)
    })
    .await;
    wait_query(&client, &name, "aggregator_unavailable_apiservice", |r| {
        !r.is_empty()
    })
    .await;
}
