//! A real local Kubernetes control plane for development and tests, built from pinned Go
//! modules: etcd, kube-apiserver (with its aggregator), kube-controller-manager,
//! kube-scheduler and kwok, all on loopback. No container runtime is needed.

pub mod cargo;
pub mod cluster;
pub mod env_source;
pub mod hadolint;
pub mod image_pod;
pub mod kubelet;
pub mod manifest;
pub mod namespace;
pub mod operator;
pub mod paths;
pub mod pki;
pub mod pod_network;
pub mod process;
pub mod prometheus;
pub mod registry;
pub mod runtime;
pub mod tools;
pub mod upstream;

pub use cluster::{Cluster, client_for};
pub use namespace::{SHARED_INSTANCE, TestNamespace, kubectl, shared_cluster};
