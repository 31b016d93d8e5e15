//! The fault suite: short in `cargo xtask test`, full in `cargo xtask chaos`. Each module is
//! one part and writes its results to `target/chaos/parts/`.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

use eso_test_kit as support;

/// The operator binary cargo built for these tests (only an integration test can name it).
const OPERATOR: &str = env!("CARGO_BIN_EXE_extension-server-operator");

/// The fault part races a deadline under injected faults, so it runs alone: every other part
/// holds a read guard, the fault part the write guard. Another part's load on the same two
/// cores stretches every injected timeout and backoff it waits through.
static CORES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held by a part that may share the cores with other parts.
async fn sharing_the_cores() -> tokio::sync::RwLockReadGuard<'static, ()> {
    CORES.read().await
}

/// Held by the fault part while it runs.
async fn alone_on_the_cores() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    CORES.write().await
}

mod churn;
mod crash;
mod faults;
mod mutations;
mod restarts;
