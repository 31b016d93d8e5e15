//! The in-memory objects: `alpha`, `beta`, `gamma` in `default`, for each resource.
//! Their `apiVersion` and `kind` are added when served, from the request.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use serde::Serialize;

use crate::served::{Resource, Served};

/// An object as stored: the resource (plural) it belongs to, its metadata and spec.
#[derive(Debug, Clone)]
pub struct Stored {
    pub resource: String,
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub message: String,
}

/// An object as served.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<'a> {
    pub api_version: String,
    pub kind: &'a str,
    pub metadata: &'a ObjectMeta,
    pub spec: &'a Spec,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList<'a> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub items: Vec<Object<'a>>,
}

/// The fixed objects this server serves, the same three for each resource.
pub fn sample_objects(served: &Served) -> Vec<Stored> {
    let created = Time(k8s_openapi::jiff::Timestamp::now());
    let objects = [
        ("alpha", "Hello from alpha"),
        ("beta", "Hello from beta"),
        ("gamma", "Hello from gamma"),
    ];
    let mut stored = Vec::new();
    for (r, resource) in served.resources().iter().enumerate() {
        for (i, (name, message)) in objects.iter().enumerate() {
            stored.push(Stored {
                resource: resource.plural.clone(),
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some("default".to_string()),
                    // The first resource's are ...000001 to ...000003, as before.
                    uid: Some(format!("00000000-0000-4000-8000-{r:06}{:06}", i + 1)),
                    creation_timestamp: Some(created.clone()),
                    resource_version: Some("1".to_string()),
                    ..ObjectMeta::default()
                },
                spec: Spec {
                    message: message.to_string(),
                },
            });
        }
    }
    stored
}

fn serve<'a>(object: &'a Stored, api_version: &str, resource: &'a Resource) -> Object<'a> {
    Object {
        api_version: api_version.to_string(),
        kind: &resource.kind,
        metadata: &object.metadata,
        spec: &object.spec,
    }
}

/// The objects of `resource`, in one namespace or all, as `api_version`.
pub fn list<'a>(
    objects: &'a [Stored],
    api_version: &str,
    resource: &'a Resource,
    namespace: Option<&str>,
) -> ObjectList<'a> {
    let items = objects
        .iter()
        .filter(|o| o.resource == resource.plural)
        .filter(|o| namespace.is_none() || o.metadata.namespace.as_deref() == namespace)
        .map(|o| serve(o, api_version, resource))
        .collect();
    ObjectList {
        api_version: api_version.to_string(),
        kind: resource.list_kind(),
        metadata: ListMeta {
            resource_version: Some("1".to_string()),
            ..ListMeta::default()
        },
        items,
    }
}

/// One object of `resource`, as `api_version`.
pub fn get<'a>(
    objects: &'a [Stored],
    api_version: &str,
    resource: &'a Resource,
    namespace: &str,
    name: &str,
) -> Option<Object<'a>> {
    objects
        .iter()
        .find(|o| {
            o.resource == resource.plural
                && o.metadata.namespace.as_deref() == Some(namespace)
                && o.metadata.name.as_deref() == Some(name)
        })
        .map(|o| serve(o, api_version, resource))
}
