//! The operator at scale, in one namespace with one operator process: idle RSS, 100
//! ExtensionServers to Registered (with the requests it took), a steady window, change
//! latency, then 1,000 ExtensionServers for RSS once all are Registered, then deletion of all
//! of them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use testenv::TestNamespace;
use testenv::operator::OperatorProcess;

use crate::requests::Requests;
use crate::{latency, servers, watch};

/// ExtensionServers for RSS at scale.
pub const MANY: usize = 1000;
const TIMEOUT: Duration = Duration::from_secs(900);
/// The operator counts as quiet once its write counter has not moved for this long.
const QUIET: Duration = Duration::from_secs(5);

pub struct Scale {
    pub idle_rss_mib: f64,
    pub registered_at: Vec<Duration>,
    pub creation: Requests,
    pub owned_objects: usize,
    pub rss_100_mib: f64,
    pub steady: Requests,
    pub latencies: Vec<Duration>,
    pub rss_many_mib: f64,
    pub registered_of_many: usize,
    /// From the first of the 900 further creates until all 1,000 were Registered.
    pub many_registered_seconds: f64,
    pub deletion: Duration,
}

fn rss_mib(operator: &OperatorProcess) -> Result<f64> {
    Ok(operator.rss_kib()? as f64 / 1024.0)
}

/// Waits until the operator's write counter has stood still for `QUIET` (at most 2 minutes).
async fn quiet(operator: &OperatorProcess) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    let (mut last, mut since) = (operator.writes().await?, Instant::now());
    loop {
        ticks.tick().await;
        let now = operator.writes().await?;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= QUIET {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator kept writing for 2 minutes after convergence");
        }
    }
}

async fn count<K>(api: Api<K>, selector: &str) -> Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .len())
}

/// Objects the operator wrote for server `name`: labelled children in the namespace, and the
/// cluster-scoped and kube-system ones.
async fn owned_objects(ns: &TestNamespace, name: &str) -> Result<usize> {
    let local = format!("aggregation.dev/extension-server={name}");
    let cluster = format!(
        "{local},aggregation.dev/extension-server-namespace={}",
        ns.name
    );
    let client = ns.client.clone();
    Ok(count(ns.api::<ServiceAccount>(), &local).await?
        + count(ns.api::<Secret>(), &local).await?
        + count(ns.api::<Deployment>(), &local).await?
        + count(ns.api::<Service>(), &local).await?
        + count(ns.api::<PodDisruptionBudget>(), &local).await?
        + count(Api::<ClusterRoleBinding>::all(client.clone()), &cluster).await?
        + count(
            Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
            &cluster,
        )
        .await?
        + count(Api::<APIService>::all(client), &cluster).await?)
}

pub async fn run(binary: &Path, servers_n: usize, steady: Duration) -> Result<Scale> {
    let ns = TestNamespace::create("bench").await?;
    let operator = crate::start(binary, &ns, "operator", &[])?;
    operator.wait_ready().await?;
    let api: Api<ExtensionServer> = ns.api();
    let result = measure(&ns, &operator, &api, servers_n, steady).await;
    if let Err(e) = &result {
        eprintln!("bench failed ({e:#}); cleaning up");
    }
    let started = Instant::now();
    servers::delete_all(&api, TIMEOUT).await?;
    let deletion = started.elapsed();
    ns.delete_and_wait(TIMEOUT).await?;
    drop(operator);
    let mut scale = result?;
    scale.deletion = deletion;
    Ok(scale)
}

async fn measure(
    ns: &TestNamespace,
    operator: &OperatorProcess,
    api: &Api<ExtensionServer>,
    n: usize,
    steady: Duration,
) -> Result<Scale> {
    let idle_rss_mib = rss_mib(operator)?;
    eprintln!("==> {n} ExtensionServers to Registered");
    let before = Requests::scrape(operator).await?;
    let started = Instant::now();
    let tracker = tokio::spawn(watch::first_times(
        api.clone(),
        watcher::Config::default(),
        n,
        servers::registered,
        started,
        TIMEOUT,
    ));
    servers::create(api, &ns.name, 0..n).await?;
    let registered_at = tracker.await??;
    quiet(operator).await?;
    let creation = Requests::scrape(operator).await?.since(&before);
    let owned_objects = owned_objects(ns, &servers::name(0)).await?;
    let rss_100_mib = rss_mib(operator)?;

    eprintln!("==> steady state for {} s", steady.as_secs());
    let before = Requests::scrape(operator).await?;
    tokio::time::sleep(steady).await;
    let steady = Requests::scrape(operator).await?.since(&before);

    eprintln!("==> change latency, {n} servers one at a time");
    let names: Vec<String> = (0..n).map(servers::name).collect();
    let latencies = latency::measure(api.clone(), ns.api(), &names, "a").await?;

    eprintln!("==> {MANY} ExtensionServers for RSS, once all are Registered");
    let started = Instant::now();
    servers::create(api, &ns.name, n..MANY).await?;
    let registered = watch::first_times(
        api.clone(),
        watcher::Config::default(),
        MANY,
        servers::registered,
        started,
        TIMEOUT,
    )
    .await
    .context("not every ExtensionServer became Registered")?;
    let many_registered_seconds = registered.last().copied().unwrap_or_default().as_secs_f64();
    quiet(operator).await?;
    let rss_many_mib = rss_mib(operator)?;
    let registered_of_many = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|s| servers::registered(s))
        .count();
    Ok(Scale {
        idle_rss_mib,
        registered_at,
        creation,
        owned_objects,
        rss_100_mib,
        steady,
        latencies,
        rss_many_mib,
        registered_of_many,
        many_registered_seconds,
        deletion: Duration::ZERO,
    })
}
