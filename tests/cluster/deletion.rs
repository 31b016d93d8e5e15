//! Deletion cleans up in order: the APIServices go before the finalizer is released, then the
//! cluster-scoped and kube-system RBAC; the namespace then deletes cleanly.

use std::time::{Duration, Instant};

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::names::MAX_SERVER_NAME_LEN;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher;

use crate::support;
use crate::support::Harness;
use crate::support::fixture::Server;

/// Watches the named object; returns once the watch has listed it, with a handle that
/// resolves with the instant it was seen deleted. (A watch that lists only after the deletion
/// would never see it.)
async fn deleted_at<K>(api: Api<K>, name: &str) -> tokio::task::JoinHandle<Instant>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (listed, is_listed) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(async move {
        let mut listed = Some(listed);
        let mut events = watcher(api, config).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        let _ = listed.send(());
                    }
                }
                Ok(watcher::Event::Delete(_)) => return Instant::now(),
                _ => {}
            }
        }
        Instant::now()
    });
    tokio::time::timeout(Duration::from_secs(30), is_listed)
        .await
        .expect("the watch did not list in time")
        .unwrap();
    handle
}

#[tokio::test]
async fn deletion_removes_api_services_before_releasing_the_finalizer() {
    let h = Harness::start("es-delete").await;
    let ns = h.ns.name.clone();
    let group = format!("{ns}.custom.api");
    let api_service = format!("v1.{group}");
    h.create(&Server::new("doomed").group(&group)).await;
    let server = h.wait_condition("doomed", "Registered", "True", None).await;
    assert!(
        server
            .metadata
            .finalizers
            .unwrap()
            .contains(&"aggregation.dev/cleanup".to_string())
    );

    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    let api_service_gone = deleted_at(api_services.clone(), &api_service).await;
    let server_gone = deleted_at::<ExtensionServer>(h.servers(), "doomed").await;
    h.servers()
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let (api_service_gone, server_gone) = tokio::time::timeout(Duration::from_secs(60), async {
        (api_service_gone.await.unwrap(), server_gone.await.unwrap())
    })
    .await
    .expect("deletion did not finish");
    assert!(
        api_service_gone <= server_gone,
        "the ExtensionServer was released before its APIService was deleted"
    );
    assert!(api_services.get_opt(&api_service).await.unwrap().is_none());
    let crbs: Api<ClusterRoleBinding> = Api::all(h.ns.client.clone());
    assert!(
        crbs.get_opt(&format!("aggregation.dev:{ns}:doomed:auth-delegator"))
            .await
            .unwrap()
            .is_none()
    );
    let rbs: Api<RoleBinding> = Api::namespaced(h.ns.client.clone(), "kube-system");
    assert!(
        rbs.get_opt(&format!("aggregation.dev:{ns}:doomed:auth-reader"))
            .await
            .unwrap()
            .is_none()
    );

    // Namespaced children are garbage collected and the namespace deletes.
    h.ns.delete_and_wait(Duration::from_secs(120))
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_the_namespace_with_a_live_server_completes() {
    let h = Harness::start("es-ns-delete").await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(
        &Server::new("inside")
            .group(&group)
            .versions(&["v1", "v2beta1"])
            .replicas(2),
    )
    .await;
    h.wait_condition("inside", "Registered", "True", None).await;
    h.ns.delete_and_wait(Duration::from_secs(120))
        .await
        .unwrap();
    let api_services: Api<APIService> = Api::all(h.ns.client.clone());
    for version in ["v1", "v2beta1"] {
        let name = format!("{version}.{group}");
        assert!(
            api_services.get_opt(&name).await.unwrap().is_none(),
            "{name} left behind"
        );
    }
}

#[tokio::test]
async fn an_extension_server_with_the_longest_accepted_name_goes_ready_and_deletes_cleanly() {
    // The sample server serves my.custom.api, so this server can become Ready for real.
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("es-longest").await;
    let ns = h.ns.name.clone();
    let name = format!("longest-{}", "n".repeat(MAX_SERVER_NAME_LEN - 8));
    h.create(&Server::new(&name).group("my.custom.api").sample_port(443))
        .await;
    let _pod = testenv::runtime::start(&h.ns.cluster, &ns, &name)
        .await
        .unwrap();
    h.wait_condition(&name, "Ready", "True", None).await;

    let client = h.ns.client.clone();
    let gone = vec![
        deleted_at(Api::<APIService>::all(client.clone()), "v1.my.custom.api").await,
        deleted_at(
            Api::<ClusterRoleBinding>::all(client.clone()),
            &format!("aggregation.dev:{ns}:{name}:auth-delegator"),
        )
        .await,
        deleted_at(
            Api::<RoleBinding>::namespaced(client, "kube-system"),
            &format!("aggregation.dev:{ns}:{name}:auth-reader"),
        )
        .await,
        deleted_at::<ExtensionServer>(h.servers(), &name).await,
    ];
    h.servers()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(gone))
        .await
        .expect("the server or a cluster-scoped child was not deleted");
}
