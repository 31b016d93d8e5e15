//! URL routing, the answer to each route, and Kubernetes `Status` error bodies.
//! Nothing here does I/O, so it is easy to test.

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
use serde::Serialize;

use crate::discovery;
use crate::objects::{self, Stored};
use crate::served::Served;

/// What a request path asks for. Versions and resources are ones the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/readyz`, `/livez`: answered without authentication.
    Health,
    /// `/apis`
    GroupList,
    /// `/apis/<group>`
    Group {
        group: String,
    },
    /// `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    /// `.../<resource>`, in one namespace or across all of them.
    List {
        group: String,
        version: String,
        resource: String,
        namespace: Option<String>,
    },
    /// `.../namespaces/<namespace>/<resource>/<name>`
    Get {
        group: String,
        version: String,
        resource: String,
        namespace: String,
        name: String,
    },
    NotFound,
}

/// Maps a URL path (without the query string) to a [`Route`].
pub fn route(served: &Served, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["healthz" | "readyz" | "livez"] => return Route::Health,
        ["apis"] => return Route::GroupList,
        ["apis", group] if served.serves_group(group) => {
            return Route::Group {
                group: group.to_string(),
            };
        }
        ["apis", group, version, rest @ ..]
            if served.serves_group(group) && served.has_version(version) =>
        {
            (group.to_string(), version.to_string(), rest)
        }
        _ => return Route::NotFound,
    };
    let served_resource = |resource: &str| served.resource(resource).is_some();
    match rest {
        [] => Route::ResourceList { group, version },
        [resource] if served_resource(resource) => Route::List {
            group,
            version,
            resource: resource.to_string(),
            namespace: None,
        },
        ["namespaces", ns, resource] if served_resource(resource) => Route::List {
            group,
            version,
            resource: resource.to_string(),
            namespace: Some(ns.to_string()),
        },
        ["namespaces", ns, resource, name] if served_resource(resource) => Route::Get {
            group,
            version,
            resource: resource.to_string(),
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
pub fn respond(served: &Served, route: &Route, objects: &[Stored]) -> Reply {
    match route {
        Route::Health => Reply::text(StatusCode::OK, "ok"),
        Route::GroupList => Reply::json(StatusCode::OK, &discovery::group_list(served)),
        Route::Group { group } => Reply::json(StatusCode::OK, &discovery::api_group(served, group)),
        Route::ResourceList { group, version } => Reply::json(
            StatusCode::OK,
            &discovery::resource_list(served, group, version),
        ),
        Route::List {
            group,
            version,
            resource,
            namespace,
        } => match served.resource(resource) {
            Some(resource) => {
                let api_version = Served::group_version(group, version);
                let list = objects::list(objects, &api_version, resource, namespace.as_deref());
                Reply::json(StatusCode::OK, &list)
            }
            None => route_not_found(),
        },
        Route::Get {
            group,
            version,
            resource,
            namespace,
            name,
        } => {
            let Some(resource) = served.resource(resource) else {
                return route_not_found();
            };
            let api_version = Served::group_version(group, version);
            match objects::get(objects, &api_version, resource, namespace, name) {
                Some(object) => Reply::json(StatusCode::OK, &object),
                None => not_found(group, &resource.plural, name),
            }
        }
        Route::NotFound => route_not_found(),
    }
}

fn route_not_found() -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn not_found(group: &str, resource: &str, name: &str) -> Reply {
    let details = StatusDetails {
        name: Some(name.to_string()),
        group: Some(group.to_string()),
        kind: Some(resource.to_string()),
        ..StatusDetails::default()
    };
    let message = format!("{resource}.{group} \"{name}\" not found");
    status_with_details(StatusCode::NOT_FOUND, "NotFound", message, Some(details))
}

#[cfg(test)]
mod tests;
