//! `cargo xtask release --local`: the release path on this machine. It builds the image
//! (`cargo xtask image`), starts a local OCI registry from its pinned module, pushes the image
//! and the packaged chart to it, installs the chart from `oci://`, runs the operator pod from the
//! pulled image's own binary, brings three servers (the basic example among them) to Ready
//! through the aggregator, upgrades to a next release under traffic ([`crate::upgrade`]), and
//! uninstalls, leaving nothing but the CRD.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::cmd::{output, run};
use crate::demo_show::ready;
use crate::helm::Helm;
use crate::upgrade::{Served, Target};
use crate::wait::within;
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use testenv::SHARED_INSTANCE;
use testenv::image_pod::ImagePod;
use testenv::registry::Registry;

const CHART: &str = "charts/extension-server-operator";
const RELEASE: &str = "eso-release";
const EXAMPLE: &str = "examples/basic.yaml";
const SERVER: &str = "my-extension-server";

pub async fn local() -> Result<()> {
    let image = crate::image::build()?;
    let version = image.version.clone();
    let next = crate::next_release::version(&version)?;
    let next_image = crate::image::as_version(&image, &next)?;
    eprintln!("==> local OCI registry");
    let registry = Registry::start().await?;
    let host = registry.host();
    let repository = format!("{host}/extension-server-operator");
    for (reference, tag) in [(&image.reference, &version), (&next_image, &next)] {
        run(Command::new("podman")
            .args(["push", "--quiet", "--tls-verify=false", reference])
            .arg(format!("docker://{repository}:{tag}")))?;
    }
    let cluster = testenv::cluster::up(SHARED_INSTANCE).await?;
    // The sample servers in `default` run under `testenv::runtime` here: the cluster's kubelet
    // stand-in, which would run them too, pauses until the release path is done.
    let paused = testenv::kubelet::daemon::stop(&cluster);
    if paused {
        eprintln!("==> the kubelet stand-in pauses while the release path runs");
    }
    let result = install_and_upgrade(&cluster, &registry, &repository, &version, &next).await;
    if paused {
        crate::cmd::ensure_kubelet(&cluster)?;
    }
    result
}

/// Installs the chart from the registry, exercises the operator, upgrades and uninstalls.
async fn install_and_upgrade(
    cluster: &testenv::Cluster,
    registry: &Registry,
    repository: &str,
    version: &str,
    next: &str,
) -> Result<()> {
    let host = registry.host();
    let helm = Helm::of(cluster);
    let root = testenv::paths::workspace_root();
    let packaged = root.join("target/release-chart");
    let _ = std::fs::remove_dir_all(&packaged);
    let next_chart = crate::next_release::chart(Path::new(CHART), &packaged, next)?;
    let charts = format!("oci://{host}/charts");
    for (chart, tag) in [(Path::new(CHART), &version), (next_chart.as_path(), &next)] {
        helm.run(&[
            "package",
            &chart.display().to_string(),
            "--destination",
            &packaged.display().to_string(),
        ])?;
        let archive = packaged.join(format!("extension-server-operator-{tag}.tgz"));
        helm.run(&[
            "push",
            &archive.display().to_string(),
            &charts,
            "--plain-http",
        ])?;
    }
    eprintln!(
        "==> pushed {repository}:{{{version},{next}}} and {charts}/extension-server-operator {{{version},{next}}}"
    );

    let chart = format!("{charts}/extension-server-operator");
    let values = [
        format!("image.repository={repository}"),
        "watchNamespace=default".to_string(),
    ];
    let mut install = vec![
        "install",
        RELEASE,
        &chart,
        "--version",
        &version,
        "--plain-http",
        "--namespace",
        RELEASE,
        "--create-namespace",
    ];
    for value in &values {
        install.extend(["--set", value.as_str()]);
    }
    helm.run(&install)?;
    let target = Target {
        release: RELEASE,
        chart: &chart,
        version: next,
        values: &values,
        label: crate::next_release::LABEL,
    };
    let outcome = exercise(cluster, &helm, registry, repository, &target).await;
    helm.run(&["uninstall", RELEASE, "--namespace", RELEASE, "--wait"])?;
    let left = helm.run(&["list", "--all-namespaces", "--short"])?;
    ensure!(
        !left.lines().any(|l| l == RELEASE),
        "the release is still listed"
    );
    kubectl(cluster, &["delete", "namespace", RELEASE, "--wait=true"])?;
    outcome?;
    leftovers(cluster)?;
    eprintln!(
        "==> installed {chart} {version} from the local registry, the operator ran the image's own binary, upgraded to {next} under traffic; uninstalled, only the CRD stays"
    );
    Ok(())
}

/// The installed operator runs from the pulled image, serves three servers, and is upgraded
/// under traffic.
async fn exercise(
    cluster: &testenv::Cluster,
    helm: &Helm,
    registry: &Registry,
    repository: &str,
    target: &Target<'_>,
) -> Result<()> {
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
    operator.wait_log("caches synced").await?;
    eprintln!(
        "==> the operator pod runs {} as 65532:65532",
        operator.image
    );

    let servers = [
        Served {
            name: SERVER.into(),
            group: "my.custom.api".into(),
        },
        Served {
            name: "upgrade-b".into(),
            group: "b.upgrade.example.com".into(),
        },
        Served {
            name: "upgrade-c".into(),
            group: "c.upgrade.example.com".into(),
        },
    ];
    let api: Api<ExtensionServer> = Api::namespaced(client.clone(), "default");
    let mut pods = Vec::new();
    let stage = Stage {
        cluster,
        helm,
        registry,
        deployment: &name,
    };
    let outcome = serve_and_upgrade(&stage, &api, &mut operator, &servers, &mut pods, target).await;
    let removed = remove(&api, &servers, &operator).await;
    drop(pods);
    outcome.and(removed)
}

/// Where the release runs.
struct Stage<'a> {
    cluster: &'a testenv::Cluster,
    helm: &'a Helm,
    registry: &'a Registry,
    deployment: &'a str,
}

/// Creates the servers, waits until they are Ready through the aggregator, and upgrades under
/// traffic.
async fn serve_and_upgrade(
    stage: &Stage<'_>,
    api: &Api<ExtensionServer>,
    operator: &mut ImagePod,
    servers: &[Served],
    pods: &mut Vec<testenv::runtime::PodRuntime>,
    target: &Target<'_>,
) -> Result<()> {
    let cluster = stage.cluster;
    kubectl(cluster, &["apply", "-f", EXAMPLE])?;
    for server in &servers[1..] {
        api.create(&PostParams::default(), &sample_server(server)?)
            .await?;
    }
    for server in servers {
        pods.push(testenv::runtime::start(cluster, "default", &server.name).await?);
    }
    for server in servers {
        let ready = within(
            &format!("{} to become Ready", server.name),
            await_condition(api.clone(), &server.name, ready),
        )
        .await;
        operator.with_logs(ready)?;
    }
    let listed = kubectl(
        cluster,
        &["get", "myresources.my.custom.api", "-n", "default"],
    )?;
    ensure!(listed.contains("alpha"), "through the aggregator: {listed}");
    eprintln!(
        "==> {} servers are Ready and serve through the aggregator",
        servers.len()
    );
    crate::upgrade::under_traffic(
        cluster,
        stage.helm,
        &stage.registry.crane,
        (RELEASE, stage.deployment),
        operator,
        servers,
        target,
    )
    .await
}

/// Deletes the servers (those that exist) and waits until the operator has let them go.
async fn remove(api: &Api<ExtensionServer>, servers: &[Served], operator: &ImagePod) -> Result<()> {
    for server in servers {
        let Some(live) = api.get_opt(&server.name).await? else {
            continue;
        };
        let uid = live.metadata.uid.unwrap_or_default();
        api.delete(&server.name, &Default::default()).await?;
        let deleted = within(
            &format!("{} to be deleted", server.name),
            await_condition(api.clone(), &server.name, conditions::is_deleted(&uid)),
        )
        .await;
        operator.with_logs(deleted)?;
    }
    Ok(())
}

/// An ExtensionServer running the sample server for `server.group`.
fn sample_server(server: &Served) -> Result<ExtensionServer> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "aggregation.dev/v1alpha1",
        "kind": "ExtensionServer",
        "metadata": {"name": server.name, "namespace": "default"},
        "spec": {
            "group": server.group,
            "versions": [{"name": "v1"}],
            "image": "sample-extension-server:latest",
            "args": [format!("--group={}", server.group)],
        },
    }))?)
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
