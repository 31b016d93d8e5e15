//! The fault suite: short in `cargo xtask test`, full in `cargo xtask chaos`. Each module is
//! one part and writes its results to `target/chaos/parts/`.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

// One support tree for the three test binaries; each uses a part of it.
#[allow(dead_code, unused_imports)]
#[path = "../support/mod.rs"]
mod support;

mod chaos_churn;
mod chaos_crash;
mod chaos_faults;
mod chaos_mutations;
mod chaos_restarts;
