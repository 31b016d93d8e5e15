//! The Kubernetes client the operator uses: the standard stack plus request counters.

use std::sync::Arc;

use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use tower::util::MapRequestLayer;

use crate::metrics::Metrics;

/// Builds a client from `config` that counts every request in `metrics`, by verb and resource.
pub fn counting_client(config: Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let count = MapRequestLayer::new(move |request: http::Request<Body>| {
        let (verb, resource) = classify(request.method(), request.uri());
        metrics.requested(verb, &resource);
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// The Kubernetes verb and resource (`deployments`, `extensionservers/status`) of a request.
pub fn classify(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest: &[&str] = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [resource] | [resource, _] => (*resource).to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [] => String::new(),
    };
    let named = rest.len() >= 2;
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PATCH => "patch",
        http::Method::PUT => "update",
        http::Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::classify;

    fn of(method: http::Method, uri: &str) -> (&'static str, String) {
        classify(&method, &uri.parse().expect("uri"))
    }

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        use http::Method;
        assert_eq!(
            of(Method::GET, "/apis/apps/v1/namespaces/n/deployments/x"),
            ("get", "deployments".into())
        );
        assert_eq!(
            of(
                Method::GET,
                "/api/v1/namespaces/n/secrets?labelSelector=a%3Db"
            ),
            ("list", "secrets".into())
        );
        assert_eq!(
            of(Method::GET, "/api/v1/secrets?watch=true&resourceVersion=1"),
            ("watch", "secrets".into())
        );
        assert_eq!(
            of(
                Method::PATCH,
                "/apis/aggregation.dev/v1alpha1/namespaces/n/extensionservers/x/status"
            ),
            ("patch", "extensionservers/status".into())
        );
        assert_eq!(
            of(Method::POST, "/apis/apiregistration.k8s.io/v1/apiservices"),
            ("create", "apiservices".into())
        );
        assert_eq!(
            of(Method::POST, "/apis/events.k8s.io/v1/namespaces/n/events"),
            ("create", "events".into())
        );
        assert_eq!(
            of(Method::DELETE, "/api/v1/namespaces/kube-system"),
            ("delete", "namespaces".into())
        );
    }
}
