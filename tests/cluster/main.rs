//! Tests against the local control plane (`cargo xtask cluster up`) and the tools built with it
//! (helm, hadolint, promtool, kubectl): one module per concern, one binary, the shared parts in
//! the `eso-test-kit` crate (`test-kit/`).
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

use eso_test_kit as support;

/// The operator binary cargo built for these tests (only an integration test can name it).
const OPERATOR: &str = env!("CARGO_BIN_EXE_extension-server-operator");

mod admission_policy;
mod alerts;
mod ca_trust;
mod chart;
mod chart_install;
mod chart_rbac;
mod child_labels;
mod confused_deputy;
mod control_plane;
mod controller;
mod deletion;
mod dockerfile;
mod e2e;
mod external;
mod failures;
mod front_proxy;
mod grants;
mod group_holding;
mod group_priority;
mod groups;
mod keda;
mod leader_election;
mod local_kubelet;
mod metrics_apis;
mod pod_template;
mod probe_isolation;
mod prometheus_adapter;
mod prometheus_stack;
mod rotation;
mod runtime_endpoints;
mod secret_cache;
mod sweep;
mod tls_modes;
mod undecodable;
mod validation;
mod workflows;
mod write_counts;
