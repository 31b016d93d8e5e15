//! Server-side apply that skips the request when the cluster already matches.
//!
//! Each applied object carries a hash of what was applied. A write happens only when that hash
//! differs (the desired state changed) or the live object no longer contains every applied
//! field with the applied value (drift). A steady state therefore makes no writes.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::names::FIELD_MANAGER;
use crate::tls::certs::sha256_hex;

/// Annotation holding the hash of the applied object.
pub const APPLIED_HASH_ANNOTATION: &str = "aggregation.dev/applied-hash";

/// Applies `desired` unless `live` (usually from the cache) already matches it; returns the
/// object as it stands afterwards.
pub async fn apply<K>(api: &Api<K>, desired: &K, live: Option<&K>) -> Result<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&());
    let serialize = |e| Error::Serialize(K::kind(&()), e);
    let desired = with_hash(desired).map_err(serialize)?;
    if let Some(live) = live {
        let want = serde_json::to_value(&desired).map_err(serialize)?;
        let have = serde_json::to_value(live).map_err(serialize)?;
        if contains(&have, &want) {
            return Ok(live.clone());
        }
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(|source| Error::Apply { kind, name, source })
}

pub fn with_hash<K: Resource + Serialize + Clone>(desired: &K) -> serde_json::Result<K> {
    let hash = sha256_hex(&serde_json::to_vec(desired)?);
    let mut desired = desired.clone();
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH_ANNOTATION.into(), hash[..16].to_string());
    Ok(desired)
}

/// True if every field of `want` is present in `have` with the same value. A missing field
/// matches a zero value (`false`, `0`, `""`, empty), as the API server omits those. Under
/// `limits` and `requests`, quantities compare by value (`0.5` is `500m`).
pub fn contains(have: &Value, want: &Value) -> bool {
    contains_at(have, want, false)
}

fn contains_at(have: &Value, want: &Value, quantities: bool) -> bool {
    match (have, want) {
        (_, Value::Null) => true,
        (Value::Object(have), Value::Object(want)) => want.iter().all(|(k, w)| {
            let quantities = quantities || matches!(k.as_str(), "limits" | "requests");
            have.get(k)
                .map_or(is_zero(w), |h| contains_at(h, w, quantities))
        }),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len()
                && have
                    .iter()
                    .zip(want)
                    .all(|(h, w)| contains_at(h, w, quantities))
        }
        (Value::String(have), Value::String(want)) if quantities => {
            have == want || crate::quantity::same(have, want)
        }
        (have, want) => have == want,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// Removes the labels of `live` that the operator set with a create (an update, in the
/// object's `managedFields`) and `desired` no longer has: a later server-side apply never
/// removes fields that an update set. Returns the object as it stands afterwards.
pub async fn remove_stale_labels<K>(api: &Api<K>, desired: &K, live: K) -> Result<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let wanted = desired.meta().labels.clone().unwrap_or_default();
    let stale: Vec<String> = labels_set_by_update(live.meta())
        .into_iter()
        .filter(|key| !wanted.contains_key(key))
        .filter(|key| {
            live.meta()
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(key))
        })
        .collect();
    if stale.is_empty() {
        return Ok(live);
    }
    let name = live.meta().name.clone().unwrap_or_default();
    let removed: serde_json::Map<String, Value> =
        stale.into_iter().map(|key| (key, Value::Null)).collect();
    merge_patch(
        api,
        &name,
        &serde_json::json!({"metadata": {"labels": removed}}),
    )
    .await
}

/// A JSON merge patch of `name` by the operator's field manager (an update, not an apply: for
/// fields an apply cannot remove).
pub async fn merge_patch<K>(api: &Api<K>, name: &str, patch: &Value) -> Result<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(patch))
        .await
        .map_err(|source| Error::Apply {
            kind: K::kind(&()),
            name: name.to_string(),
            source,
        })
}

/// The label keys that updates of the operator's field manager set (a create-only write, a
/// replace) and no other manager also set: an admin's own label, carried over by a replace,
/// stays the admin's.
pub fn labels_set_by_update(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<String> {
    let label_keys =
        |entry: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
            entry
                .fields_v1
                .as_ref()
                .and_then(|fields| {
                    fields
                        .0
                        .get("f:metadata")?
                        .get("f:labels")?
                        .as_object()
                        .cloned()
                })
                .into_iter()
                .flat_map(|labels| labels.into_iter().map(|(key, _)| key))
                .filter_map(|key| key.strip_prefix("f:").map(str::to_string))
                .collect::<Vec<String>>()
        };
    let entries = meta.managed_fields.iter().flatten();
    let ours = |entry: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
    };
    let others: std::collections::BTreeSet<String> = entries
        .clone()
        .filter(|entry| !ours(entry))
        .flat_map(label_keys)
        .collect();
    let mut keys: Vec<String> = entries
        .filter(ours)
        .filter(|entry| entry.operation.as_deref() == Some("Update"))
        .flat_map(label_keys)
        .filter(|key| !others.contains(key))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Attempts of a live read before its failure fails the pass.
const READ_ATTEMPTS: u32 = 3;
/// The wait before the second attempt; it doubles for the third.
const READ_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs the read `attempt` again, twice at most, after the API server's passing trouble (a
/// 5xx, a 429, a 409, a dropped connection): a read changes nothing, and a pass that fails on
/// one read starts over with every read of the pass.
pub async fn retrying_read<T, F, Fut>(mut attempt: F) -> std::result::Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
{
    let mut wait = READ_RETRY;
    for _ in 1..READ_ATTEMPTS {
        match attempt().await {
            Err(error) if crate::error::passing_trouble(&error) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    attempt().await
}

/// A live read: `None` for a 404, the object otherwise. Reconciles read from the caches; this
/// is for what must be fresh.
pub async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    retrying_read(|| api.get_opt(name))
        .await
        .map_err(|source| Error::Get {
            kind: K::kind(&()),
            name: name.to_string(),
            source,
        })
}

/// Deletes `name`; a 404 is success. With `preconditions`, only that uid (and version) goes.
pub async fn delete<K>(api: &Api<K>, name: &str, preconditions: Option<Preconditions>) -> Result<()>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let params = DeleteParams {
        preconditions,
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: K::kind(&()),
            name: name.to_string(),
            source,
        }),
    }
}

/// Preconditions that make a delete touch only the object that was seen (its uid; not its
/// resourceVersion, which other controllers move with status updates).
pub fn preconditions_of<K: Resource>(object: &K) -> Preconditions {
    Preconditions {
        uid: object.meta().uid.clone(),
        resource_version: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_an_update_of_ours_set_alone_are_the_removable_ones() {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(serde_json::json!({
                "managedFields": [
                    {"manager": "extension-server-operator", "operation": "Update",
                     "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:team": {}, "f:backup": {}}}}},
                    {"manager": "kubectl-label", "operation": "Update",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:backup": {}}}}},
                    {"manager": "extension-server-operator", "operation": "Apply",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:cost-centre": {}}}}}
                ]
            }))
            .unwrap();
        // `backup` is the admin's too; `cost-centre` an apply of ours removes by itself.
        assert_eq!(super::labels_set_by_update(&meta), ["team"]);
    }

    use super::contains;
    use serde_json::json;

    #[test]
    fn extra_live_fields_do_not_count_as_drift() {
        let have = json!({"spec": {"replicas": 1, "paused": false}, "status": {}});
        assert!(contains(&have, &json!({"spec": {"replicas": 1}})));
    }

    #[test]
    fn omitted_zero_values_are_not_drift() {
        let have = json!({"spec": {"group": "g"}});
        assert!(contains(
            &have,
            &json!({"spec": {"insecureSkipTLSVerify": false}})
        ));
        assert!(!contains(
            &have,
            &json!({"spec": {"insecureSkipTLSVerify": true}})
        ));
    }

    #[test]
    fn resource_quantities_compare_by_value() {
        let have = json!({"resources": {"limits": {"cpu": "500m"}}, "value": "500m"});
        assert!(contains(
            &have,
            &json!({"resources": {"limits": {"cpu": "0.5"}}})
        ));
        assert!(!contains(
            &have,
            &json!({"resources": {"limits": {"cpu": "0.6"}}})
        ));
        assert!(
            !contains(&have, &json!({"value": "0.5"})),
            "only under limits/requests"
        );
    }

    #[test]
    fn changed_or_missing_fields_are_drift() {
        let have = json!({"spec": {"replicas": 2, "list": [1, 2]}});
        assert!(!contains(&have, &json!({"spec": {"replicas": 1}})));
        assert!(!contains(&have, &json!({"spec": {"other": true}})));
        assert!(!contains(&have, &json!({"spec": {"list": [1]}})));
    }
}
