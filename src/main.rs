//! The operator binary: parses flags and starts the controller.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use extension_server_operator::child_labels::ChildLabels;
use extension_server_operator::context::{Context, Settings};
use extension_server_operator::crd::schema;
use extension_server_operator::leader::{self, LeaderElector, LeaseSettings};
use extension_server_operator::tls::{self, Lifetimes, duration};
use extension_server_operator::{controller, http};

#[derive(Parser)]
#[command(
    version,
    about = "Runs extension API servers and registers them with the aggregator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The admin's grants: which namespaces may claim which groups (YAML, re-read on change).
    /// Without it, any namespace may claim any unprotected group, and adoption is off.
    #[arg(long, env = "GRANTS_FILE")]
    grants: Option<std::path::PathBuf>,
    /// Serving-certificate lifetime when an ExtensionServer sets none.
    #[arg(long, default_value = schema::DEFAULT_CERTIFICATE_DURATION)]
    default_certificate_duration: String,
    /// CA lifetime when an ExtensionServer sets none.
    #[arg(long, default_value = schema::DEFAULT_CA_DURATION)]
    default_ca_duration: String,
    /// Re-check every ExtensionServer at least this often.
    #[arg(long, default_value = "5m")]
    resync: String,
    /// How often the certificate a registered server presents is verified against its caBundle
    /// (the aggregator's own availability check does not verify it).
    #[arg(long, default_value = "30s")]
    probe_interval: String,
    /// How often cluster-scoped and kube-system objects whose ExtensionServer is gone are
    /// looked for and deleted (also once at start).
    #[arg(long, default_value = "5m")]
    sweep_interval: String,
    /// Longest an APIService may stay unavailable before the operator unregisters it, whatever
    /// the spec says (an unavailable APIService breaks discovery and namespace deletion for the
    /// whole cluster); `registration.unregisterAfter` can only shorten it.
    #[arg(long, default_value = "10m")]
    max_unavailable: String,
    /// Most ExtensionServers reconciled at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Most TLS probes of registered servers in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    probe_concurrency: u64,
    /// A label added to every object the operator creates for a server, but not to its pods
    /// (changing it relabels without rolling them); repeatable. Keys the operator uses itself
    /// (`app.kubernetes.io/managed-by`, the `aggregation.dev/` prefix) are refused.
    #[arg(long = "child-label", value_name = "KEY=VALUE")]
    child_labels: Vec<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz (HTTPS; /metrics needs a bearer token whose
    /// user may get the non-resource URL /metrics).
    #[arg(long, default_value = "0.0.0.0:8443", env = "METRICS_ADDRESS")]
    metrics_address: std::net::SocketAddr,
    /// Directory with tls.crt and tls.key for the metrics endpoint (default: a self-signed
    /// certificate made at start).
    #[arg(long, env = "METRICS_CERT_DIR")]
    metrics_cert_dir: Option<std::path::PathBuf>,
    /// Serve the endpoints over plain HTTP, and /metrics to anyone.
    #[arg(long, env = "METRICS_INSECURE")]
    metrics_insecure: bool,
    /// Run the controller only while holding a Lease, so replicas can stand by.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (default: POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_elect_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "extension-server-operator")]
    leader_elect_lease_name: String,
    /// This process's identity in the Lease (default: POD_NAME, else host name and process id).
    #[arg(long, env = "POD_NAME")]
    leader_elect_identity: Option<String>,
    /// How long a standby waits after the leader's last renewal before taking over.
    #[arg(long, default_value = "9s")]
    leader_elect_lease_duration: String,
    /// How long the leader tries to renew before giving up (shorter than the lease duration).
    #[arg(long, default_value = "6s")]
    leader_elect_renew_deadline: String,
    /// Time between attempts to acquire or renew the Lease.
    #[arg(long, default_value = "2s")]
    leader_elect_retry_period: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => args,
        None => cli.run,
    };
    init_logging(args.log_format);
    let settings = Settings {
        default_lifetimes: Lifetimes {
            certificate: duration::parse(&args.default_certificate_duration)?,
            ca: duration::parse(&args.default_ca_duration)?,
        },
        grants_file: args.grants.clone(),
        resync: duration::parse(&args.resync)?.max(Duration::from_secs(1)),
        probe_interval: duration::parse(&args.probe_interval)?.max(Duration::from_secs(1)),
        concurrency: args.concurrency,
        probe_concurrency: usize::try_from(args.probe_concurrency)?,
        sweep_interval: duration::parse(&args.sweep_interval)?.max(Duration::from_secs(1)),
        max_unavailable: duration::parse(&args.max_unavailable)?.max(Duration::from_secs(1)),
        child_labels: ChildLabels::parse(args.child_labels.iter().map(String::as_str))
            .context("--child-label")?,
    };
    tls::lifetimes(None, None, settings.default_lifetimes)
        .context("--default-certificate-duration and --default-ca-duration")?;
    if let Some(path) = &args.grants {
        extension_server_operator::trust::grants::load(path)
            .map_err(|e| anyhow::anyhow!("--grants: {e}"))?;
    }
    let config = kube::Config::infer()
        .await
        .context("loading the Kubernetes config (KUBECONFIG or in-cluster)")?;
    let lease = if args.leader_elect {
        Some(lease_settings(&args, &config)?)
    } else {
        None
    };
    tracing::info!("starting extension-server-operator");
    let ctx = Arc::new(Context::connect(config.clone(), settings)?);
    let listener = http::bind(args.metrics_address)
        .await
        .with_context(|| format!("binding {}", args.metrics_address))?;
    if args.metrics_insecure {
        tokio::spawn(http::serve(listener, ctx.clone()));
    } else {
        let acceptor = http::secure::acceptor(args.metrics_cert_dir.as_deref())
            .context("--metrics-cert-dir")?;
        tokio::spawn(http::serve_secure(listener, ctx.clone(), acceptor));
    }
    match lease {
        None => {
            ctx.metrics.set_leader(true);
            controller::run(ctx, args.namespace).await;
        }
        Some(lease) => {
            // The Lease is written with its own client, so `api_writes` counts only reconciling.
            let elector = LeaderElector::new(kube::Client::try_from(config)?, lease);
            leader::lead(ctx, args.namespace, elector).await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn lease_settings(args: &RunArgs, config: &kube::Config) -> anyhow::Result<LeaseSettings> {
    let identity = match &args.leader_elect_identity {
        Some(identity) => identity.clone(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_else(|_| "localhost".into());
            format!("{}_{}", host.trim(), std::process::id())
        }
    };
    let settings = LeaseSettings {
        namespace: args
            .leader_elect_namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone()),
        name: args.leader_elect_lease_name.clone(),
        identity,
        lease_duration: duration::parse(&args.leader_elect_lease_duration)?,
        renew_deadline: duration::parse(&args.leader_elect_renew_deadline)?,
        retry_period: duration::parse(&args.leader_elect_retry_period)?,
    };
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
    Ok(settings)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
