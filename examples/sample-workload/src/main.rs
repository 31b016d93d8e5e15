//! `sample-workload serve` answers every HTTP request and counts it in
//! `http_requests_total`, which `/metrics` exposes for Prometheus; `sample-workload load`
//! sends requests to a URL at a fixed rate until stopped.

mod load;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and count the requests served.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: String,
    },
    /// Send GET requests to a URL at a fixed rate.
    Load {
        /// An `http://host:port/path` URL.
        #[arg(long)]
        url: String,
        /// Requests per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { listen } => serve::run(&listen).await,
        Command::Load { url, rate } => load::run(&url, rate).await,
    }
}
