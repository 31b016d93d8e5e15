//! The fault suite's shared parts: its scale (short in `cargo xtask test`, full in
//! `cargo xtask chaos`), a seeded random source, and the per-part results that
//! `cargo xtask chaos` gathers into `target/chaos/report.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};

/// `CHAOS_SCALE=full` (set by `cargo xtask chaos`) runs the full sizes; anything else the short
/// ones that CI runs.
pub fn full() -> bool {
    std::env::var("CHAOS_SCALE").is_ok_and(|s| s == "full")
}

/// `short` in CI, `full` under `cargo xtask chaos`.
pub fn sized(short: usize, full_size: usize) -> usize {
    if full() { full_size } else { short }
}

/// The seed: `CHAOS_SEED` to replay a run, else one drawn from the clock. Printed either way.
pub fn seed(part: &str) -> u64 {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("chaos {part}: seed {seed} (replay with CHAOS_SEED={seed})");
    seed
}

/// A seed that once failed its part, kept in `tests/chaos/kept-seeds.txt` so that every run
/// of the part replays it besides its random seed.
#[derive(Debug, Clone)]
pub struct Kept {
    pub seed: u64,
    scope: std::collections::BTreeMap<String, String>,
}

impl Kept {
    /// The scope's `key=value` for `key`, such as the server index or the fault rate.
    pub fn scope(&self, key: &str) -> &str {
        self.scope
            .get(key)
            .unwrap_or_else(|| panic!("kept seed {} has no scope {key}", self.seed))
    }
}

/// The kept seeds of `part`, each announced with how to replay it.
pub fn kept(part: &str) -> Vec<Kept> {
    let path = testenv::paths::workspace_root().join("tests/chaos/kept-seeds.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<Kept> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == part).then_some(())?;
            let seed = words.next()?.parse().unwrap();
            let scope = words
                .next()?
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some(Kept { seed, scope })
        })
        .collect();
    for k in &kept {
        eprintln!("chaos {part}: kept seed {} {:?}", k.seed, k.scope);
    }
    kept
}

/// A small, seeded random source (SplitMix64): the same seed gives the same run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn parts_dir() -> PathBuf {
    testenv::paths::workspace_root().join("target/chaos/parts")
}

/// Records one part's results as `target/chaos/parts/<part>.json`, with the scale it ran at.
pub fn record(part: &str, mut results: serde_json::Value) {
    if let Some(map) = results.as_object_mut() {
        map.insert(
            "scale".into(),
            (if full() { "full" } else { "short" }).into(),
        );
    }
    let dir = parts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{part}.json")),
        serde_json::to_vec_pretty(&results).unwrap(),
    )
    .unwrap();
}

/// Waits until `done` holds for the objects `api` lists with `selector`; `None` on timeout.
pub async fn until<K>(
    api: Api<K>,
    selector: &str,
    timeout: Duration,
    done: impl Fn(&[Arc<K>]) -> bool,
) -> Option<Vec<Arc<K>>>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    K: serde::de::DeserializeOwned,
{
    let (reader, writer) = reflector::store();
    let mut config = watcher::Config::default();
    if !selector.is_empty() {
        config = config.labels(selector);
    }
    let events = reflector(writer, watcher(api, config).default_backoff());
    let mut events = std::pin::pin!(events);
    let mut listed = false;
    tokio::time::timeout(timeout, async {
        while let Some(event) = events.next().await {
            listed |= matches!(event, Ok(watcher::Event::InitDone));
            let state = reader.state();
            if listed && done(&state) {
                return Some(state);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Generated property cases so far, per part and property.
type Cases =
    std::collections::BTreeMap<&'static str, std::collections::BTreeMap<&'static str, u64>>;
static CASES: std::sync::Mutex<Cases> = std::sync::Mutex::new(Cases::new());

/// Counts one generated case of `property` in `part` (such as `properties`). The part's totals
/// are written to `target/chaos/parts/properties-<part>.json` at every power of two and every
/// 4096th case, so a report never counts more cases than ran.
pub fn count_case(part: &'static str, property: &'static str) {
    let snapshot = {
        let mut parts = CASES.lock().unwrap_or_else(|p| p.into_inner());
        let cases = parts.entry(part).or_default();
        let count = cases.entry(property).or_default();
        *count += 1;
        (count.is_power_of_two() || count.is_multiple_of(4096)).then(|| cases.clone())
    };
    if let Some(cases) = snapshot {
        let total: u64 = cases.values().sum();
        record(
            &format!("properties-{part}"),
            serde_json::json!({"property_cases": total, "by_property": cases}),
        );
    }
}

/// A proptest config with `short` cases per property in CI and `full` under `cargo xtask
/// chaos` (`PROPTEST_CASES`, if set, still wins).
pub fn property_config(short: u32, full_size: u32) -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases: if full() { full_size } else { short },
        ..proptest::prelude::ProptestConfig::default()
    }
}
