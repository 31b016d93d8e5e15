//! The operator binary: parses flags and starts the controller.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use extension_server_operator::context::{Context, Settings};
use extension_server_operator::http;
use extension_server_operator::tls::{Lifetimes, duration};

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
    /// Group patterns ExtensionServers may claim, comma-separated (`my.custom.api`, `*.example.com`).
    /// Empty allows any group.
    #[arg(long, env = "ALLOWED_GROUPS", value_delimiter = ',')]
    allowed_groups: Vec<String>,
    /// Serving-certificate lifetime when an ExtensionServer sets none.
    #[arg(long, default_value = "2160h")]
    default_certificate_duration: String,
    /// CA lifetime when an ExtensionServer sets none.
    #[arg(long, default_value = "43800h")]
    default_ca_duration: String,
    /// Re-check every ExtensionServer at least this often.
    #[arg(long, default_value = "5m")]
    resync: String,
    /// How often the certificate a registered server presents is verified against its caBundle
    /// (the aggregator's own availability check does not verify it).
    #[arg(long, default_value = "30s")]
    probe_interval: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "METRICS_ADDRESS")]
    metrics_address: std::net::SocketAddr,
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
        allowed_groups: args
            .allowed_groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .collect(),
        resync: duration::parse(&args.resync)?.max(Duration::from_secs(1)),
        probe_interval: duration::parse(&args.probe_interval)?.max(Duration::from_secs(1)),
    };
    let config = kube::Config::infer()
        .await
        .context("loading the Kubernetes config (KUBECONFIG or in-cluster)")?;
    tracing::info!("starting extension-server-operator");
    let ctx = std::sync::Arc::new(Context::connect(config, settings)?);
    let listener = http::bind(args.metrics_address)
        .await
        .with_context(|| format!("binding {}", args.metrics_address))?;
    tokio::spawn(http::serve(listener, ctx.clone()));
    extension_server_operator::controller::run(ctx, args.namespace).await;
    tracing::info!("stopped");
    Ok(())
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
