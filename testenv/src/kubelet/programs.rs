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
    /// `ghcr.io/kedacore/keda`: keda-operator, built from `testenv/go/keda` on first use.
    KedaOperator,
    /// `ghcr.io/kedacore/keda-metrics-apiserver`: KEDA's metrics server, from the same build.
    KedaMetricsServer,
    /// `*/sample-workload`: the project's sample workload (`examples/sample-workload`), which
    /// counts the requests it serves and also generates load.
    SampleWorkload,
    /// `*/sample-extension-server`, or the examples' `my-extension-server-image`: the
    /// project's sample extension API server (`examples/sample-extension-server`).
    SampleExtensionServer,
}

/// The image the examples name for a user's own extension API server.
const EXAMPLE_SERVER_IMAGE: &str = "my-extension-server-image";

/// Image repository to program.
const IMAGES: &[(&str, Program)] = &[
    ("quay.io/prometheus/prometheus", Program::Prometheus),
    ("prom/prometheus", Program::Prometheus),
    (
        "registry.k8s.io/prometheus-adapter/prometheus-adapter",
        Program::PrometheusAdapter,
    ),
    ("ghcr.io/kedacore/keda", Program::KedaOperator),
    (
        "ghcr.io/kedacore/keda-metrics-apiserver",
        Program::KedaMetricsServer,
    ),
];

/// A flag that holds a listen address.
#[derive(Debug, Clone, Copy)]
enum Listen {
    /// `host:port`, moved to the pod IP (the port kept, else this default).
    HostPort(&'static str, u16),
    /// An address alone, replaced by the pod IP.
    Host(&'static str),
    /// A port on every address, which would collide with other pods: a free port instead.
    FreePort(&'static str),
}

impl Program {
    /// The program for `image`, if the stand-in runs it.
    pub fn for_image(image: &str) -> Option<Program> {
        let repository = repository(image);
        match repository.rsplit('/').next() {
            Some("sample-workload") => return Some(Program::SampleWorkload),
            Some("sample-extension-server") => return Some(Program::SampleExtensionServer),
            _ if repository == EXAMPLE_SERVER_IMAGE => {
                return Some(Program::SampleExtensionServer);
            }
            _ => {}
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
            Program::KedaOperator => crate::tools::upstream_server("keda"),
            Program::KedaMetricsServer => {
                let operator = crate::tools::upstream_server("keda")?;
                Ok(operator.with_file_name("adapter"))
            }
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
            Program::SampleExtensionServer => crate::runtime::sample_server_binary(),
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
            Program::PrometheusAdapter
            | Program::KedaOperator
            | Program::KedaMetricsServer
            | Program::SampleExtensionServer => Vec::new(),
            Program::SampleWorkload => vec!["serve".into()],
        }
    }

    /// The flags that hold listen addresses.
    fn listens(self) -> &'static [Listen] {
        match self {
            Program::Prometheus => &[Listen::HostPort("--web.listen-address", 9090)],
            Program::PrometheusAdapter => &[Listen::Host("--bind-address")],
            Program::KedaOperator => &[
                Listen::HostPort("--metrics-bind-address", 8080),
                Listen::HostPort("--health-probe-bind-address", 8081),
                Listen::HostPort("--metrics-service-bind-address", 9666),
            ],
            Program::KedaMetricsServer => {
                &[Listen::Host("--bind-address"), Listen::FreePort("--port")]
            }
            Program::SampleWorkload => &[Listen::HostPort("--listen", 8080)],
            Program::SampleExtensionServer => &[Listen::Host("--bind-address")],
        }
    }

    /// `args` with each listen address on `pod_ip` (other processes listen on the same ports
    /// at other pod IPs).
    pub fn listen_on(self, mut args: Vec<String>, pod_ip: &str) -> Result<Vec<String>> {
        // A subcommand other than `serve` listens nowhere.
        if self == Program::SampleWorkload && args.first().is_some_and(|a| a != "serve") {
            return Ok(args);
        }
        for listen in self.listens() {
            let (flag, replacement) = match *listen {
                Listen::HostPort(flag, default_port) => {
                    let prefix = format!("{flag}=");
                    let port = args
                        .iter()
                        .rev()
                        .find_map(|a| a.strip_prefix(&prefix)?.rsplit_once(':'))
                        .map_or(default_port.to_string(), |(_, port)| port.to_string());
                    (flag, format!("{pod_ip}:{port}"))
                }
                Listen::Host(flag) => (flag, pod_ip.to_string()),
                Listen::FreePort(flag) => (flag, crate::process::free_port()?.to_string()),
            };
            let prefix = format!("{flag}=");
            args.retain(|a| !a.starts_with(&prefix));
            args.push(format!("{prefix}{replacement}"));
        }
        Ok(args)
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
        assert_eq!(
            Program::for_image("my-extension-server-image:latest"),
            Some(Program::SampleExtensionServer)
        );
        assert_eq!(
            Program::for_image("ghcr.io/example/sample-extension-server@sha256:0123"),
            Some(Program::SampleExtensionServer)
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
            Program::Prometheus.listen_on(args, "10.200.0.7").unwrap(),
            [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--web.listen-address=10.200.0.7:9091"
            ]
        );
        assert_eq!(
            Program::SampleWorkload
                .listen_on(vec!["serve".into()], "10.200.0.8")
                .unwrap(),
            ["serve", "--listen=10.200.0.8:8080"]
        );
        assert_eq!(
            Program::PrometheusAdapter
                .listen_on(
                    vec!["--bind-address=0.0.0.0".into(), "--secure-port=6443".into()],
                    "10.200.0.9"
                )
                .unwrap(),
            ["--secure-port=6443", "--bind-address=10.200.0.9"]
        );
        assert_eq!(
            Program::SampleWorkload
                .listen_on(vec!["load".into()], "10.200.0.8")
                .unwrap(),
            ["load"]
        );
        let keda = Program::KedaOperator
            .listen_on(Vec::new(), "10.200.0.10")
            .unwrap();
        assert_eq!(
            keda,
            [
                "--metrics-bind-address=10.200.0.10:8080",
                "--health-probe-bind-address=10.200.0.10:8081",
                "--metrics-service-bind-address=10.200.0.10:9666"
            ]
        );
    }
}
