//! `cargo xtask`: the project's task runner (local cluster, tests, demo).

mod chaos;
mod cmd;
mod demo;
mod demo_keda;
mod demo_metrics;
mod demo_show;
mod gate;
mod helm;
mod image;
mod leftovers;
mod next_release;
mod release;
mod traffic;
mod upgrade;
mod wait;

use anyhow::Result;
use clap::{Parser, Subcommand};
use testenv::SHARED_INSTANCE;

#[derive(Parser)]
#[command(about = "Tasks for extension-server-operator")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Manage the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok).
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// The fast loop: fmt, clippy, the unit and mock-API tests and the pure tests; needs no
    /// control plane and no Go build.
    Fast,
    /// Run every check CI runs: fmt, clippy, unit and integration tests.
    Test {
        /// Kubernetes minor to test against: 1.33, 1.34, 1.35 or 1.36.
        #[arg(long, default_value = testenv::tools::DEFAULT_KUBERNETES)]
        kubernetes: String,
    },
    /// Bring up the local control plane and run the seed scenario on it.
    Demo {
        /// Keep the operator and the servers running until Ctrl-C, to try things with kubectl.
        #[arg(long)]
        keep: bool,
    },
    /// Measure the release binary: size, RSS idle and with 100 ExtensionServers, failover.
    Bench,
    /// Run the fault suite at full size; writes target/chaos/report.json and report.md.
    Chaos,
    /// Release to a local OCI registry and install from it (`--local`; the only mode here).
    Release {
        #[arg(long)]
        local: bool,
    },
    /// Build the static operator binary and its image with podman (tagged with the crate's
    /// version and the git revision), and check it: non-root user, entrypoint, labels, size.
    Image,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Build the binaries if needed, start the cluster (or reuse a healthy one on the same
    /// Kubernetes version) and the kubelet stand-in that runs its pods, print the kubeconfig
    /// path as the last line.
    Up {
        /// Kubernetes minor: 1.33, 1.34, 1.35 or 1.36.
        #[arg(long, default_value = testenv::tools::DEFAULT_KUBERNETES)]
        kubernetes: String,
    },
    /// Stop every process of the cluster and remove its state.
    Down,
    /// The kubelet stand-in's process, as `up` starts it.
    #[command(hide = true)]
    Kubelet {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        pid_file: std::path::PathBuf,
    },
    /// Print `export` lines for KUBECONFIG and PATH: `eval "$(cargo xtask cluster env)"`.
    Env,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Cluster { action } => match action {
            ClusterAction::Up { kubernetes } => {
                cmd::build_stand_in_binaries()?;
                let cluster = testenv::cluster::up_with(SHARED_INSTANCE, &kubernetes).await?;
                cmd::ensure_kubelet(&cluster)?;
                println!("{}", cluster.kubeconfig.display());
            }
            ClusterAction::Down => {
                let left = testenv::cluster::down(SHARED_INSTANCE)?;
                if !left.is_empty() {
                    anyhow::bail!("processes still running after down: {left:?}");
                }
                eprintln!("==> cluster {SHARED_INSTANCE} is down");
            }
            ClusterAction::Kubelet { instance, pid_file } => {
                testenv::kubelet::daemon::serve(&instance, &pid_file).await?;
            }
            ClusterAction::Env => {
                let cluster = testenv::cluster::existing(SHARED_INSTANCE).await?;
                print!("{}", cluster.env_lines());
            }
        },
        Task::Fast => gate::fast()?,
        Task::Test { kubernetes } => gate::test(&kubernetes).await?,
        Task::Demo { keep } => demo::run(keep).await?,
        Task::Bench => {
            // The first-get measurement runs the sample server under the kubelet stand-in.
            cmd::build_stand_in_binaries()?;
            cmd::cargo(&["run", "--locked", "-p", "eso-bench"], &[])?;
        }
        Task::Chaos => chaos::run().await?,
        Task::Release { local } => {
            anyhow::ensure!(
                local,
                "only `cargo xtask release --local` runs here; tags publish through .github/workflows/release.yml"
            );
            release::local().await?;
        }
        Task::Image => {
            let image = image::build()?;
            println!("{} {:.1} MiB", image.reference, image.size_mib);
        }
    }
    Ok(())
}
