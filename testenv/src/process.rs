//! Starting, finding and stopping the cluster's processes.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Starts `binary` detached in its own process group, appending to `<logs>/<name>.log` (so a
/// restarted component keeps the log of its earlier run).
pub fn spawn(name: &str, binary: &Path, args: &[String], logs: &Path) -> Result<u32> {
    std::fs::create_dir_all(logs)?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(logs.join(format!("{name}.log")))?;
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(child.id())
}

/// True while `pid` runs (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Every live process whose command line mentions `marker` (the cluster's state directory), or
/// whose root is inside it (a container of the kubelet stand-in).
pub fn processes_mentioning(marker: &Path) -> Vec<u32> {
    // A path inside the directory: `<dir>/`, so that the processes of cluster `prometheus` do
    // not include those of cluster `prometheus-adapter`.
    let marker = format!("{}/", marker.to_string_lossy().trim_end_matches('/'));
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own && alive(*pid))
        .filter(|pid| {
            let mentions = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| String::from_utf8_lossy(&raw).contains(&marker));
            mentions || rooted_in(*pid, Path::new(&marker))
        })
        .collect()
}

/// True if `pid`'s root directory is `dir` or inside it (a chrooted container).
pub fn rooted_in(pid: u32, dir: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|root| root.starts_with(dir))
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGTERM, then SIGKILL to whatever is still running after `grace`.
pub fn terminate(pids: &[u32], grace: Duration) {
    for pid in pids {
        signal(*pid, "-TERM");
    }
    let deadline = Instant::now() + grace;
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        signal(*pid, "-KILL");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback TCP port.
pub fn free_port() -> Result<u16> {
    // Below Linux's ephemeral range (32768-60999): a port the kernel hands out with bind(0) can
    // be taken by any process's outgoing connection before the component binds it.
    const FIRST: u32 = 20000;
    const COUNT: u32 = 12000;
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2654435761);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for step in 0..COUNT {
        let offset = (seed.wrapping_add(step.wrapping_mul(7919))) % COUNT;
        let Ok(port) = u16::try_from(FIRST + offset) else {
            continue;
        };
        if handed_out.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {FIRST} and {}", FIRST + COUNT)
}

/// The log directory of a cluster state directory.
pub fn logs_dir(state: &Path) -> PathBuf {
    state.join("logs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_whose_name_starts_another_s_mentions_none_of_its_processes() {
        let base = std::env::temp_dir().join(format!("mentioning-{}", std::process::id()));
        let longer = base.join("prometheus-adapter");
        let mut child = Command::new("sh")
            .args(["-c", "echo started; sleep 30; true", "sh"])
            .arg(longer.join("etcd"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Until the shell runs, the child's command line is still this test's.
        let mut started = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut started,
        )
        .unwrap();
        let pid = child.id();
        assert!(processes_mentioning(&longer).contains(&pid));
        assert!(!processes_mentioning(&base.join("prometheus")).contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
