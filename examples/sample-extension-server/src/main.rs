//! A small sample Kubernetes extension API server.
//!
//! It serves read-only, in-memory resources behind the kube-apiserver aggregation
//! layer: by default group `my.custom.api`, version `v1`, resource `myresources`
//! (kind `MyResource`); `--group`, `--versions` and `--resources` change that.
//! The pieces, one per file:
//! - `served.rs`: the served group, versions and resources, from the flags;
//! - `token.rs`: the backend token check (`--token-env`);
//! - `tls.rs`: HTTPS with the serving cert, optional client certificates;
//! - `auth.rs`: who is calling (front-proxy client cert + `X-Remote-*` headers);
//! - `authz.rs`: may they (a SubjectAccessReview to kube-apiserver);
//! - `api.rs`: routing, the answer to each route and `Status` errors;
//! - `discovery.rs`, `objects.rs`: discovery documents, the sample objects;
//! - `server.rs`: the accept loop and the request pipeline.

mod api;
mod auth;
mod authz;
mod discovery;
mod objects;
mod served;
mod server;
mod tls;
mod token;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// A sample Kubernetes extension API server: read-only sample objects for the API
/// group, versions and resources given (default: `myresources.my.custom.api/v1`).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// HTTPS port to listen on (0 picks a free one; see the log).
    #[arg(long, default_value_t = 8443)]
    secure_port: u16,
    /// IP address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// PEM serving certificate (chain).
    #[arg(long)]
    tls_cert_file: PathBuf,
    /// PEM private key (PKCS#8) of the serving certificate.
    #[arg(long)]
    tls_private_key_file: PathBuf,
    /// Kubeconfig to reach kube-apiserver; default: in-cluster or $KUBECONFIG.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Comma-separated API groups to serve, each with the same versions and resources.
    #[arg(long, value_name = "GROUP,...", default_value = served::DEFAULT_GROUP)]
    group: String,
    /// Comma-separated versions to serve; the first is the preferred one.
    #[arg(long, value_name = "VERSION,...", default_value = served::DEFAULT_VERSIONS)]
    versions: String,
    /// Comma-separated resources to serve, as plural[:Kind] (without a Kind: `widgets` → `Widget`).
    #[arg(long, value_name = "PLURAL[:KIND],...", default_value = served::DEFAULT_RESOURCES)]
    resources: String,
    /// Environment variable that must hold the backend token (e.g. BACKEND_TOKEN);
    /// the server refuses to start if it is unset or empty.
    #[arg(long, value_name = "NAME")]
    token_env: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let served = served::Served::parse(&args.group, &args.versions, &args.resources)?;
    if let Some(name) = &args.token_env {
        let token = token::BackendToken::from_env_value(name, std::env::var(name).ok())?;
        // A real server would hand the token to its backend client; this one only checks it.
        info!("backend token loaded from {name} ({} bytes)", token.len());
    }
    info!("serving {served}");

    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let authn = auth::RequestHeaderAuth::load(client.clone()).await?;
    let tls = tls::server_config(
        &args.tls_cert_file,
        &args.tls_private_key_file,
        authn.client_ca(),
    )?;
    let state = Arc::new(server::State {
        authn,
        authz: authz::Authorizer::new(client),
        objects: objects::sample_objects(&served),
        served,
    });

    let listener = listen(args.bind_address, args.secure_port)
        .with_context(|| format!("binding {}:{}", args.bind_address, args.secure_port))?;
    info!("serving on https://{}", listener.local_addr()?);
    server::serve(
        listener,
        TlsAcceptor::from(Arc::new(tls)),
        state,
        shutdown_signal(),
    )
    .await;
    info!("stopped");
    Ok(())
}

/// Listens with SO_REUSEPORT, so a replacement process can start listening before the old one
/// drains and exits (a rolling restart without refused connections).
fn listen(address: IpAddr, port: u16) -> Result<TcpListener> {
    let socket = match address {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind((address, port).into())?;
    Ok(socket.listen(1024)?)
}

/// A client from `--kubeconfig`, or else the in-cluster config / $KUBECONFIG.
async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client> {
    let Some(path) = kubeconfig else {
        return kube::Client::try_default()
            .await
            .context("creating the Kubernetes client");
    };
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Completes on SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            tokio::select! {
                _ = sigterm.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(e) => {
            warn!("cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
