//! The sweep deletes the cluster-scoped and kube-system objects whose ExtensionServer is gone,
//! once at start and then every interval, and touches nothing else.

use std::time::{Duration, Instant};

use extension_server_operator::apiservice::APIService;
use extension_server_operator::context::Settings;
use extension_server_operator::names::ServerNames;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::conditions;
use kube::{Client, Resource};
use serde_json::json;

use crate::support::fixture::Server;
use crate::support::{Harness, wait_for};

const INTERVAL: Duration = Duration::from_secs(3);

/// The cluster-scoped and kube-system objects of one server, as `(APIService, ClusterRoleBinding,
/// RoleBinding)`.
struct Spread {
    api_service: APIService,
    delegator: ClusterRoleBinding,
    reader: RoleBinding,
}

impl Spread {
    async fn of(client: &Client, names: &ServerNames, api_service: &str) -> Self {
        Self {
            api_service: Api::<APIService>::all(client.clone())
                .get(api_service)
                .await
                .unwrap(),
            delegator: Api::<ClusterRoleBinding>::all(client.clone())
                .get(&names.cluster_role_binding())
                .await
                .unwrap(),
            reader: Api::<RoleBinding>::namespaced(client.clone(), "kube-system")
                .get(&names.auth_reader_binding())
                .await
                .unwrap(),
        }
    }

    /// What a server named `names` would have left behind, created directly.
    async fn left_behind(client: &Client, names: &ServerNames, group: &str) -> Self {
        let metadata = |name: String| {
            json!({"name": name, "labels": names.cluster_labels(),
                   "annotations": names.owner_annotations()})
        };
        let api_service: APIService = serde_json::from_value(json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": metadata(format!("v1.{group}")),
            "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 1000,
                     "versionPriority": 15, "insecureSkipTLSVerify": true,
                     "service": {"namespace": names.namespace, "name": names.name}}
        }))
        .unwrap();
        let subject =
            json!([{"kind": "ServiceAccount", "name": names.name, "namespace": names.namespace}]);
        let delegator: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": metadata(names.cluster_role_binding()),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:auth-delegator"},
            "subjects": subject,
        }))
        .unwrap();
        let reader: RoleBinding = serde_json::from_value(json!({
            "metadata": metadata(names.auth_reader_binding()),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "extension-apiserver-authentication-reader"},
            "subjects": subject,
        }))
        .unwrap();
        let pp = PostParams::default();
        Self {
            api_service: Api::all(client.clone())
                .create(&pp, &api_service)
                .await
                .unwrap(),
            delegator: Api::all(client.clone())
                .create(&pp, &delegator)
                .await
                .unwrap(),
            reader: Api::namespaced(client.clone(), "kube-system")
                .create(&pp, &reader)
                .await
                .unwrap(),
        }
    }

    async fn wait_gone(&self, client: &Client) {
        gone(Api::<APIService>::all(client.clone()), &self.api_service).await;
        gone(
            Api::<ClusterRoleBinding>::all(client.clone()),
            &self.delegator,
        )
        .await;
        gone(
            Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
            &self.reader,
        )
        .await;
    }

    async fn uids(&self, client: &Client) -> Vec<Option<String>> {
        let api_service = self.api_service.meta().name.clone().unwrap();
        let names = [&self.delegator.metadata, &self.reader.metadata];
        let live = Spread {
            api_service: Api::<APIService>::all(client.clone())
                .get(&api_service)
                .await
                .unwrap(),
            delegator: Api::all(client.clone())
                .get(names[0].name.as_deref().unwrap())
                .await
                .unwrap(),
            reader: Api::namespaced(client.clone(), "kube-system")
                .get(names[1].name.as_deref().unwrap())
                .await
                .unwrap(),
        };
        live.uid_list()
    }

    fn uid_list(&self) -> Vec<Option<String>> {
        vec![
            self.api_service.metadata.uid.clone(),
            self.delegator.metadata.uid.clone(),
            self.reader.metadata.uid.clone(),
        ]
    }
}

async fn gone<K>(api: Api<K>, object: &K)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let name = object.meta().name.clone().unwrap();
    let uid = object.meta().uid.clone().unwrap();
    wait_for(api, &name, conditions::is_deleted(&uid)).await;
}

#[tokio::test]
async fn objects_whose_server_is_gone_are_swept_periodically_and_at_start() {
    let settings = Settings {
        sweep_interval: INTERVAL,
        ..Settings::default()
    };
    let mut h = Harness::start_with("es-sweep", settings).await;
    let client = h.ns.client.clone();
    let group = format!("{}.custom.api", h.ns.name);
    let names = |name: &str| ServerNames {
        name: name.into(),
        namespace: h.ns.name.clone(),
    };
    h.create(&Server::new("kept").group(&group)).await;
    h.wait_condition("kept", "Registered", "True", None).await;
    let kept = Spread::of(&client, &names("kept"), &format!("v1.{group}")).await;

    // While running: what a server "ghost" left behind (its namespace deleted while the
    // operator was down, say) is gone within one interval. A binding that only looks like
    // ours (no managed-by label) stays.
    let ghost = Spread::left_behind(&client, &names("ghost"), &format!("ghost.{group}")).await;
    let lookalike: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{}-lookalike", h.ns.name),
                     "labels": {"aggregation.dev/extension-server": "ghost",
                                "aggregation.dev/extension-server-namespace": h.ns.name}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    }))
    .unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let lookalike = bindings
        .create(&PostParams::default(), &lookalike)
        .await
        .unwrap();
    let left = Instant::now();
    ghost.wait_gone(&client).await;
    assert!(
        left.elapsed() <= INTERVAL + Duration::from_secs(3),
        "swept after {:?}",
        left.elapsed()
    );
    assert_eq!(
        kept.uids(&client).await,
        kept.uid_list(),
        "a live server's objects were touched"
    );
    let metrics = h.ctx.metrics.encode();
    for kind in ["APIService", "ClusterRoleBinding", "RoleBinding"] {
        let line = format!("extension_server_operator_orphans_removed_total{{kind=\"{kind}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }

    // At start: the operator down, the finalizer removed by hand, the server deleted.
    h.stop_operator().await;
    let servers = h.servers();
    let uid = servers.get("kept").await.unwrap().metadata.uid.unwrap();
    servers
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    servers.delete("kept", &Default::default()).await.unwrap();
    wait_for(servers, "kept", conditions::is_deleted(&uid)).await;
    assert_eq!(
        kept.uids(&client).await,
        kept.uid_list(),
        "nothing cleaned up yet"
    );
    h.start_operator().await;
    kept.wait_gone(&client).await;

    assert_eq!(
        bindings
            .get(lookalike.metadata.name.as_deref().unwrap())
            .await
            .unwrap()
            .metadata
            .uid,
        lookalike.metadata.uid
    );
    bindings
        .delete(
            lookalike.metadata.name.as_deref().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
}
