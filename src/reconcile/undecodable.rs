//! An ExtensionServer the operator cannot decode: skipped, so that every other server goes on,
//! and reported in the log, in the metric `extension_server_operator_undecodable_objects`,
//! and in one Warning Event on the object.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use std::sync::Arc;

use crate::context::Context;
use crate::crd::ExtensionServer;

/// Reports `why` the object with `meta` could not be decoded.
pub fn report(ctx: &Arc<Context>, meta: &ObjectMeta, why: &str) {
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    tracing::warn!(%namespace, %name, %why, "skipping an ExtensionServer the operator cannot decode");
    ctx.metrics.undecodable();
    let reference = ObjectReference {
        api_version: Some(ExtensionServer::api_version(&()).into_owned()),
        kind: Some(ExtensionServer::kind(&()).into_owned()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "Undecodable".into(),
        note: Some(
            format!("the operator cannot read this object and skips it ({why}); fix or delete it: apply the CRD of the operator's release, which bounds spec.podTemplate")
                .chars()
                .take(1000)
                .collect(),
        ),
        action: "Decode".into(),
        secondary: None,
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "could not publish the Undecodable Event");
        }
    });
}
