//! Tests against the local control plane (`cargo xtask cluster up`) and the tools built with it
//! (helm, hadolint, promtool, kubectl): one module per concern, one binary, one copy of
//! `support`.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

// One support tree for the three test binaries; each uses a part of it.
#[allow(dead_code, unused_imports)]
#[path = "../support/mod.rs"]
mod support;

mod admission_policy;
mod alerts;
mod chart;
mod chart_install;
mod chart_rbac;
mod child_labels;
mod control_plane;
mod controller;
mod deletion;
mod dockerfile;
mod e2e;
mod external;
mod failures;
mod front_proxy;
mod group_holding;
mod groups;
mod leader_election;
mod metrics_apis;
mod pod_template;
mod probe_isolation;
mod rotation;
mod runtime_endpoints;
mod secret_cache;
mod sweep;
mod tls_modes;
mod tls_trust;
mod trust;
mod validation;
mod workflows;
