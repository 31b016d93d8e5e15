//! Keeps the grants in force in step with `--grants FILE`, without a restart. The file is
//! re-read every few seconds (a mounted ConfigMap changes by swapping a symlink, which file
//! events miss); a change that parses replaces the grants and re-reconciles every server, one
//! that does not is logged and the previous grants stay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use crate::context::Context;
use crate::trust::grants::{Grants, load};

/// How often the file is re-read.
pub const POLL: Duration = Duration::from_secs(2);

/// Loads the file into `ctx` now; then, in the returned stream, yields once per accepted change.
pub fn follow(ctx: Arc<Context>, path: PathBuf) -> impl Stream<Item = ()> + Send + 'static {
    let last = std::fs::read_to_string(&path).ok();
    let loaded = load(&path).map(|grants| set(&ctx, grants));
    ctx.metrics.set_grants_valid(loaded.is_ok());
    if let Err(error) = loaded {
        tracing::error!(%error, "the grants file is unreadable or invalid; every claim is refused until it is fixed");
        // Refuse everything rather than fall back to "no grants" (which allows any group).
        set(&ctx, Grants::default());
    }
    futures::stream::unfold((ctx, path, last), |(ctx, path, mut seen)| async move {
        loop {
            tokio::time::sleep(POLL).await;
            let Ok(text) = tokio::fs::read_to_string(&path).await else {
                continue;
            };
            if seen.as_deref() == Some(text.as_str()) {
                continue;
            }
            seen = Some(text.clone());
            match Grants::parse(&text) {
                Ok(grants) => {
                    tracing::info!(grants = grants.grants.len(), "grants reloaded");
                    ctx.metrics.set_grants_valid(true);
                    set(&ctx, grants);
                    return Some(((), (ctx, path, seen)));
                }
                Err(error) => {
                    ctx.metrics.set_grants_valid(false);
                    tracing::error!(%error, "the changed grants file is invalid; keeping the previous grants")
                }
            }
        }
    })
}

fn set(ctx: &Context, grants: Grants) {
    if let Ok(mut current) = ctx.grants.write() {
        *current = Some(Arc::new(grants));
    }
}
