//! Which program a container image runs, and what a pod's own network namespace would give
//! it that a process on the host's network lacks: its listen address is moved to the pod's IP.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cluster::Cluster;

/// The programs the kubelet stand-in runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `quay.io/prometheus/prometheus`: the Prometheus server of `testenv/go/prometheus`.
    Prometheus,
    /// `registry.k8s.io/prometheus-adapter/prometheus-adapter`: prometheus-adapter, built
    /// from `testenv/go/prometheus-adapter` on first use.
    PrometheusAdapter,
    /// `*/sample-workload`: the project's sample workload (`examples/sample-workload`), which
    /// counts the requests it serves and also generates load.
    SampleWorkload,
}

/// Image repository to program.
const IMAGES: &[(&str, Program)] = &[
    ("quay.io/prometheus/prometheus", Program::Prometheus),
    ("prom/prometheus", Program::Prometheus),
    (
        "registry.k8s.io/prometheus-adapter/prometheus-adapter",
        Program::PrometheusAdapter,
    ),
];

impl Program {
    /// The program for `image`, if the stand-in runs it.
    pub fn for_image(image: &str) -> Option<Program> {
        let repository = repository(image);
        if repository.rsplit('/').next() == Some("sample-workload") {
            return Some(Program::SampleWorkload);
        }
        IMAGES
            .iter()
            .find(|(r, _)| *r == repository)
            .map(|(_, p)| *p)
    }

    /// The binary (built on first use where it is an upstream one).
    pub fn binary(self, cluster: &Cluster) -> Result<PathBuf> {
        match self {
            Program::Prometheus => Ok(cluster.tools.prometheus.clone()),
            Program::PrometheusAdapter => crate::tools::upstream_server("prometheus-adapter"),
            Program::SampleWorkload => {
                let path = crate::paths::workspace_root()
                    .join("target")
                    .join("debug")
                    .join("sample-workload");
                if !path.exists() {
                    bail!(
                        "{} is missing: run `cargo build -p sample-workload`",
                        path.display()
                    );
                }
                Ok(path)
            }
        }
    }

    /// The image's default arguments, used when the container sets neither `command` nor
    /// `args`.
    pub fn image_cmd(self) -> Vec<String> {
        match self {
            Program::Prometheus => vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
            ],
            Program::PrometheusAdapter => Vec::new(),
            Program::SampleWorkload => vec!["serve".into()],
        }
    }

    /// The flag holding the listen address, and its default port (None: the flag holds the
    /// address alone, the port is another flag's).
    fn listen_flag(self) -> (&'static str, Option<u16>) {
        match self {
            Program::Prometheus => ("--web.listen-address", Some(9090)),
            Program::PrometheusAdapter => ("--bind-address", None),
            Program::SampleWorkload => ("--listen", Some(8080)),
        }
    }

    /// `args` with the listen address on `pod_ip` (the port the args name, else the
    /// default); other processes listen on the same ports at other pod IPs.
    pub fn listen_on(self, args: Vec<String>, pod_ip: &str) -> Vec<String> {
        let (flag, default_port) = self.listen_flag();
        let prefix = format!("{flag}=");
        let mut port = default_port.map(|p| p.to_string());
        let mut kept: Vec<String> = Vec::with_capacity(args.len() + 1);
        for arg in args {
            match arg.strip_prefix(&prefix) {
                Some(address) => {
                    if let (Some(_), Some((_, p))) = (&port, address.rsplit_once(':')) {
                        port = Some(p.to_string());
                    }
                }
                None => kept.push(arg),
            }
        }
        // A subcommand other than `serve` listens nowhere.
        if self == Program::SampleWorkload && kept.first().is_some_and(|a| a != "serve") {
            return kept;
        }
        kept.push(match port {
            Some(port) => format!("{prefix}{pod_ip}:{port}"),
            None => format!("{prefix}{pod_ip}"),
        });
        kept
    }
}

/// The image repository: without the tag or digest.
fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_pick_their_program() {
        assert_eq!(
            Program::for_image("quay.io/prometheus/prometheus:v3.7.0"),
            Some(Program::Prometheus)
        );
        assert_eq!(
            Program::for_image("ghcr.io/extension-server-operator/sample-workload:0.1.0"),
            Some(Program::SampleWorkload)
        );
        assert_eq!(Program::for_image("registry.k8s.io/pause:3.10"), None);
    }

    #[test]
    fn the_listen_address_moves_to_the_pod_ip() {
        let args = vec![
            "--config.file=/etc/prometheus/prometheus.yml".to_string(),
            "--web.listen-address=0.0.0.0:9091".to_string(),
        ];
        assert_eq!(
            Program::Prometheus.listen_on(args, "10.200.0.7"),
            [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--web.listen-address=10.200.0.7:9091"
            ]
        );
        assert_eq!(
            Program::SampleWorkload.listen_on(vec!["serve".into()], "10.200.0.8"),
            ["serve", "--listen=10.200.0.8:8080"]
        );
        assert_eq!(
            Program::PrometheusAdapter.listen_on(
                vec!["--bind-address=0.0.0.0".into(), "--secure-port=6443".into()],
                "10.200.0.9"
            ),
            ["--secure-port=6443", "--bind-address=10.200.0.9"]
        );
        assert_eq!(
            Program::SampleWorkload.listen_on(vec!["load".into()], "10.200.0.8"),
            ["load"]
        );
    }
}
