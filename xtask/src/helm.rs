//! The local cluster's helm.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::cmd::output;

pub struct Helm {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Helm {
    pub fn of(cluster: &testenv::Cluster) -> Self {
        Self {
            binary: cluster.tools.helm.clone(),
            kubeconfig: cluster.kubeconfig.clone(),
        }
    }

    /// Runs helm against the cluster; returns its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        output(
            Command::new(&self.binary)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args),
        )
    }
}
