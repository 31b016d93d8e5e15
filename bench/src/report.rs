//! The bench report: one struct, written as `report.json` and rendered as `report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::build_time::BuildTimes;
use crate::machine::Machine;

/// Lease timings the failover measurement ran with (the operator's defaults).
#[derive(Debug, Clone, Serialize)]
pub struct LeaseTimings {
    pub lease_duration: String,
    pub renew_deadline: String,
    pub retry_period: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub servers: usize,
    pub floor_concurrency: usize,
    pub floor_seconds: f64,
    pub operator_seconds: f64,
    pub ratio: f64,
    /// All 1,000 ExtensionServers deleted until gone (APIServices and cluster RBAC removed).
    pub deletion_seconds: f64,
    pub object_writes_per_server: f64,
    pub status_writes_per_server: f64,
    pub events_per_server: f64,
    pub owned_objects_per_server: usize,
    /// `verb resource` -> requests per server while creating them (until quiet).
    pub requests_per_server: BTreeMap<String, f64>,
    pub change_latency_p50_ms: f64,
    pub change_latency_p99_ms: f64,
    pub change_latency_max_ms: f64,
    pub steady_seconds: u64,
    pub steady_writes: f64,
    pub steady_reads: f64,
    /// `verb resource` -> requests during the steady window.
    pub steady_requests: BTreeMap<String, f64>,
    pub idle_rss_mib: f64,
    pub rss_100_mib: f64,
    pub rss_1000_mib: f64,
    /// How many of the 1,000 were Registered when RSS was measured (all had status).
    pub registered_of_1000: usize,
    /// From the first of the 900 further creates until all 1,000 were Registered.
    pub registered_1000_seconds: f64,
    /// Create to the first successful aggregated list, 20 servers one at a time.
    pub first_get_p50_ms: f64,
    pub first_get_p99_ms: f64,
    /// Create to APIService created: the operator's part.
    pub first_get_registered_p50_ms: f64,
    pub first_get_registered_p99_ms: f64,
    /// Create to APIService Available=True: after the aggregator's availability check.
    pub first_get_available_p50_ms: f64,
    pub first_get_available_p99_ms: f64,
    /// RSS next to one server, before and after 100 foreign 700 KB Secrets with its labels.
    pub foreign_secrets_rss_before_mib: f64,
    pub foreign_secrets_rss_after_mib: f64,
    pub binary_mib: f64,
    /// Clean release builds before and after the profile change (the last measurement with
    /// `ESO_BENCH_BUILD_TIME=1`); null if never measured.
    pub release_build_seconds: Option<BuildTimes>,
    pub lease: LeaseTimings,
    pub failover_kill_seconds: f64,
    pub handover_seconds: f64,
}

fn row(out: &mut String, what: &str, value: String, goal: &str, met: Option<bool>) {
    let met = match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    };
    // Writing to a String cannot fail.
    let _ = writeln!(out, "| {what} | {value} | {goal} | {met} |");
}

impl Report {
    pub fn markdown(&self) -> String {
        let r = self;
        let m = &r.machine;
        let n = r.servers;
        let mut out = String::new();
        let _ = writeln!(out, "# extension-server-operator bench\n");
        let _ = writeln!(
            out,
            "Machine: {} cores, {}. Kubernetes {} (local control plane, kwok nodes). Operator build: {}.\n",
            m.cores, m.cpu_model, m.kubernetes_version, m.build_profile
        );
        let _ = writeln!(
            out,
            "| measurement | value | goal | met |\n|---|---|---|---|"
        );
        row(
            &mut out,
            &format!(
                "floor: {n} servers by a bare client ({} at once)",
                r.floor_concurrency
            ),
            format!("{:.1} s", r.floor_seconds),
            "",
            None,
        );
        row(
            &mut out,
            &format!("operator: {n} ExtensionServers created to all Registered"),
            format!("{:.1} s", r.operator_seconds),
            "",
            None,
        );
        row(
            &mut out,
            "ratio operator / floor",
            format!("{:.2}", r.ratio),
            "<= 1.5",
            Some(r.ratio <= 1.5),
        );
        row(
            &mut out,
            "1,000 ExtensionServers deleted to all gone (finalizers done)",
            format!("{:.1} s", r.deletion_seconds),
            "",
            None,
        );
        let owned = r.owned_objects_per_server as f64;
        row(
            &mut out,
            "object writes per server (children + finalizer)",
            format!("{:.2}", r.object_writes_per_server),
            &format!("<= owned objects + 1 = {}", owned + 1.0),
            Some(r.object_writes_per_server <= owned + 1.0),
        );
        row(
            &mut out,
            "owned objects per server",
            r.owned_objects_per_server.to_string(),
            "",
            None,
        );
        row(
            &mut out,
            "status writes per server",
            format!("{:.2}", r.status_writes_per_server),
            "<= 4",
            Some(r.status_writes_per_server <= 4.0),
        );
        row(
            &mut out,
            "Events per server",
            format!("{:.2}", r.events_per_server),
            "",
            None,
        );
        row(
            &mut out,
            &format!("change latency p50 ({n} servers)"),
            format!("{:.0} ms", r.change_latency_p50_ms),
            "<= 100 ms",
            Some(r.change_latency_p50_ms <= 100.0),
        );
        row(
            &mut out,
            "change latency p99",
            format!(
                "{:.0} ms (max {:.0} ms)",
                r.change_latency_p99_ms, r.change_latency_max_ms
            ),
            "<= 500 ms",
            Some(r.change_latency_p99_ms <= 500.0),
        );
        row(
            &mut out,
            &format!("steady state writes ({n} servers, {} s)", r.steady_seconds),
            format!("{:.0}", r.steady_writes),
            "0",
            Some(r.steady_writes == 0.0),
        );
        row(
            &mut out,
            "steady state reads (get + list)",
            format!("{:.0}", r.steady_reads),
            "",
            None,
        );
        row(
            &mut out,
            "idle RSS (caches synced, no ExtensionServers)",
            format!("{:.1} MiB", r.idle_rss_mib),
            "<= 16 MiB",
            Some(r.idle_rss_mib <= 16.0),
        );
        let growth = r.foreign_secrets_rss_after_mib - r.foreign_secrets_rss_before_mib;
        row(
            &mut out,
            "RSS growth from 100 foreign 700 KB Secrets carrying the operator's labels",
            format!(
                "{growth:+.1} MiB ({:.1} to {:.1} MiB)",
                r.foreign_secrets_rss_before_mib, r.foreign_secrets_rss_after_mib
            ),
            "<= 5 MiB",
            Some(growth <= 5.0),
        );
        row(
            &mut out,
            &format!("RSS with {n} ExtensionServers"),
            format!("{:.1} MiB", r.rss_100_mib),
            "<= 32 MiB",
            Some(r.rss_100_mib <= 32.0),
        );
        row(
            &mut out,
            &format!(
                "RSS with 1,000 ExtensionServers, {} Registered (all Registered {:.0} s after the 900 further creates began)",
                r.registered_of_1000, r.registered_1000_seconds
            ),
            format!("{:.1} MiB", r.rss_1000_mib),
            "<= 48 MiB",
            Some(r.rss_1000_mib <= 48.0 && r.registered_of_1000 == 1000),
        );
        row(
            &mut out,
            &format!(
                "create to first successful aggregated list, p50 ({} servers one at a time)",
                crate::first_get::SERVERS
            ),
            format!("{:.0} ms", r.first_get_p50_ms),
            "<= 2000 ms",
            Some(r.first_get_p50_ms <= 2000.0),
        );
        row(
            &mut out,
            "create to first successful aggregated list, p99",
            format!("{:.0} ms", r.first_get_p99_ms),
            "<= 5000 ms",
            Some(r.first_get_p99_ms <= 5000.0),
        );
        row(
            &mut out,
            "of which the operator's: create to APIService created, p50 / p99",
            format!(
                "{:.0} / {:.0} ms",
                r.first_get_registered_p50_ms, r.first_get_registered_p99_ms
            ),
            "",
            None,
        );
        row(
            &mut out,
            "then the aggregator's availability check: create to APIService Available, p50 / p99",
            format!(
                "{:.0} / {:.0} ms",
                r.first_get_available_p50_ms, r.first_get_available_p99_ms
            ),
            "",
            None,
        );
        row(
            &mut out,
            "release binary",
            format!("{:.1} MiB", r.binary_mib),
            "<= 12 MiB",
            Some(r.binary_mib <= 12.0),
        );
        match &r.release_build_seconds {
            Some(b) => row(
                &mut out,
                "clean release build, cargo defaults -> this profile",
                format!(
                    "{:.0} s -> {:.0} s (binary {:.1} -> {:.1} MiB)",
                    b.before_seconds, b.after_seconds, b.before_binary_mib, b.after_binary_mib
                ),
                "",
                None,
            ),
            None => row(
                &mut out,
                "clean release build",
                format!(
                    "not measured yet (run once with {}=1)",
                    crate::build_time::ENV
                ),
                "",
                None,
            ),
        }
        let l = &r.lease;
        row(
            &mut out,
            &format!(
                "failover after `kill -9` of the leader (lease {}, renew {}, retry {})",
                l.lease_duration, l.renew_deadline, l.retry_period
            ),
            format!("{:.1} s", r.failover_kill_seconds),
            "<= 12 s",
            Some(r.failover_kill_seconds <= 12.0),
        );
        row(
            &mut out,
            "handover after SIGTERM (lease released)",
            format!("{:.1} s", r.handover_seconds),
            "",
            None,
        );
        out.push_str(&self.notes());
        out
    }

    fn notes(&self) -> String {
        let r = self;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n![ExtensionServers Registered over time](registered.svg)\n\n![Change latency](change-latency.svg)\n"
        );
        let _ = writeln!(
            out,
            "## Requests per server while creating {} servers\n",
            r.servers
        );
        let _ = writeln!(out, "| request | per server |\n|---|---|");
        for (request, count) in &r.requests_per_server {
            let _ = writeln!(out, "| {request} | {count:.2} |");
        }
        let _ = writeln!(
            out,
            "\nObject writes count every create/patch/update/delete except `extensionservers/status` and `events`; \
             they include the finalizer patch on the ExtensionServer. Owned objects are the ones labelled \
             `aggregation.dev/extension-server=<name>` that the operator writes (ServiceAccount, CA and TLS \
             Secrets, Deployment, Service, PodDisruptionBudget if any) plus its ClusterRoleBinding, \
             kube-system RoleBinding and APIServices.\n"
        );
        let _ = writeln!(out, "## Steady state ({} s)\n", r.steady_seconds);
        let _ = writeln!(out, "| request | count |\n|---|---|");
        for (request, count) in &r.steady_requests {
            let _ = writeln!(out, "| {request} | {count:.0} |");
        }
        let _ = writeln!(
            out,
            "\nWith nothing changing the operator should write nothing. A pass reads only the reflector \
             caches, so the periodic work (the certificate probe of every registered server every \
             `--probe-interval`, default 30s, which is a TLS handshake with its Service, and the resync \
             of every ExtensionServer, default 5m) needs no API request at all. Watches are long-lived \
             and counted once each.\n"
        );
        let l = &r.lease;
        let _ = writeln!(
            out,
            "## Lease timings\n\nDefaults: lease duration {}, renew deadline {}, retry period {}. They are safe because \
             the renew deadline is shorter than the lease duration by more than one retry period (a leader that \
             cannot renew stops reconciling at least one retry before anyone may take over), and a standby takes \
             over only after a full lease duration has passed, on its own clock, since the last renewal it observed, \
             so clock skew between replicas does not matter. After `kill -9` the takeover takes between one lease \
             duration and one lease duration plus one retry period after the last renewal; after SIGTERM the \
             leader releases the Lease and a standby takes it at its next retry.",
            l.lease_duration, l.renew_deadline, l.retry_period
        );
        out
    }
}
