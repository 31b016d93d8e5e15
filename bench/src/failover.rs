//! Leader failover with the operator's default lease timings: two candidates, the leader is
//! stopped with `kill -9` or SIGTERM, and the standby's takeover is seen on the Lease.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use extension_server_operator::leader;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::wait::await_condition;
use testenv::TestNamespace;

fn holder(lease: Option<&Lease>) -> Option<String> {
    lease.and_then(leader::holder).map(str::to_string)
}

/// Two candidates with the default timings; the leader is stopped with `kill -9` or SIGTERM.
pub async fn failover(binary: &Path, kill: bool) -> Result<Duration> {
    let ns = TestNamespace::create("bench-failover").await?;
    let mut candidates = Vec::new();
    let lease_namespace = format!("--leader-elect-namespace={}", ns.name);
    for identity in ["one", "two"] {
        let flags = [
            "--leader-elect",
            &lease_namespace,
            &format!("--leader-elect-identity={identity}"),
        ];
        candidates.push((identity, crate::start(binary, &ns, identity, &flags)?));
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
    let (standby, standby_process) = candidates.remove(0);
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
    let took = began.elapsed();
    drop(standby_process);
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(took)
}
