//! kube-apiserver's own addresses, read once into the context before an external server is
//! judged: the `kubernetes` Service's ClusterIP and the addresses of its EndpointSlice (named
//! `kubernetes`, as kube-apiserver's endpoint reconciler writes it).
//! External hosts may not name them, nor resolve to them.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;

use crate::context::Context;
use crate::error::{Error, Result};

/// Reads the addresses into `ctx.apiserver_addresses`, once.
pub async fn learn_addresses(ctx: &Context) -> Result<()> {
    ctx.apiserver_addresses
        .get_or_try_init(|| async {
            let failed = |kind: &'static str| {
                move |source| Error::Get {
                    kind: kind.into(),
                    name: "default/kubernetes".into(),
                    source,
                }
            };
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), "default");
            let service = services
                .get("kubernetes")
                .await
                .map_err(failed("Service"))?;
            let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), "default");
            let slice = slices
                .get_opt("kubernetes")
                .await
                .map_err(failed("EndpointSlice"))?;
            let cluster_ip = service.spec.and_then(|s| s.cluster_ip);
            let endpoints = slice
                .into_iter()
                .flat_map(|slice| slice.endpoints)
                .flat_map(|endpoint| endpoint.addresses);
            Ok(cluster_ip.into_iter().chain(endpoints).collect())
        })
        .await
        .map(|_| ())
}
