//! Tests that need no cluster and no Go-built tool: properties of the pure parts and the
//! committed CRD.
#![allow(clippy::unwrap_used)] // a failed case should fail loudly

/// Of `tests/support`, only what needs no cluster.
// One support tree for the three test binaries; this one uses a part of it.
#[allow(dead_code)]
#[path = "../support"]
mod support {
    pub mod chaos;
    pub mod fixture;
}

mod crd_drift;
mod properties;
mod properties_status;
mod release;
