//! External hosts: which `spec.external` hosts a grant opens, and the addresses that stay
//! closed unless a grant names them exactly (the aggregator would otherwise dial them with its
//! front-proxy client certificate).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a host is closed to external servers unless a grant lists it exactly, if it is.
pub fn restricted(host: &str, apiserver: &[String]) -> Option<&'static str> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return restricted_address(ip, apiserver);
    }
    let name = host.trim_end_matches('.');
    if name == "localhost" || name.ends_with(".localhost") {
        return Some("localhost");
    }
    let kubernetes = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"];
    if kubernetes.contains(&name) || name.starts_with("kubernetes.default.svc.") {
        return Some("the kubernetes Service (kube-apiserver itself)");
    }
    None
}

/// Why an address (IPv4 or IPv6) is closed unless granted exactly, if it is. An IPv4-mapped or
/// IPv4-compatible IPv6 address is judged as the IPv4 address it carries.
/// `apiserver` holds kube-apiserver's own addresses (the kubernetes Service's ClusterIP and its
/// endpoints).
pub fn restricted_address(ip: IpAddr, apiserver: &[String]) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => restricted_ip(ip, apiserver),
        IpAddr::V6(ip) => match embedded_ipv4(ip) {
            Some(v4) => restricted_ip(v4, apiserver),
            None if ip.is_loopback() => Some("a loopback address"),
            None if ip.is_unspecified() => Some("an unspecified address"),
            None if ip.is_unicast_link_local() => {
                Some("a link-local address (such as a cloud metadata service)")
            }
            None => None,
        },
    }
}

/// The IPv4 address an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) IPv6
/// address carries; `::1` and `::` are IPv6's own loopback and unspecified addresses.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    ip.to_ipv4_mapped().or_else(|| ip.to_ipv4())
}

/// Why an IPv4 address is closed unless granted exactly, if it is.
pub fn restricted_ip(ip: Ipv4Addr, apiserver: &[String]) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address (such as a cloud metadata service)")
    } else if ip.octets()[0] == 0 {
        Some("an unspecified address")
    } else if apiserver.iter().any(|a| a.parse() == Ok(ip)) {
        Some("an address of kube-apiserver itself (the kubernetes Service or its endpoints)")
    } else {
        None
    }
}

/// True when `pattern` (a name, `*.<suffix>`, an IPv4 address or an IPv4 CIDR) covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return host
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.'));
    }
    match (parse_cidr(pattern), host.parse::<Ipv4Addr>()) {
        (Some((network, bits)), Ok(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        _ => false,
    }
}

/// True when `pattern` is a valid host pattern.
pub fn valid_host_pattern(pattern: &str) -> bool {
    pattern.parse::<Ipv4Addr>().is_ok()
        || parse_cidr(pattern).is_some()
        || valid_name_pattern(pattern)
}

/// True for a DNS name or `*.<suffix>` of lowercase labels.
pub(crate) fn valid_name_pattern(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

fn parse_cidr(pattern: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, bits) = pattern.split_once('/')?;
    let bits: u8 = bits.parse().ok().filter(|b| *b <= 32)?;
    Some((address.parse().ok()?, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_unspecified_localhost_and_kubernetes_are_restricted() {
        let k = &["10.96.0.1".to_string(), "192.168.0.10".to_string()];
        for host in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "0.0.0.0",
            "10.96.0.1",
            "192.168.0.10",
            "localhost",
            "api.localhost",
            "kubernetes",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(restricted(host, k).is_some(), "{host} must be restricted");
        }
        for host in ["10.96.0.2", "api.example.com", "kubernetes.example.com"] {
            assert_eq!(restricted(host, k), None, "{host} is an ordinary host");
        }
    }

    #[test]
    fn ipv6_forms_of_restricted_addresses_are_restricted() {
        let k = &["10.96.0.1".to_string(), "192.168.0.10".to_string()];
        for host in [
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
            "::127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.96.0.1",
            "::1",
            "::",
            "fe80::1",
        ] {
            assert!(restricted(host, k).is_some(), "{host} must be restricted");
        }
        for host in ["::ffff:192.0.2.1", "2001:db8::1"] {
            assert_eq!(restricted(host, k), None, "{host} is an ordinary address");
        }
    }

    #[test]
    fn names_suffixes_and_cidrs_cover_hosts() {
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
        assert!(host_matches("10.0.0.0/8", "10.1.2.3"));
        assert!(!host_matches("10.0.0.0/8", "11.1.2.3"));
        assert!(host_matches("0.0.0.0/0", "192.0.2.1"));
        assert!(!host_matches("10.0.0.0/8", "ten.example.com"));
        assert!(valid_host_pattern("10.0.0.0/8"));
        assert!(valid_host_pattern("*.example.com"));
        assert!(!valid_host_pattern("10.0.0.0/33"));
        assert!(!valid_host_pattern("*"));
        assert!(!valid_host_pattern("Api.example.com"));
    }
}
