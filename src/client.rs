//! The Kubernetes client the operator uses: the standard stack plus a counter of API writes.

use std::sync::Arc;

use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use tower::util::MapRequestLayer;

use crate::metrics::Metrics;

/// Builds a client from `config` that counts every non-read request in `metrics`.
pub fn counting_client(config: Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let count = MapRequestLayer::new(move |request: http::Request<Body>| {
        if !matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ) {
            metrics.wrote();
        }
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}
