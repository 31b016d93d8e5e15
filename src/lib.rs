//! extension-server-operator: runs extension API servers and registers them with the
//! Kubernetes aggregation layer, safely.

pub mod apiservice;
pub mod client;
pub mod context;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod outcome;
pub mod ownership;
pub mod probe;
pub mod quantity;
pub mod reason;
pub mod reconcile;
pub mod shutdown;
pub mod ssa;
pub mod status;
pub mod sweep;
pub mod tls;
pub mod trust;
