//! Tests that need no cluster and no Go-built tool: properties of the pure parts and the
//! committed CRD.
#![allow(clippy::unwrap_used)] // a failed case should fail loudly

use eso_test_kit as support;

mod crd_drift;
mod properties;
mod properties_status;
mod release;
