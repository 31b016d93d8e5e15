//! Change latency: one spec change at a time, from the patch until the Deployment carries it
//! and the status reports the new generation. Both are seen through watches.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};

use crate::watch::Mirror;

const TIMEOUT: Duration = Duration::from_secs(60);

fn container_args(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

fn observed_generation(server: &ExtensionServer) -> i64 {
    server
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0)
}

/// Patches `args: [--bench=<round>-<i>]` into each of `names`, one at a time.
pub async fn measure(
    servers: Api<ExtensionServer>,
    deployments: Api<Deployment>,
    names: &[String],
    round: &str,
) -> Result<Vec<Duration>> {
    let mut args = Mirror::start(deployments, container_args).await?;
    let mut generations = Mirror::start(servers.clone(), observed_generation).await?;
    let mut latencies = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let arg = format!("--bench={round}-{i}");
        let patch = serde_json::json!({"spec": {"args": [arg]}});
        let began = Instant::now();
        let patched = servers
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("patching {name}"))?;
        let generation = patched.metadata.generation.unwrap_or(0);
        args.wait_for(name, |a| a.contains(&arg), TIMEOUT).await?;
        generations
            .wait_for(name, |g| *g >= generation, TIMEOUT)
            .await?;
        latencies.push(began.elapsed());
    }
    latencies.sort();
    Ok(latencies)
}

/// The `q` quantile (0..=1) of sorted `values`, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::quantile;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
