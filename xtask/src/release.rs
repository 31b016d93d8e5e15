//! `cargo xtask release --local`: the release path on this machine. It builds the image
//! (`cargo xtask image`), starts a local OCI registry from its pinned module, pushes the image
//! and the packaged chart to it, installs the chart from `oci://`, runs the operator pod from the
//! pulled image's own binary, brings the basic example to Ready through the aggregator, and
//! uninstalls, leaving nothing but the CRD.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};

use crate::cmd::{output, run};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::runtime::wait::{await_condition, conditions};
use testenv::SHARED_INSTANCE;
use testenv::image_pod::ImagePod;
use testenv::registry::Registry;

const CHART: &str = "charts/extension-server-operator";
const RELEASE: &str = "eso-release";
const EXAMPLE: &str = "examples/basic.yaml";
const SERVER: &str = "my-extension-server";
const TIMEOUT: Duration = Duration::from_secs(120);

pub async fn local() -> Result<()> {
    let image = crate::image::build()?;
    let version = &image.version;
    eprintln!("==> local OCI registry");
    let registry = Registry::start().await?;
    let host = registry.host();
    let repository = format!("{host}/extension-server-operator");
    run(Command::new("podman")
        .args(["push", "--quiet", "--tls-verify=false", &image.reference])
        .arg(format!("docker://{repository}:{version}")))?;
    let cluster = testenv::cluster::up(SHARED_INSTANCE).await?;
    let helm = |args: &[&str]| -> Result<String> {
        output(
            Command::new(&cluster.tools.helm)
                .env("KUBECONFIG", &cluster.kubeconfig)
                .args(args),
        )
    };
    let root = testenv::paths::workspace_root();
    let packaged = root.join("target/release-chart");
    helm(&[
        "package",
        CHART,
        "--destination",
        &packaged.display().to_string(),
    ])?;
    let archive = packaged.join(format!("extension-server-operator-{version}.tgz"));
    let charts = format!("oci://{host}/charts");
    helm(&[
        "push",
        &archive.display().to_string(),
        &charts,
        "--plain-http",
    ])?;
    eprintln!("==> pushed {repository}:{version} and {charts}/extension-server-operator {version}");

    let chart = format!("{charts}/extension-server-operator");
    helm(&[
        "install",
        RELEASE,
        &chart,
        "--version",
        version,
        "--plain-http",
        "--namespace",
        RELEASE,
        "--create-namespace",
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        "watchNamespace=default",
    ])?;
    let outcome = exercise(&cluster, &registry, &repository).await;
    helm(&["uninstall", RELEASE, "--namespace", RELEASE, "--wait"])?;
    let left = helm(&["list", "--all-namespaces", "--short"])?;
    ensure!(
        !left.lines().any(|l| l == RELEASE),
        "the release is still listed"
    );
    kubectl(&cluster, &["delete", "namespace", RELEASE, "--wait=true"])?;
    outcome?;
    leftovers(&cluster)?;
    eprintln!(
        "==> installed {chart} {version} from the local registry; the operator ran the image's own binary; uninstalled, only the CRD stays"
    );
    Ok(())
}

/// The installed operator runs from the pulled image and serves the basic example.
async fn exercise(cluster: &testenv::Cluster, registry: &Registry, repository: &str) -> Result<()> {
    let client = cluster.client().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), RELEASE);
    let deployment = deployments
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .next()
        .context("the chart made no Deployment")?;
    let name = deployment.metadata.name.unwrap_or_default();
    let mut operator = ImagePod::start(cluster, &registry.crane, RELEASE, &name).await?;
    ensure!(
        operator.image.starts_with(repository),
        "image {}",
        operator.image
    );
    let synced = wait_log(&mut operator, "caches synced").await;
    if let Err(error) = synced {
        bail!("{error:#}; the operator's log:\n{}", operator.logs());
    }
    eprintln!(
        "==> the operator pod runs {} as 65532:65532",
        operator.image
    );

    kubectl(cluster, &["apply", "-f", EXAMPLE])?;
    let pod = testenv::runtime::start(cluster, "default", SERVER).await?;
    let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), "default");
    let ready =
        tokio::time::timeout(TIMEOUT, await_condition(servers.clone(), SERVER, is_ready)).await;
    if ready.is_err() {
        bail!(
            "{SERVER} did not become Ready; the operator's log:\n{}",
            operator.logs()
        );
    }
    let listed = kubectl(
        cluster,
        &["get", "myresources.my.custom.api", "-n", "default"],
    )?;
    ensure!(listed.contains("alpha"), "through the aggregator: {listed}");
    eprintln!("==> {SERVER} is Ready and serves myresources.my.custom.api through the aggregator");
    let uid = servers.get(SERVER).await?.metadata.uid.unwrap_or_default();
    kubectl(cluster, &["delete", "-f", EXAMPLE, "--wait=false"])?;
    tokio::time::timeout(
        TIMEOUT,
        await_condition(servers, SERVER, conditions::is_deleted(&uid)),
    )
    .await
    .context("the example was not deleted")??;
    drop(pod);
    Ok(())
}

fn is_ready(server: Option<&ExtensionServer>) -> bool {
    server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until the operator's log shows `line` (a file has no watch API: it is re-read).
async fn wait_log(operator: &mut ImagePod, line: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticks.tick().await;
        if operator.logs().contains(line) {
            return Ok(());
        }
        if let Some(status) = operator.child.try_wait()? {
            bail!("the operator exited: {status}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the operator did not log {line:?} within 60 s");
        }
    }
}

/// Nothing of the release remains but the CRD.
fn leftovers(cluster: &testenv::Cluster) -> Result<()> {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let left = kubectl(
        cluster,
        &[
            "get",
            "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
            "-l",
            &selector,
            "-o",
            "name",
        ],
    )?;
    let namespaced = kubectl(
        cluster,
        &[
            "get",
            "roles,rolebindings",
            "-A",
            "-l",
            &selector,
            "-o",
            "name",
        ],
    )?;
    ensure!(
        left.trim().is_empty() && namespaced.trim().is_empty(),
        "left behind: {left}{namespaced}"
    );
    kubectl(
        cluster,
        &[
            "get",
            "crd",
            "extensionservers.aggregation.dev",
            "-o",
            "name",
        ],
    )?;
    Ok(())
}

fn kubectl(cluster: &testenv::Cluster, args: &[&str]) -> Result<String> {
    output(
        Command::new("kubectl")
            .env("KUBECONFIG", &cluster.kubeconfig)
            .args(args),
    )
}
