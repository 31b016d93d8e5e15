//! The bench (`cargo xtask bench` runs it): measurements of the release binary on the local control plane, against
//! a floor (a bare client doing the same work). Writes `target/bench/report.md`,
//! `target/bench/report.json` and two SVG charts.

mod build_time;
mod failover;
mod first_get;
mod floor;
mod floor_objects;
mod foreign_secrets;
mod latency;
mod machine;
mod report;
mod requests;
mod scale;
mod servers;
mod svg;
mod watch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use testenv::TestNamespace;
use testenv::operator::OperatorProcess;

use first_get::FirstGet;
use report::{LeaseTimings, Report};
use svg::Series;

/// ExtensionServers for convergence, requests, steady state and change latency.
const SERVERS: usize = 100;
/// The steady-state window; `ESO_BENCH_STEADY_SECONDS` shortens it for a quick run.
const STEADY: Duration = Duration::from_secs(300);
const STEADY_ENV: &str = "ESO_BENCH_STEADY_SECONDS";

/// Starts the release binary scoped to `ns`; its log goes to `target/bench/`.
fn start(binary: &Path, ns: &TestNamespace, name: &str, extra: &[&str]) -> Result<OperatorProcess> {
    let log = bench_dir().join(format!("{}-{name}.log", ns.name));
    OperatorProcess::start(binary, name, &ns.name, &ns.cluster.kubeconfig, log, extra)
}

fn bench_dir() -> PathBuf {
    testenv::paths::workspace_root().join("target/bench")
}

fn release_binary() -> Result<PathBuf> {
    testenv::cargo::run(
        &[
            "build",
            "--release",
            "--locked",
            "--bin",
            "extension-server-operator",
        ],
        &[],
    )?;
    Ok(testenv::paths::workspace_root().join("target/release/extension-server-operator"))
}

fn steady_window() -> Result<Duration> {
    match std::env::var(STEADY_ENV) {
        Ok(seconds) => Ok(Duration::from_secs(seconds.parse()?)),
        Err(_) => Ok(STEADY),
    }
}

fn seconds(times: &[Duration]) -> Vec<f64> {
    times.iter().map(Duration::as_secs_f64).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let steady = steady_window()?;
    let binary = release_binary()?;
    let binary_mib = build_time::mib(&binary)?;
    let release_build_seconds = build_time::measure()?;
    let cluster = testenv::cluster::up(testenv::SHARED_INSTANCE).await?;
    testenv::cargo::install_crd(&cluster).await?;
    let machine = machine::describe(&cluster.client().await?).await?;

    eprintln!("==> floor: {SERVERS} servers by a bare client");
    let floor = floor::run(SERVERS).await?;
    let scale = scale::run(&binary, SERVERS, steady).await?;
    eprintln!(
        "==> create to first aggregated list, {} servers one at a time",
        first_get::SERVERS
    );
    let first = first_get::run(&binary).await?;
    eprintln!(
        "==> RSS with {} labelled foreign Secrets",
        foreign_secrets::SECRETS
    );
    let foreign = foreign_secrets::run(&binary).await?;
    eprintln!("==> failover after kill -9 (default lease timings)");
    let killed = failover::failover(&binary, true).await?;
    eprintln!("==> handover after SIGTERM");
    let handed = failover::failover(&binary, false).await?;

    let operator_seconds = scale
        .registered_at
        .last()
        .copied()
        .unwrap_or_default()
        .as_secs_f64();
    let floor_seconds = floor.total.as_secs_f64();
    let per = SERVERS as f64;
    let report = Report {
        machine,
        servers: SERVERS,
        floor_concurrency: floor::CONCURRENCY,
        floor_seconds,
        operator_seconds,
        ratio: operator_seconds / floor_seconds,
        deletion_seconds: scale.deletion.as_secs_f64(),
        object_writes_per_server: scale.creation.object_writes() / per,
        status_writes_per_server: scale.creation.status_writes() / per,
        events_per_server: scale.creation.events() / per,
        owned_objects_per_server: scale.owned_objects,
        requests_per_server: scale.creation.table(per),
        change_latency_p50_ms: ms(latency::quantile(&scale.latencies, 0.5)),
        change_latency_p99_ms: ms(latency::quantile(&scale.latencies, 0.99)),
        change_latency_max_ms: ms(latency::quantile(&scale.latencies, 1.0)),
        steady_seconds: steady.as_secs(),
        steady_writes: scale.steady.writes(),
        steady_reads: scale.steady.reads(),
        steady_requests: scale.steady.table(1.0),
        idle_rss_mib: scale.idle_rss_mib,
        rss_100_mib: scale.rss_100_mib,
        rss_1000_mib: scale.rss_many_mib,
        registered_of_1000: scale.registered_of_many,
        registered_1000_seconds: scale.many_registered_seconds,
        first_get_p50_ms: FirstGet::p50_ms(&first.first_get),
        first_get_p99_ms: FirstGet::p99_ms(&first.first_get),
        first_get_registered_p50_ms: FirstGet::p50_ms(&first.registered),
        first_get_registered_p99_ms: FirstGet::p99_ms(&first.registered),
        first_get_available_p50_ms: FirstGet::p50_ms(&first.available),
        first_get_available_p99_ms: FirstGet::p99_ms(&first.available),
        foreign_secrets_rss_before_mib: foreign.before_mib,
        foreign_secrets_rss_after_mib: foreign.after_mib,
        binary_mib,
        release_build_seconds,
        lease: LeaseTimings {
            lease_duration: "9s".into(),
            renew_deadline: "6s".into(),
            retry_period: "2s".into(),
        },
        failover_kill_seconds: killed.as_secs_f64(),
        handover_seconds: handed.as_secs_f64(),
    };

    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let registered = svg::step_chart(
        &format!("{SERVERS} servers registered over time"),
        "seconds since the first create",
        "servers registered",
        &[
            Series {
                name: "operator (Registered=True)",
                colour: "#1f77b4",
                points: svg::cumulative(&seconds(&scale.registered_at)),
            },
            Series {
                name: "floor (APIService created)",
                colour: "#ff7f0e",
                points: svg::cumulative(&seconds(&floor.created)),
            },
        ],
    );
    std::fs::write(dir.join("registered.svg"), registered)?;
    let latencies: Vec<(f64, f64)> = scale
        .latencies
        .iter()
        .enumerate()
        .map(|(i, d)| (ms(*d), (i + 1) as f64 / scale.latencies.len() as f64))
        .collect();
    let cdf = svg::step_chart(
        "change latency: patch to Deployment updated and status observed (CDF)",
        "milliseconds",
        "fraction of changes",
        &[Series {
            name: "operator",
            colour: "#1f77b4",
            points: latencies,
        }],
    );
    std::fs::write(dir.join("change-latency.svg"), cdf)?;
    let markdown = report.markdown();
    std::fs::write(dir.join("report.md"), &markdown)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    println!("{markdown}");
    Ok(())
}
