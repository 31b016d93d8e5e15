//! Upgrade under traffic: with release A serving, `helm upgrade` to release B (a new image tag
//! and a chart whose `childLabels` add a label to every child), while LIST requests run
//! through the aggregator for every server. The new operator pod starts beside the old one and
//! stands by; the old one gets SIGTERM, hands the Lease over, and the new one relabels every
//! child. Checked: no aggregated request failed, A released the Lease to B, no CA was minted
//! again, no server's pods rolled, and every child carries B's label.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use extension_server_operator::apiservice::APIService;
use extension_server_operator::names::ServerNames;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Api;
use kube::runtime::wait::await_condition;
use kube::{Resource, ResourceExt};
use testenv::image_pod::ImagePod;

use crate::helm::Helm;
use crate::traffic::Traffic;
use crate::wait::within;

/// Requests sent before the upgrade starts, and again once B has converged.
const WARM_UP: u64 = 300;
/// The kubelet's default termination grace period.
const GRACE: Duration = Duration::from_secs(30);

/// Release B: where its chart is, its version, the values the install used, and the label
/// its chart adds to every child.
pub struct Target<'a> {
    pub release: &'a str,
    pub chart: &'a str,
    pub version: &'a str,
    pub values: &'a [String],
    pub label: (&'a str, &'a str),
}

/// A served ExtensionServer: its name (namespace `default`) and group.
pub struct Served {
    pub name: String,
    pub group: String,
}

/// Upgrades to `target` while traffic runs. `operator` is A's pod, and B's once B has
/// started (A's is stopped then, on every path), so the caller can clean up with it.
pub async fn under_traffic(
    cluster: &testenv::Cluster,
    helm: &Helm,
    crane: &std::path::Path,
    (namespace, deployment): (&str, &str),
    operator: &mut ImagePod,
    servers: &[Served],
    target: &Target<'_>,
) -> Result<()> {
    let client = cluster.client().await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let holder = lease_holder(&leases.get(deployment).await?);
    ensure!(
        holder.as_deref() == Some(operator.pod_name.as_str()),
        "release A's pod {} does not hold the Lease ({holder:?})",
        operator.pod_name
    );
    let kept = must_not_change(&client, servers).await?;
    let groups: Vec<String> = servers.iter().map(|s| s.group.clone()).collect();
    let mut traffic = Traffic::start(client.clone(), "default", &groups);
    traffic.wait_for_more(WARM_UP).await?;

    eprintln!("==> helm upgrade to {} (traffic running)", target.version);
    let mut upgrade = vec![
        "upgrade",
        target.release,
        target.chart,
        "--version",
        target.version,
        "--plain-http",
        "--namespace",
        namespace,
    ];
    for value in target.values {
        upgrade.extend(["--set", value.as_str()]);
    }
    helm.run(&upgrade)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let tag = format!(":{}", target.version);
    within(
        "the Deployment to take B's image",
        await_condition(deployments, deployment, move |d: Option<&Deployment>| {
            image_of(d).is_some_and(|i| i.ends_with(&tag))
        }),
    )
    .await?;

    // A rolling update: the new pod starts, stands by while the old one leads, then the old
    // one is terminated.
    let new = ImagePod::start(cluster, crane, namespace, deployment).await?;
    let mut old = std::mem::replace(operator, new);
    let new = operator;
    new.wait_log("waiting to become leader").await?;
    let holder = lease_holder(&leases.get(deployment).await?);
    ensure!(
        holder.as_deref() == Some(old.pod_name.as_str()),
        "the standby took the Lease while A still ran ({holder:?})"
    );
    let terminated = Instant::now();
    let clean = old.terminate(GRACE).await?;
    ensure!(
        clean,
        "A did not exit cleanly on SIGTERM; its log:\n{}",
        old.logs()
    );
    let new_name = new.pod_name.clone();
    let taken = within(
        "B to take the Lease",
        await_condition(leases, deployment, move |l: Option<&Lease>| {
            l.and_then(lease_holder).as_deref() == Some(new_name.as_str())
        }),
    )
    .await?;
    let handover = terminated.elapsed();
    let duration = taken
        .and_then(|l| l.spec?.lease_duration_seconds)
        .unwrap_or_default();
    ensure!(
        handover.as_secs_f64() < f64::from(duration),
        "B took the Lease {handover:?} after SIGTERM, not before it expired ({duration} s): A did not release it"
    );
    eprintln!(
        "==> the Lease passed from {} to {} {:.1} s after SIGTERM",
        old.pod_name,
        new.pod_name,
        handover.as_secs_f64()
    );

    for server in servers {
        new.with_logs(converged(&client, server, target.label).await)?;
    }
    eprintln!(
        "==> every child of {} servers carries {}={}",
        servers.len(),
        target.label.0,
        target.label.1
    );
    // Traffic goes on for a while with B in charge.
    traffic.wait_for_more(WARM_UP).await?;
    let tally = traffic.stop().await?;
    ensure!(
        tally.failed == 0,
        "{} of {} aggregated requests failed: {:?}",
        tally.failed,
        tally.sent,
        tally.failures
    );
    ensure!(tally.sent > 0, "no traffic was sent");
    let after = must_not_change(&client, servers).await?;
    for (what, before) in &kept {
        ensure!(
            after.get(what) == Some(before),
            "{what} changed in the upgrade"
        );
    }
    eprintln!(
        "==> upgrade under traffic: {} aggregated requests, 0 failed; no CA minted again, no server's pods rolled",
        tally.sent
    );
    Ok(())
}

fn image_of(deployment: Option<&Deployment>) -> Option<String> {
    deployment?
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

fn lease_holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

/// What the upgrade must leave as it is, for every server: the CA Secret's data (no CA minted
/// again), the APIService's caBundle, and the Deployment's pod template (no pods rolled).
async fn must_not_change(
    client: &kube::Client,
    servers: &[Served],
) -> Result<BTreeMap<String, String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let api_services: Api<APIService> = Api::all(client.clone());
    let mut kept = BTreeMap::new();
    for server in servers {
        let names = names(server);
        let ca = secrets.get(&names.ca_secret()).await?;
        kept.insert(
            format!("the data of Secret {}", names.ca_secret()),
            serde_json::to_string(&ca.data)?,
        );
        let api_service = format!("v1.{}", server.group);
        let bundle = api_services.get(&api_service).await?.spec.ca_bundle;
        kept.insert(
            format!("the caBundle of APIService {api_service}"),
            serde_json::to_string(&bundle)?,
        );
        let deployment = deployments.get(names.workload()).await?;
        kept.insert(
            format!("the pod template of Deployment {}", names.workload()),
            serde_json::to_string(&deployment.spec.map(|s| s.template))?,
        );
    }
    Ok(kept)
}

fn names(server: &Served) -> ServerNames {
    ServerNames {
        name: server.name.clone(),
        namespace: "default".into(),
    }
}

/// Waits until every child of `server` carries `label`.
async fn converged(client: &kube::Client, server: &Served, label: (&str, &str)) -> Result<()> {
    let names = names(server);
    let (key, value) = (label.0.to_string(), label.1.to_string());
    macro_rules! labelled {
        ($api:expr, $name:expr) => {{
            let name: String = $name;
            let (key, value) = (key.clone(), value.clone());
            within(
                &format!("{name} to carry {key}={value}"),
                await_condition($api, &name, move |o: Option<&_>| carries(o, &key, &value)),
            )
            .await?;
        }};
    }
    labelled!(
        Api::<ServiceAccount>::namespaced(client.clone(), "default"),
        names.workload().to_string()
    );
    labelled!(
        Api::<Deployment>::namespaced(client.clone(), "default"),
        names.workload().to_string()
    );
    labelled!(
        Api::<Service>::namespaced(client.clone(), "default"),
        names.workload().to_string()
    );
    labelled!(
        Api::<Secret>::namespaced(client.clone(), "default"),
        names.tls_secret()
    );
    labelled!(
        Api::<Secret>::namespaced(client.clone(), "default"),
        names.ca_secret()
    );
    labelled!(
        Api::<APIService>::all(client.clone()),
        format!("v1.{}", server.group)
    );
    labelled!(
        Api::<ClusterRoleBinding>::all(client.clone()),
        names.cluster_role_binding()
    );
    labelled!(
        Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
        names.auth_reader_binding()
    );
    Ok(())
}

fn carries<K: Resource>(object: Option<&K>, key: &str, value: &str) -> bool {
    object.is_some_and(|o| o.labels().get(key).map(String::as_str) == Some(value))
}
