//! The `kubernetes` Service's ClusterIP (kube-apiserver itself), read once into the context
//! before an external server is judged: external hosts may not name it.

use k8s_openapi::api::core::v1::Service;

use crate::context::Context;
use crate::error::{Error, Result};

/// Reads the ClusterIP into `ctx.kubernetes_service_ip`, once.
pub async fn learn_ip(ctx: &Context) -> Result<()> {
    ctx.kubernetes_service_ip
        .get_or_try_init(|| async {
            let services: kube::Api<Service> = kube::Api::namespaced(ctx.client.clone(), "default");
            let service = services
                .get("kubernetes")
                .await
                .map_err(|source| Error::Get {
                    kind: "Service".into(),
                    name: "default/kubernetes".into(),
                    source,
                })?;
            Ok(service.spec.and_then(|s| s.cluster_ip).unwrap_or_default())
        })
        .await
        .map(|_| ())
}
