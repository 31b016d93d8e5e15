//! The pod network: each cluster hands its pods addresses from a /16 of its own
//! (`10.<200 + n>.0.0/16`), routed to loopback (`ip route add local <cidr> dev lo`), so a
//! process the kubelet stand-in ([`crate::kubelet`]) starts for a pod listens on the pod's IP
//! and every other process reaches it there, as on a real pod network. Adding the route needs
//! root (CAP_NET_ADMIN); without it the pod IPs stay data, as kwok alone leaves them.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The second octet of the first pod network.
const FIRST_NETWORK: u8 = 200;
/// How many clusters can have a pod network at once.
const NETWORKS: u8 = 50;

/// One cluster's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// `10.<n>.0.0/16`.
    pub cidr: String,
    /// Whether the route to loopback was added (and is removed with the cluster).
    pub routed: bool,
}

/// The CIDR of network `index`.
fn cidr(index: u8) -> String {
    format!("10.{}.0.0/16", FIRST_NETWORK + index)
}

/// kwok's `--cidr` for `cidr`: its first address (kwok hands out the ones after it).
pub fn kwok_cidr(cidr: &str) -> String {
    cidr.replacen(".0.0/", ".0.1/", 1)
}

/// Whether `ip` is inside `cidr` (a /16 of this module).
pub fn contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let prefix: Vec<u8> = cidr
        .split('/')
        .next()
        .unwrap_or_default()
        .split('.')
        .take(2)
        .filter_map(|o| o.parse().ok())
        .collect();
    prefix == ip.octets()[..2]
}

/// Picks the first network not in `taken` (the networks other clusters record) and not
/// routed already (by a cluster of another checkout), and routes it to loopback. Call with the
/// pod-network lock held.
pub fn allocate(taken: &[String]) -> Result<PodNetwork> {
    let routed = local_routes();
    let free = (0..NETWORKS)
        .map(cidr)
        .filter(|c| !taken.contains(c) && !routed.contains(c));
    for cidr in free {
        match route("add", &cidr) {
            Ok(()) => return Ok(PodNetwork { cidr, routed: true }),
            // Routed meanwhile from another checkout: the next one.
            Err(error) if error.to_string().contains("File exists") => continue,
            Err(error) => {
                eprintln!(
                    "    pods get addresses in {cidr} but nothing can listen there ({error:#}); \
                     the kubelet stand-in needs root to route them to loopback"
                );
                return Ok(PodNetwork {
                    cidr,
                    routed: false,
                });
            }
        }
    }
    bail!("every pod network is taken: stop a cluster (`cargo xtask cluster down`)")
}

/// Removes the route of a network that [`allocate`] routed.
pub fn release(network: &PodNetwork) {
    if network.routed
        && let Err(error) = route("del", &network.cidr)
    {
        eprintln!(
            "removing the route of pod network {}: {error:#}",
            network.cidr
        );
    }
}

/// The `local` routes of the routing table, as `a.b.c.d/n`.
fn local_routes() -> Vec<String> {
    let Ok(output) = Command::new("ip")
        .args(["-4", "route", "show", "table", "local"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("local ")?.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `ip route <verb> local <cidr> dev lo table local`.
fn route(verb: &str, cidr: &str) -> Result<()> {
    let output = Command::new("ip")
        .args(["route", verb, "local", cidr, "dev", "lo", "table", "local"])
        .output()
        .context("running ip")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Ok(());
    }
    bail!("ip route {verb} local {cidr}: {}", stderr.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_distinct_slash_16s() {
        assert_eq!(cidr(0), "10.200.0.0/16");
        assert_eq!(kwok_cidr(&cidr(3)), "10.203.0.1/16");
        assert!(contains("10.203.0.0/16", Ipv4Addr::new(10, 203, 4, 5)));
        assert!(!contains("10.203.0.0/16", Ipv4Addr::new(10, 204, 0, 1)));
    }
}
