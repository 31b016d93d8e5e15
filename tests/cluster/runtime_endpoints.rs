//! The operator's HTTP endpoints over real HTTP: `/readyz` is 503 until the caches sync and 200
//! after; `/metrics` shows the reconcile, certificate and APIService series after a reconcile.

use std::sync::Arc;
use std::time::Duration;

use extension_server_operator::context::{Context, Settings};
use extension_server_operator::crd::ExtensionServer;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use testenv::TestNamespace;

use crate::support;
use crate::support::fixture::Server;
use crate::support::operator::http_get as get;

#[tokio::test]
async fn endpoints_answer_and_metrics_show_a_reconcile() {
    let ns = TestNamespace::create("es-endpoints").await.unwrap();
    support::install_crd(&ns.client).await;
    let ctx =
        Arc::new(Context::connect(support::config_for(&ns).await, Settings::default()).unwrap());
    let listener = extension_server_operator::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(extension_server_operator::http::serve(
        listener,
        ctx.clone(),
    ));

    assert_eq!(get(port, "/healthz").await.unwrap().0, 200);
    assert_eq!(
        get(port, "/readyz").await.unwrap().0,
        503,
        "ready before the caches synced"
    );

    let operator = tokio::spawn(extension_server_operator::controller::run(
        ctx.clone(),
        Some(ns.name.clone()),
    ));
    let mut ready = ctx.ready.subscribe();
    tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r))
        .await
        .expect("the caches did not sync")
        .unwrap();
    assert_eq!(get(port, "/readyz").await.unwrap().0, 200);

    let group = format!("{}.custom.api", ns.name);
    let server_object = Server::new("measured")
        .namespace(&ns.name)
        .group(&group)
        .build();
    let servers: Api<ExtensionServer> = ns.api();
    servers
        .create(&PostParams::default(), &server_object)
        .await
        .unwrap();
    let registered = |s: Option<&ExtensionServer>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Registered" && c.status == "True")
                && !s.api_services.is_empty()
        })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(servers, "measured", registered),
    )
    .await
    .unwrap()
    .unwrap();

    let (status, metrics) = get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for series in [
        "extension_server_operator_reconciles_total",
        "extension_server_operator_reconcile_duration_seconds_bucket",
        "extension_server_operator_api_writes_total",
        &format!(
            "extension_server_operator_certificate_expiry_timestamp_seconds{{namespace=\"{}\",name=\"measured\"}}",
            ns.name
        ),
        &format!(
            "extension_server_operator_apiservice_available{{apiservice=\"v1.{group}\",namespace=\"{}\",name=\"measured\"}}",
            ns.name
        ),
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    // Deleted while the operator runs, so its finalizer removes everything cluster-scoped.
    let servers: Api<ExtensionServer> = ns.api();
    let uid = servers.get("measured").await.unwrap().metadata.uid.unwrap();
    servers
        .delete("measured", &Default::default())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            servers,
            "measured",
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("the ExtensionServer was not deleted")
    .unwrap();
    operator.abort();
    server.abort();
}
