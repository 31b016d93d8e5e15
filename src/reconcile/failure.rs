//! A failed pass reaches the user: `Ready=False` naming the step with the API server's
//! message, and one Warning Event per change of (reason, message), not per retry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{Reconciler, events, write_status_seen};
use kube::Resource;

use crate::crd::ExtensionServer;
use crate::error::Error;
use crate::names::ServerNames;
use crate::status::{self, Reason};

/// Writes the failure to status (when it changed) and emits its Event. Best effort: a status
/// that cannot be written is logged, and the retry tries again.
pub async fn report(reconciler: &Reconciler, server: &ExtensionServer, error: &Error) {
    let ctx = reconciler.ctx.as_ref();
    let names = ServerNames::of(server);
    let new_status = status::failed(
        server.status.as_ref(),
        server.metadata.generation,
        Reason::for_failure(error),
        &error.to_string(),
        Time(Timestamp::now()),
    );
    if let Some(event) = events::failure(server.status.as_ref(), &new_status) {
        events::publish(ctx, &server.object_ref(&()), vec![event]).await;
    }
    let previous = server.status.as_ref();
    if let Err(write) = write_status_seen(reconciler, &names, previous, new_status).await {
        tracing::warn!(error = %write, "could not show the failure in status");
    }
}
