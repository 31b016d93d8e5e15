//! Real upstream aggregated servers under the pod-runtime stand-in, each on a dedicated
//! instance: their APIServices are cluster-wide, and the shared cluster's tests assert that
//! nobody else registered them. The first run builds the server (see `tools::upstream_server`).
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

use std::time::Duration;

use testenv::cluster::{self, TearDown};
use testenv::{TestNamespace, upstream};

#[tokio::test(flavor = "multi_thread")]
async fn the_custom_metrics_adapter_serves_through_the_aggregator_and_drives_an_hpa() {
    const INSTANCE: &str = "custom-metrics";
    let _instance = TearDown(INSTANCE);
    let cluster = cluster::up(INSTANCE).await.unwrap();
    let ns = TestNamespace::create_on(cluster, "adapter").await.unwrap();
    let adapter = upstream::run_custom_metrics_adapter(&ns.cluster, &ns.name)
        .await
        .unwrap();
    upstream::check_custom_metrics_adapter(&ns.client, &adapter.installed)
        .await
        .unwrap();
    upstream::check_external_metric_scales(&ns.client, &ns.name)
        .await
        .unwrap();
    adapter.installed.remove(&ns.client).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_server_reports_the_kwok_node_through_the_aggregator() {
    const INSTANCE: &str = "metrics-server";
    let _instance = TearDown(INSTANCE);
    let cluster = cluster::up(INSTANCE).await.unwrap();
    let ns = TestNamespace::create_on(cluster, "metrics").await.unwrap();
    assert!(
        upstream::node_serves_resource_metrics(&ns.client)
            .await
            .unwrap()
    );
    let server = upstream::run_metrics_server(&ns.cluster, &ns.name)
        .await
        .unwrap();
    let nodes = upstream::check_node_metrics(&ns.client, Duration::from_secs(90))
        .await
        .unwrap();
    eprintln!("{nodes}");
    server.installed.remove(&ns.client).await.unwrap();
}
