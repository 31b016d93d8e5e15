//! extension-server-operator: runs extension API servers and registers them with the
//! Kubernetes aggregation layer, safely.
//!
//! The public surface is what the binaries, the bench and the cluster tests use: the resource
//! types (`crd`, `apiservice`), the controller and its settings, leader election, the HTTP
//! endpoints and metrics, the pure builders (`desired`, `names`, `tls`), and the pure rules the
//! property tests drive (`status`, `trust`, `outcome`, `quantity`). The pipeline's steps and
//! their I/O stay inside the crate.

pub mod apiservice;
pub mod child_labels;
pub(crate) mod client;
pub mod context;
pub mod controller;
pub mod crd;
pub mod desired;
pub(crate) mod error;
#[cfg(test)]
mod fixtures;
pub(crate) mod grants_reload;
pub mod hold_record;
pub mod http;
pub mod kubernetes_service;
pub mod leader;
pub mod metrics;
pub mod names;
pub(crate) mod observe;
pub mod outcome;
pub(crate) mod ownership;
pub mod probe;
pub mod quantity;
pub(crate) mod reason;
pub(crate) mod reconcile;
pub(crate) mod recorder;
pub mod shutdown;
pub(crate) mod ssa;
pub mod status;
pub(crate) mod sweep;
pub mod tls;
pub mod trust;
pub mod validated;

/// Step 1 of the pipeline, pure: the builders' input for a server (the bench and the property
/// tests build children with it).
pub use reconcile::validate::validate;
