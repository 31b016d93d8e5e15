//! Records which (API group, resource, verb) a client's requests exercise, as RBAC sees them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kube::client::{Body, ClientBuilder};
use tokio::sync::watch;
use tower::Service;
use tower::layer::layer_fn;

/// An RBAC attribute: API group ("" for core), resource (with `/subresource`), verb.
pub type Operation = (String, String, String);

/// Each distinct operation with the first request that needed it.
pub type Seen = BTreeMap<Operation, String>;

/// The RBAC attributes of one request path and method, as the API server derives them.
pub fn operation(method: &http::Method, uri: &http::Uri) -> Option<Operation> {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, resource, tail @ ..] => [&[*resource][..], tail].concat(),
        other => other.to_vec(),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", _) if watching => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    Some((group.to_string(), resource, verb.to_string()))
}

/// Records the operations of successful responses; a server-side apply PATCH answered
/// `201 Created` also counts as `create`, which the API server authorizes for it.
#[derive(Clone)]
pub struct Record<S> {
    inner: S,
    seen: Arc<watch::Sender<Seen>>,
}

/// Marks the example of a request that asked for metadata only (`PartialObjectMetadata`).
pub const METADATA_ONLY: &str = " [metadata only]";

/// Keeps the first example of `op`, but prefers one that asked for whole objects.
fn note(seen: &watch::Sender<Seen>, op: Operation, example: String) {
    seen.send_if_modified(|seen| {
        let replace = seen
            .get(&op)
            .is_none_or(|old| old.ends_with(METADATA_ONLY) && !example.ends_with(METADATA_ONLY));
        if replace {
            seen.insert(op, example);
        }
        replace
    });
}

impl<S, B> Service<http::Request<Body>> for Record<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let op = operation(request.method(), request.uri());
        let metadata_only = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("PartialObjectMetadata"));
        let example = format!(
            "{} {}{}",
            request.method(),
            request.uri(),
            if metadata_only { METADATA_ONLY } else { "" }
        );
        let seen = self.seen.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A 404 on a get comes after authorization: the permission was used.
            let authorized = response.status().is_success()
                || (response.status() == http::StatusCode::NOT_FOUND
                    && op.as_ref().is_some_and(|op| op.2 == "get"));
            if let Some(op) = op.filter(|_| authorized) {
                if op.2 == "patch" && response.status() == http::StatusCode::CREATED {
                    let create = (op.0.clone(), op.1.clone(), "create".to_string());
                    note(
                        &seen,
                        create,
                        format!("{example} (server-side apply created it)"),
                    );
                }
                note(&seen, op, example);
            }
            Ok(response)
        })
    }
}

/// A client for `config` that records every successful request's operation.
pub fn recording_client(config: kube::Config) -> (kube::Client, watch::Receiver<Seen>) {
    let (seen, receiver) = watch::channel(Seen::new());
    let seen = Arc::new(seen);
    let client = ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&layer_fn(move |inner| Record {
            inner,
            seen: seen.clone(),
        }))
        .build();
    (client, receiver)
}
