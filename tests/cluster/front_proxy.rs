//! Front-proxy CA rotation. The sample server reads the requestheader CA once, at start, like
//! many extension servers do. When the cluster rotates its front-proxy CA, the pod template's
//! front-proxy hash changes and the pods roll once, so the API keeps working. A server that
//! opted out (`rolloutOnFrontProxyChange: false`) keeps the old CA and refuses the aggregator.
//!
//! kube-apiserver restarts during the rotation, so the test runs on its own cluster instance.

use std::time::Duration;

use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::names::FRONT_PROXY_HASH_ANNOTATION;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use testenv::runtime;

use crate::support;
use crate::support::fixture::Server;

const INSTANCE: &str = "front-proxy";
/// How long the rollout and the aggregator may take after kube-apiserver is ready again.
const RECOVER: Duration = Duration::from_secs(90);

/// GETs the sample objects through the aggregator; Err holds the HTTP status code.
async fn list_through_aggregator(client: &kube::Client, group: &str) -> Result<(), u16> {
    let path = format!("/apis/{group}/v1/namespaces/default/myresources");
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    match client.request::<serde_json::Value>(request).await {
        Ok(list) if list["items"].as_array().is_some_and(|i| i.len() == 3) => Ok(()),
        Ok(_) => Err(200),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(_) => Err(0),
    }
}

async fn template_hash(deployments: &Api<Deployment>, name: &str) -> Option<String> {
    let deployment = deployments.get(name).await.unwrap();
    deployment
        .spec?
        .template
        .metadata?
        .annotations?
        .remove(FRONT_PROXY_HASH_ANNOTATION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_roll_once_when_the_front_proxy_ca_rotates() {
    let started = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f64());
    let _instance = testenv::cluster::TearDown(INSTANCE);
    let mut cluster = testenv::cluster::up(INSTANCE).await.unwrap();
    let (ns, operator) = support::operator_on(cluster.clone(), "front-proxy").await;

    phase("cluster up");
    let servers: Api<ExtensionServer> = ns.api();
    let (rolls, stays) = ("rolls", "stays");
    let (rolls_group, stays_group) = ("rolls.custom.api", "stays.custom.api");
    let opted_out = "{rolloutOnFrontProxyChange: false}";
    for (name, group, extra) in [(rolls, rolls_group, "{}"), (stays, stays_group, opted_out)] {
        servers
            .create(
                &PostParams::default(),
                &Server::sample_serving(name, group).extra(extra).build(),
            )
            .await
            .unwrap();
    }
    let rolling_pod = runtime::start(&ns.cluster, &ns.name, rolls).await.unwrap();
    let fixed_pod = runtime::start(&ns.cluster, &ns.name, stays).await.unwrap();
    for name in [rolls, stays] {
        support::wait_for(servers.clone(), name, support::is_true("Ready")).await;
    }
    for group in [rolls_group, stays_group] {
        support::eventually(RECOVER, &format!("{group} through the aggregator"), || {
            let client = ns.client.clone();
            async move { list_through_aggregator(&client, group).await.is_ok() }
        })
        .await;
    }
    phase("both servers answer through the aggregator");
    let deployments: Api<Deployment> = ns.api();
    let hash_before = template_hash(&deployments, rolls).await;
    assert!(
        hash_before.is_some(),
        "the pod template has no front-proxy hash"
    );
    assert_eq!(template_hash(&deployments, stays).await, None);
    let rolling_starts = *rolling_pod.starts.borrow();
    let fixed_starts = *fixed_pod.starts.borrow();

    cluster.rotate_front_proxy_ca().await.unwrap();
    let client = cluster.client().await.unwrap();
    phase("front-proxy CA rotated");

    // One rollout, and the API answers again with the new front-proxy certificate.
    rolling_pod
        .started_more_than(rolling_starts, RECOVER)
        .await
        .unwrap();
    support::eventually(RECOVER, "the rolled server through the aggregator", || {
        let client = client.clone();
        async move { list_through_aggregator(&client, rolls_group).await.is_ok() }
    })
    .await;
    phase("the rolled server answers");
    assert_ne!(template_hash(&deployments, rolls).await, hash_before);
    assert_eq!(
        *rolling_pod.starts.borrow(),
        rolling_starts + 1,
        "more than one rollout"
    );
    // The opted-out server kept the old CA: it refuses the aggregator's new certificate (401),
    // the aggregator marks its APIService unavailable, and status says why.
    let refused = |server: Option<&ExtensionServer>| {
        server
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Available"))
            .is_some_and(|c| c.status == "False" && c.message.contains("(401)"))
    };
    support::wait_for(servers.clone(), stays, refused).await;
    phase("the opted-out server is reported");
    assert_eq!(*fixed_pod.starts.borrow(), fixed_starts);

    operator.abort();
    drop((rolling_pod, fixed_pod));
    phase("done");
}
