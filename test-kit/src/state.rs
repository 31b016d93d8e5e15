//! What an ExtensionServer amounts to in the cluster, normalized so that two runs that reached
//! the same state compare equal: every managed object (kind, name, labels, owners, spec), the
//! APIServices and the status, without uids, timestamps, resourceVersions, ClusterIPs,
//! certificate bytes or hashes of them.

use std::collections::BTreeMap;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::names::{MANAGED_BY, MANAGED_BY_LABEL, SERVER_NAMESPACE_LABEL};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use testenv::TestNamespace;

/// Kind/name -> normalized object.
pub type State = BTreeMap<String, Value>;

/// The normalized state of everything the operator manages for `ns`, plus its servers.
pub async fn of_namespace(ns: &TestNamespace) -> State {
    let client = &ns.client;
    let managed = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let owned = ListParams::default().labels(&format!("{SERVER_NAMESPACE_LABEL}={}", ns.name));
    let mut state = State::new();
    add(&mut state, "Deployment", &ns.api::<Deployment>(), &managed).await;
    add(&mut state, "Service", &ns.api::<Service>(), &managed).await;
    add(
        &mut state,
        "ServiceAccount",
        &ns.api::<ServiceAccount>(),
        &managed,
    )
    .await;
    add(&mut state, "Secret", &ns.api::<Secret>(), &managed).await;
    add(
        &mut state,
        "PodDisruptionBudget",
        &ns.api::<PodDisruptionBudget>(),
        &managed,
    )
    .await;
    let api_services: Api<APIService> = Api::all(client.clone());
    add(&mut state, "APIService", &api_services, &owned).await;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    add(&mut state, "ClusterRoleBinding", &bindings, &owned).await;
    let readers: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-system");
    add(&mut state, "RoleBinding", &readers, &owned).await;
    let servers: Api<ExtensionServer> = ns.api();
    for server in servers.list(&ListParams::default()).await.unwrap() {
        let name = server.metadata.name.clone().unwrap_or_default();
        state.insert(format!("ExtensionServer/{name}"), server_status(&server));
    }
    state
}

async fn add<K>(state: &mut State, kind: &str, api: &Api<K>, params: &ListParams)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    for object in api.list(params).await.unwrap() {
        let value = serde_json::to_value(&object).unwrap();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        state.insert(format!("{kind}/{name}"), normalize(value));
    }
}

/// Keeps what the operator decides; drops what the API server or chance decides.
pub fn normalize(mut value: Value) -> Value {
    let meta = value["metadata"].take();
    let owners: Vec<Value> = meta["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| json!({"kind": o["kind"], "name": o["name"], "controller": o["controller"]}))
        .collect();
    value["metadata"] = json!({
        "name": meta["name"],
        "labels": meta["labels"],
        "annotations": meta["annotations"],
        "owners": owners,
        "finalizers": meta["finalizers"],
    });
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    strip(&mut value);
    value
}

/// Removes generated or certificate-specific values anywhere in the object.
fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in [
                "clusterIP",
                "clusterIPs",
                "caBundle",
                "uid",
                "resourceVersion",
            ] {
                map.remove(key);
            }
            // Hashes of certificate bytes differ from run to run.
            map.remove(extension_server_operator::names::CERT_HASH_ANNOTATION);
            map.remove("aggregation.dev/applied-hash");
            // The Deployment controller counts rollouts; renewals over time add some.
            map.remove("deployment.kubernetes.io/revision");
            if let Some(Value::Object(data)) = map.get_mut("data") {
                for v in data.values_mut() {
                    *v = Value::from("<bytes>");
                }
            }
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// The status as a user reads it: current generation seen, conditions, replicas, APIServices.
fn server_status(server: &ExtensionServer) -> Value {
    let Some(status) = &server.status else {
        return Value::Null;
    };
    let conditions: Vec<Value> = status
        .conditions
        .iter()
        .map(|c| {
            json!([
                c.type_,
                c.status,
                c.reason,
                c.observed_generation == server.metadata.generation
            ])
        })
        .collect();
    json!({
        "observedCurrent": status.observed_generation == server.metadata.generation,
        "replicas": status.replicas,
        "readyReplicas": status.ready_replicas,
        "conditions": conditions,
        "apiServices": serde_json::to_value(&status.api_services).unwrap(),
    })
}

/// The first difference between two states, for a readable failure.
pub fn difference(expected: &State, actual: &State) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .find_map(|key| match (expected.get(key), actual.get(key)) {
            (Some(e), Some(a)) if e == a => None,
            (e, a) => Some(format!(
                "{key}:\n expected {}\n actual   {}",
                e.map(Value::to_string).unwrap_or("(absent)".into()),
                a.map(Value::to_string).unwrap_or("(absent)".into())
            )),
        })
}
