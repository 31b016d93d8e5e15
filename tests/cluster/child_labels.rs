//! `--child-label`: every child of a server carries the admin's labels, and a changed set
//! (as after an upgrade of the operator) relabels them all, the CA Secret included, without
//! minting a new CA or rolling the pods.

use std::collections::BTreeMap;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::child_labels::ChildLabels;
use extension_server_operator::context::Settings;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::support::fixture::Server;
use crate::support::{Harness, wait_for};

/// Waits until every child of server `name` carries the `team` and `cost-centre` labels as
/// `want` has them.
async fn wait_labelled(h: &Harness, name: &str, group: &str, want: &[(&str, &str)]) {
    let ns = &h.ns.name;
    let client = &h.ns.client;
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    macro_rules! labelled {
        ($api:expr, $object:expr) => {
            wait_for($api, $object.as_str(), carries(&want)).await
        };
    }
    labelled!(h.ns.api::<ServiceAccount>(), name.to_string());
    labelled!(h.ns.api::<Deployment>(), name.to_string());
    labelled!(h.ns.api::<Service>(), name.to_string());
    labelled!(h.ns.api::<Secret>(), format!("{name}-tls"));
    labelled!(h.ns.api::<Secret>(), format!("{name}-ca"));
    labelled!(
        Api::<APIService>::all(client.clone()),
        format!("v1.{group}")
    );
    labelled!(
        Api::<ClusterRoleBinding>::all(client.clone()),
        format!("aggregation.dev:{ns}:{name}:auth-delegator")
    );
    labelled!(
        Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
        format!("aggregation.dev:{ns}:{name}:auth-reader")
    );
}

/// The object carries the `team` and `cost-centre` labels exactly as `want` has them.
fn carries<K: Resource>(
    want: &BTreeMap<String, String>,
) -> impl Fn(Option<&K>) -> bool + Send + 'static {
    let want = want.clone();
    move |object: Option<&K>| {
        object.is_some_and(|o| {
            let labels = o.meta().labels.clone().unwrap_or_default();
            ["team", "cost-centre"]
                .into_iter()
                .all(|key| labels.get(key) == want.get(key))
        })
    }
}

async fn pod_template(deployments: &Api<Deployment>) -> PodTemplateSpec {
    let deployment = deployments.get("labelled").await.unwrap();
    deployment.spec.unwrap().template
}

fn labels(pairs: &[&str]) -> ChildLabels {
    ChildLabels::parse(pairs.iter().copied()).unwrap()
}

#[tokio::test]
async fn child_labels_follow_the_operator_without_a_new_ca_or_a_rollout() {
    let settings = Settings {
        child_labels: labels(&["team=payments", "cost-centre=cc-7"]),
        ..Settings::default()
    };
    let mut h = Harness::start_with("es-labels", settings).await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::new("labelled").group(&group)).await;
    h.wait_condition("labelled", "Registered", "True", None)
        .await;
    wait_labelled(
        &h,
        "labelled",
        &group,
        &[("team", "payments"), ("cost-centre", "cc-7")],
    )
    .await;
    let secrets: Api<Secret> = h.ns.api();
    let ca_before = secrets.get("labelled-ca").await.unwrap().data;
    let deployments: Api<Deployment> = h.ns.api();
    let template_before = pod_template(&deployments).await;

    // The next operator runs with one label changed and one dropped.
    h.stop_operator().await;
    h.settings.child_labels = labels(&["team=platform"]);
    h.start_operator().await;
    wait_labelled(&h, "labelled", &group, &[("team", "platform")]).await;

    let ca_after = secrets.get("labelled-ca").await.unwrap();
    assert_eq!(ca_after.data, ca_before, "the CA was minted again");
    let template = pod_template(&deployments).await;
    assert_eq!(
        template, template_before,
        "the pod template changed: the pods would roll"
    );
    let pod_labels = template.metadata.unwrap().labels.unwrap_or_default();
    assert!(
        !pod_labels.contains_key("team"),
        "the pods carry a child label"
    );
    assert_eq!(
        ca_after.labels()["app.kubernetes.io/managed-by"],
        "extension-server-operator"
    );
}
