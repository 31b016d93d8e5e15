//! SIGTERM and Ctrl-C as a shutdown signal.

use std::time::Duration;

use tokio::sync::watch;

/// How long in-flight reconciles may run after a shutdown signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// Resolves on the first SIGTERM or Ctrl-C.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A receiver that turns true once a shutdown signal arrives.
pub fn watch_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        signal().await;
        sender.send_replace(true);
    });
    receiver
}

/// Resolves once `shutdown` has turned true (or its sender is gone).
pub async fn requested(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|requested| *requested).await;
}
