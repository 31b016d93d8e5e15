//! The local control plane is real: scheduling, kwok, RBAC, loopback ClusterIPs, aggregation
//! wiring, and a clean shutdown.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use testenv::TestNamespace;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/never-pulled:1"}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn deployment_becomes_available_through_scheduler_and_kwok() {
    let ns = TestNamespace::create("cp-deploy").await.unwrap();
    let deployments: Api<Deployment> = ns.api();
    deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let available = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(deployments.clone(), "web", available),
    )
    .await
    .expect("Deployment did not become Available")
    .unwrap();
    let pods: Api<Pod> = ns.api();
    let pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    for pod in pods.items {
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some(testenv::cluster::NODE_NAME));
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    }
}

#[tokio::test]
async fn rbac_is_enforced_for_a_service_account_without_grants() {
    let ns = TestNamespace::create("cp-rbac").await.unwrap();
    let user = format!("system:serviceaccount:{}:default", ns.name);
    let client = ns
        .cluster
        .client_as(&user, &["system:serviceaccounts", "system:authenticated"])
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, &ns.name);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test]
async fn services_get_loopback_cluster_ips() {
    let ns = TestNamespace::create("cp-svc").await.unwrap();
    let services: Api<Service> = ns.api();
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 443, "targetPort": 8443}]}
    }))
    .unwrap();
    let created = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let ip: Ipv4Addr = created.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    assert!(ip.is_loopback(), "ClusterIP {ip} is not in 127.0.0.0/8");
}

#[tokio::test]
async fn aggregation_is_wired_with_a_front_proxy_ca() {
    let cluster = testenv::shared_cluster().await.unwrap();
    let client = cluster.client().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let auth = config_maps
        .get("extension-apiserver-authentication")
        .await
        .unwrap();
    let data = auth.data.unwrap();
    let front_proxy_ca =
        std::fs::read_to_string(cluster.dir.join("pki/front-proxy-ca.crt")).unwrap();
    let cluster_ca = std::fs::read_to_string(cluster.dir.join("pki/ca.crt")).unwrap();
    let requestheader_ca = &data["requestheader-client-ca-file"];
    assert!(requestheader_ca.contains(front_proxy_ca.trim()));
    assert!(
        !requestheader_ca.contains(cluster_ca.trim()),
        "front-proxy CA must be separate"
    );
    assert_eq!(
        data["requestheader-allowed-names"],
        r#"["front-proxy-client"]"#
    );
    assert_eq!(
        data["requestheader-username-headers"],
        r#"["X-Remote-User"]"#
    );
    assert_eq!(data["requestheader-group-headers"], r#"["X-Remote-Group"]"#);
    assert!(data.contains_key("client-ca-file"));
}

#[tokio::test]
async fn a_second_up_reuses_the_healthy_cluster() {
    let first = testenv::shared_cluster().await.unwrap();
    let second = testenv::shared_cluster().await.unwrap();
    assert_eq!(first.state.pids, second.state.pids);
    assert_eq!(first.state.apiserver_port, second.state.apiserver_port);
}

#[tokio::test]
async fn down_leaves_no_process_behind() {
    // A separate instance, so the shared cluster other tests use keeps running.
    let instance = "lifecycle-check";
    let cluster = testenv::cluster::up(instance).await.unwrap();
    let pids: Vec<u32> = cluster.state.pids.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        pids.len(),
        5,
        "etcd, apiserver, controller-manager, scheduler, kwok"
    );
    assert!(pids.iter().all(|p| testenv::process::alive(*p)));
    let left = testenv::cluster::down(instance).unwrap();
    assert!(left.is_empty(), "still running: {left:?}");
    for pid in pids {
        assert!(!testenv::process::alive(pid), "pid {pid} survived down");
    }
    assert!(!cluster.dir.exists(), "state directory was not removed");
}
