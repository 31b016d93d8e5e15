//! Running the controller only while holding the Lease.

use std::sync::Arc;

use super::LeaderElector;
use crate::context::Context;
use crate::{controller, shutdown};

/// The leader could not renew the Lease in time (or another candidate took it).
#[derive(Debug, thiserror::Error)]
#[error("lost the leader Lease; exiting so that only one process reconciles")]
pub struct LeaseLost;

/// Stands by until this process holds the Lease, then runs the controller while renewing it.
/// On SIGTERM the controller finishes and the Lease is released. If renewal fails, this returns
/// [`LeaseLost`] so the process can exit before a standby may take over.
pub async fn lead(
    ctx: Arc<Context>,
    namespace: Option<String>,
    mut elector: LeaderElector,
) -> Result<(), LeaseLost> {
    // A standby is healthy and ready: it has nothing to sync until it leads.
    ctx.ready.send_replace(true);
    tracing::info!(identity = elector.identity(), "waiting to become leader");
    let shutdown = shutdown::watch_signal();
    if !elector
        .acquire_until(shutdown::requested(shutdown.clone()))
        .await
    {
        return Ok(());
    }
    ctx.metrics.set_leader(true);
    let lost = {
        let controller = controller::run_until(ctx.clone(), namespace, shutdown);
        tokio::select! {
            () = controller => false,
            () = elector.hold() => true,
        }
    };
    ctx.metrics.set_leader(false);
    if lost {
        return Err(LeaseLost);
    }
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "releasing the lease; a standby takes over when it expires");
    }
    Ok(())
}
