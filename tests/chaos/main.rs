//! The fault suite: short in `cargo xtask test`, full in `cargo xtask chaos`. Each module is
//! one part and writes its results to `target/chaos/parts/`.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

use eso_test_kit as support;

/// The operator binary cargo built for these tests (only an integration test can name it).
const OPERATOR: &str = env!("CARGO_BIN_EXE_extension-server-operator");

mod churn;
mod crash;
mod faults;
mod mutations;
mod restarts;
