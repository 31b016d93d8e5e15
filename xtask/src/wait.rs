//! Waiting on a watched condition, with a timeout.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result};

/// How long any one wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Waits for `condition` (such as `await_condition`) at most [`TIMEOUT`].
pub async fn within<T, E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    condition: impl Future<Output = Result<T, E>>,
) -> Result<T> {
    tokio::time::timeout(TIMEOUT, condition)
        .await
        .with_context(|| format!("waiting for {what}"))?
        .with_context(|| format!("waiting for {what}"))
}
