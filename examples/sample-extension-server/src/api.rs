//! The API itself: URL routing, discovery documents, the in-memory objects and
//! Kubernetes `Status` error bodies. Nothing here does I/O, so it is easy to test.

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery, ListMeta,
    ObjectMeta, Status, StatusDetails, Time,
};
use serde::Serialize;

pub const GROUP: &str = "my.custom.api";
pub const VERSION: &str = "v1";
pub const RESOURCE: &str = "myresources";
pub const KIND: &str = "MyResource";

/// What a request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/readyz`, `/livez`: answered without authentication.
    Health,
    /// `/apis`
    GroupList,
    /// `/apis/my.custom.api`
    Group,
    /// `/apis/my.custom.api/v1`
    ResourceList,
    /// `.../myresources`, in one namespace or across all of them.
    List {
        namespace: Option<String>,
    },
    /// `.../namespaces/{namespace}/myresources/{name}`
    Get {
        namespace: String,
        name: String,
    },
    NotFound,
}

/// Maps a URL path (without the query string) to a [`Route`].
pub fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz" | "readyz" | "livez"] => Route::Health,
        ["apis"] => Route::GroupList,
        ["apis", GROUP] => Route::Group,
        ["apis", GROUP, VERSION] => Route::ResourceList,
        ["apis", GROUP, VERSION, RESOURCE] => Route::List { namespace: None },
        ["apis", GROUP, VERSION, "namespaces", ns, RESOURCE] => Route::List {
            namespace: Some(ns.to_string()),
        },
        ["apis", GROUP, VERSION, "namespaces", ns, RESOURCE, name] => Route::Get {
            namespace: ns.to_string(),
            name: name.to_string(),
        },
        _ => Route::NotFound,
    }
}

/// A response: status code, content type and body bytes.
#[derive(Debug)]
pub struct Reply {
    pub code: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(code: StatusCode, text: &str) -> Self {
        let body = text.as_bytes().to_vec();
        Reply {
            code,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }

    pub fn json(code: StatusCode, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                code,
                content_type: "application/json",
                body,
            },
            Err(e) => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
}

/// A Kubernetes `Status` error body (`kind: Status, apiVersion: v1, status: Failure`).
pub fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Reply {
    status_with_details(code, reason, message, None)
}

fn status_with_details(
    code: StatusCode,
    reason: &str,
    message: impl Into<String>,
    details: Option<StatusDetails>,
) -> Reply {
    let body = Status {
        code: Some(i32::from(code.as_u16())),
        message: Some(message.into()),
        reason: Some(reason.to_string()),
        status: Some("Failure".to_string()),
        details,
        ..Status::default()
    };
    Reply::json(code, &body)
}

/// Answers an authenticated and authorized request.
pub fn respond(route: &Route, objects: &[MyResource]) -> Reply {
    match route {
        Route::Health => Reply::text(StatusCode::OK, "ok"),
        Route::GroupList => Reply::json(StatusCode::OK, &group_list()),
        Route::Group => Reply::json(StatusCode::OK, &api_group()),
        Route::ResourceList => Reply::json(StatusCode::OK, &resource_list()),
        Route::List { namespace } => Reply::json(StatusCode::OK, &list(objects, namespace)),
        Route::Get { namespace, name } => match get(objects, namespace, name) {
            Some(object) => Reply::json(StatusCode::OK, object),
            None => not_found(name),
        },
        Route::NotFound => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn not_found(name: &str) -> Reply {
    let details = StatusDetails {
        name: Some(name.to_string()),
        group: Some(GROUP.to_string()),
        kind: Some(RESOURCE.to_string()),
        ..StatusDetails::default()
    };
    let message = format!("{RESOURCE}.{GROUP} \"{name}\" not found");
    status_with_details(StatusCode::NOT_FOUND, "NotFound", message, Some(details))
}

// ---- Discovery -------------------------------------------------------------

fn api_group() -> APIGroup {
    let v1 = GroupVersionForDiscovery {
        group_version: format!("{GROUP}/{VERSION}"),
        version: VERSION.to_string(),
    };
    APIGroup {
        name: GROUP.to_string(),
        preferred_version: Some(v1.clone()),
        versions: vec![v1],
        server_address_by_client_cidrs: None,
    }
}

fn group_list() -> APIGroupList {
    APIGroupList {
        groups: vec![api_group()],
    }
}

fn resource_list() -> APIResourceList {
    let resource = APIResource {
        name: RESOURCE.to_string(),
        singular_name: "myresource".to_string(),
        namespaced: true,
        kind: KIND.to_string(),
        verbs: vec!["get".to_string(), "list".to_string()],
        ..APIResource::default()
    };
    APIResourceList {
        group_version: format!("{GROUP}/{VERSION}"),
        resources: vec![resource],
    }
}

// ---- Data --------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MyResource {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: MyResourceSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct MyResourceSpec {
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MyResourceList<'a> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub items: Vec<&'a MyResource>,
}

/// The fixed objects this server serves: `alpha`, `beta`, `gamma` in `default`.
pub fn sample_objects() -> Vec<MyResource> {
    let created = Time(k8s_openapi::jiff::Timestamp::now());
    let objects = [
        ("alpha", "Hello from alpha"),
        ("beta", "Hello from beta"),
        ("gamma", "Hello from gamma"),
    ];
    objects
        .iter()
        .enumerate()
        .map(|(i, (name, message))| MyResource {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: KIND.to_string(),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("default".to_string()),
                uid: Some(format!("00000000-0000-4000-8000-00000000000{}", i + 1)),
                creation_timestamp: Some(created.clone()),
                resource_version: Some("1".to_string()),
                ..ObjectMeta::default()
            },
            spec: MyResourceSpec {
                message: message.to_string(),
            },
        })
        .collect()
}

fn list<'a>(objects: &'a [MyResource], namespace: &Option<String>) -> MyResourceList<'a> {
    let items = objects
        .iter()
        .filter(|o| namespace.is_none() || o.metadata.namespace == *namespace)
        .collect();
    MyResourceList {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: format!("{KIND}List"),
        metadata: ListMeta {
            resource_version: Some("1".to_string()),
            ..ListMeta::default()
        },
        items,
    }
}

fn get<'a>(objects: &'a [MyResource], namespace: &str, name: &str) -> Option<&'a MyResource> {
    objects.iter().find(|o| {
        o.metadata.namespace.as_deref() == Some(namespace)
            && o.metadata.name.as_deref() == Some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn routes_paths() {
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/apis"), Route::GroupList);
        assert_eq!(route("/apis/my.custom.api"), Route::Group);
        assert_eq!(route("/apis/my.custom.api/v1/"), Route::ResourceList);
        assert_eq!(
            route("/apis/my.custom.api/v1/myresources"),
            Route::List { namespace: None }
        );
        assert_eq!(
            route("/apis/my.custom.api/v1/namespaces/default/myresources/alpha"),
            Route::Get {
                namespace: "default".into(),
                name: "alpha".into()
            }
        );
        assert_eq!(route("/apis/other.api/v1"), Route::NotFound);
        assert_eq!(route("/"), Route::NotFound);
        assert_eq!(route("/openapi/v2"), Route::NotFound);
    }

    #[test]
    fn discovery_documents() {
        let groups = body(&respond(&Route::GroupList, &[]));
        assert_eq!(groups["kind"], "APIGroupList");
        assert_eq!(groups["apiVersion"], "v1");
        assert_eq!(groups["groups"][0]["name"], "my.custom.api");
        assert_eq!(
            groups["groups"][0]["versions"],
            json!([{"groupVersion": "my.custom.api/v1", "version": "v1"}])
        );
        assert_eq!(groups["groups"][0]["preferredVersion"]["version"], "v1");

        let group = body(&respond(&Route::Group, &[]));
        assert_eq!(group["kind"], "APIGroup");
        assert_eq!(group["name"], "my.custom.api");

        let resources = body(&respond(&Route::ResourceList, &[]));
        assert_eq!(resources["kind"], "APIResourceList");
        assert_eq!(resources["groupVersion"], "my.custom.api/v1");
        assert_eq!(
            resources["resources"][0],
            json!({
                "name": "myresources", "singularName": "myresource", "namespaced": true,
                "kind": "MyResource", "verbs": ["get", "list"]
            })
        );
    }

    #[test]
    fn lists_and_gets() {
        let objects = sample_objects();
        let all = body(&respond(&Route::List { namespace: None }, &objects));
        assert_eq!(all["kind"], "MyResourceList");
        assert_eq!(all["apiVersion"], "my.custom.api/v1");
        assert_eq!(all["metadata"]["resourceVersion"], "1");
        assert_eq!(all["items"].as_array().unwrap().len(), 3);

        let other = body(&respond(
            &Route::List {
                namespace: Some("other".into()),
            },
            &objects,
        ));
        assert_eq!(other["items"], json!([]));

        let get = |ns: &str, name: &str| {
            respond(
                &Route::Get {
                    namespace: ns.into(),
                    name: name.into(),
                },
                &objects,
            )
        };
        let beta = get("default", "beta");
        assert_eq!(beta.code, StatusCode::OK);
        let beta = body(&beta);
        assert_eq!(beta["kind"], "MyResource");
        assert_eq!(beta["metadata"]["name"], "beta");
        assert_eq!(beta["metadata"]["resourceVersion"], "1");
        assert!(beta["metadata"]["creationTimestamp"].is_string());
        assert_eq!(beta["spec"]["message"], "Hello from beta");

        for (ns, name) in [("default", "zeta"), ("other", "alpha")] {
            let missing = get(ns, name);
            assert_eq!(missing.code, StatusCode::NOT_FOUND);
            let missing = body(&missing);
            assert_eq!(missing["kind"], "Status");
            assert_eq!(missing["reason"], "NotFound");
            assert_eq!(missing["code"], 404);
        }
    }

    #[test]
    fn status_body_shape() {
        let reply = status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
        assert_eq!(reply.code, StatusCode::UNAUTHORIZED);
        let value = body(&reply);
        assert_eq!(value["kind"], "Status");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["status"], "Failure");
        assert_eq!(value["reason"], "Unauthorized");
        assert_eq!(value["code"], 401);
    }
}
