//! extension-server-operator: runs extension API servers and registers them with the
//! Kubernetes aggregation layer, safely.

pub mod apiservice;
pub mod build;
pub mod crd;
pub mod error;
pub mod names;
pub mod status;
pub mod tls;
