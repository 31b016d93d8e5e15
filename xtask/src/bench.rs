//! `cargo xtask bench`: quick measurements of the release binary on the local control plane.
//! Binary size, idle RSS, RSS and convergence time with many ExtensionServers, and leader
//! failover with the default timings. The report goes to stdout and `target/bench/report.md`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::leader;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use testenv::TestNamespace;
use testenv::operator::OperatorProcess;

const SERVERS: usize = 100;

/// Starts the release binary scoped to `ns`; its log goes to `target/bench/`.
fn start(binary: &Path, ns: &TestNamespace, name: &str, extra: &[&str]) -> Result<OperatorProcess> {
    let log = testenv::paths::workspace_root()
        .join("target/bench")
        .join(format!("{}-{name}.log", ns.name));
    OperatorProcess::start(binary, name, &ns.name, &ns.cluster.kubeconfig, log, extra)
}

fn rss_mib(operator: &OperatorProcess) -> Result<f64> {
    Ok(operator.rss_kib()? as f64 / 1024.0)
}

fn release_binary() -> Result<PathBuf> {
    crate::cmd::cargo(
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

fn registered(server: Option<&ExtensionServer>) -> bool {
    server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Registered" && c.status == "True")
    })
}

async fn many_servers(binary: &Path, report: &mut Vec<String>) -> Result<()> {
    let ns = TestNamespace::create("bench").await?;
    let operator = start(binary, &ns, "operator", &[])?;
    operator.wait_ready().await?;
    report.push(format!(
        "| idle RSS (caches synced, no ExtensionServers) | {:.1} MiB |",
        rss_mib(&operator)?
    ));

    let servers: Api<ExtensionServer> = ns.api();
    let started = Instant::now();
    for i in 0..SERVERS {
        let server: ExtensionServer = serde_yaml::from_str(&format!(
            "apiVersion: aggregation.dev/v1alpha1\nkind: ExtensionServer\nmetadata: {{name: s{i}, namespace: {}}}\nspec: {{group: s{i}.{}.bench.api, versions: [{{name: v1}}], image: img}}\n",
            ns.name, ns.name
        ))?;
        servers.create(&PostParams::default(), &server).await?;
    }
    for i in 0..SERVERS {
        tokio::time::timeout(
            Duration::from_secs(600),
            await_condition(servers.clone(), &format!("s{i}"), registered),
        )
        .await
        .with_context(|| format!("s{i} did not register"))??;
    }
    report.push(format!(
        "| {SERVERS} ExtensionServers created to all Registered | {:.1} s |",
        started.elapsed().as_secs_f64()
    ));
    report.push(format!(
        "| RSS with {SERVERS} ExtensionServers | {:.1} MiB |",
        rss_mib(&operator)?
    ));

    let started = Instant::now();
    let mut uids = Vec::new();
    for i in 0..SERVERS {
        let name = format!("s{i}");
        uids.push(servers.get(&name).await?.metadata.uid.unwrap_or_default());
        servers.delete(&name, &DeleteParams::default()).await?;
    }
    for (i, uid) in uids.iter().enumerate() {
        tokio::time::timeout(
            Duration::from_secs(600),
            await_condition(
                servers.clone(),
                &format!("s{i}"),
                conditions::is_deleted(uid),
            ),
        )
        .await
        .with_context(|| format!("s{i} was not cleaned up"))??;
    }
    report.push(format!(
        "| {SERVERS} ExtensionServers deleted to all gone (APIServices removed) | {:.1} s |",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn holder(lease: Option<&Lease>) -> Option<String> {
    lease.and_then(leader::holder).map(str::to_string)
}

/// Two candidates with the default timings; the leader is stopped with `kill -9` or SIGTERM.
async fn failover(binary: &Path, kill: bool) -> Result<Duration> {
    let ns = TestNamespace::create("bench-failover").await?;
    let mut candidates = Vec::new();
    let lease_namespace = format!("--leader-elect-namespace={}", ns.name);
    for identity in ["one", "two"] {
        let flags = [
            "--leader-elect",
            &lease_namespace,
            &format!("--leader-elect-identity={identity}"),
        ];
        candidates.push((identity, start(binary, &ns, identity, &flags)?));
    }
    let leases: Api<Lease> = ns.api();
    let lease = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            leases.clone(),
            "extension-server-operator",
            |l: Option<&Lease>| holder(l).is_some(),
        ),
    )
    .await
    .context("no candidate took the Lease within 60 s")??;
    let leader = holder(lease.as_ref()).context("no leader")?;
    let (index, _) = candidates
        .iter()
        .enumerate()
        .find(|(_, (id, _))| *id == leader)
        .context("unknown leader")?;
    let (_, mut stopped) = candidates.remove(index);
    let (standby, _standby_process) = candidates.remove(0);
    let began = Instant::now();
    if kill {
        stopped.child.start_kill()?;
    } else {
        stopped.signal("-TERM")?;
    }
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            leases,
            "extension-server-operator",
            move |l: Option<&Lease>| holder(l).as_deref() == Some(standby),
        ),
    )
    .await
    .context("the standby did not take over within 60 s")??;
    Ok(began.elapsed())
}

pub async fn run() -> Result<()> {
    let binary = release_binary()?;
    testenv::cluster::up(testenv::SHARED_INSTANCE).await?;
    let ns = TestNamespace::create("bench-crd").await?;
    crate::demo::install_crd(&ns.cluster)?;
    drop(ns);

    let mut report = vec![
        "| measurement | value |".to_string(),
        "|---|---|".to_string(),
        format!(
            "| release binary size | {:.1} MiB |",
            std::fs::metadata(&binary)?.len() as f64 / (1024.0 * 1024.0)
        ),
    ];
    eprintln!("==> {SERVERS} ExtensionServers");
    many_servers(&binary, &mut report).await?;
    eprintln!("==> failover after kill -9 (lease 15s, renew deadline 10s, retry 2s)");
    let killed = failover(&binary, true).await?;
    report.push(format!(
        "| failover after `kill -9` of the leader (15 s lease) | {:.1} s |",
        killed.as_secs_f64()
    ));
    eprintln!("==> handover after SIGTERM");
    let handed = failover(&binary, false).await?;
    report.push(format!(
        "| handover after SIGTERM (lease released) | {:.1} s |",
        handed.as_secs_f64()
    ));

    let text = report.join("\n");
    println!("{text}");
    let dir = testenv::paths::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.md"), format!("{text}\n"))?;
    Ok(())
}
