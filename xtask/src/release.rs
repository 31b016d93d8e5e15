//! `cargo xtask release --local`: the release path on this machine. It builds the image
//! (`cargo xtask image`), starts a local OCI registry from its pinned module, pushes the image
//! and the packaged chart to it, installs the chart from `oci://`, runs the operator pod from the
//! pulled image's own binary, brings three servers (the basic example among them) to Ready
//! through the aggregator, upgrades to a next release under traffic ([`crate::upgrade`]), and
//! uninstalls, leaving nothing but the CRD.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};

use crate::cmd::{output, run};
use crate::upgrade::{Served, Target};
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use testenv::SHARED_INSTANCE;
use testenv::image_pod::ImagePod;
use testenv::registry::Registry;

const CHART: &str = "charts/extension-server-operator";
pub const RELEASE: &str = "eso-release";
const EXAMPLE: &str = "examples/basic.yaml";
const SERVER: &str = "my-extension-server";
const TIMEOUT: Duration = Duration::from_secs(120);
/// The label release B's chart adds to every child (`childLabels`).
const NEXT_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "aggregated-apis");

/// The cluster's helm.
pub struct Helm {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Helm {
    pub fn run(&self, args: &[&str]) -> Result<String> {
        output(
            Command::new(&self.binary)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args),
        )
    }
}

pub async fn local() -> Result<()> {
    let image = crate::image::build()?;
    let version = image.version.clone();
    let next = next_version(&version)?;
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
    let helm = Helm {
        binary: cluster.tools.helm.clone(),
        kubeconfig: cluster.kubeconfig.clone(),
    };
    let root = testenv::paths::workspace_root();
    let packaged = root.join("target/release-chart");
    let _ = std::fs::remove_dir_all(&packaged);
    let next_chart = next_chart(&packaged, &next)?;
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
        chart: &chart,
        version: &next,
        values: &values,
        label: NEXT_LABEL,
    };
    let outcome = exercise(&cluster, &helm, &registry, &repository, &target).await;
    helm.run(&["uninstall", RELEASE, "--namespace", RELEASE, "--wait"])?;
    let left = helm.run(&["list", "--all-namespaces", "--short"])?;
    ensure!(
        !left.lines().any(|l| l == RELEASE),
        "the release is still listed"
    );
    kubectl(&cluster, &["delete", "namespace", RELEASE, "--wait=true"])?;
    outcome?;
    leftovers(&cluster)?;
    eprintln!(
        "==> installed {chart} {version} from the local registry, the operator ran the image's own binary, upgraded to {next} under traffic; uninstalled, only the CRD stays"
    );
    Ok(())
}

/// The next release's version: the next patch, as a pre-release (`0.1.0` gives
/// `0.1.1-next.1`).
fn next_version(version: &str) -> Result<String> {
    let mut parts = version.splitn(3, '.');
    let (Some(major), Some(minor), Some(patch)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("{version} is not MAJOR.MINOR.PATCH");
    };
    let patch: u64 = patch.parse().context("the patch version")?;
    Ok(format!("{major}.{minor}.{}-next.1", patch + 1))
}

/// A copy of the chart as the next release: its version and appVersion, and `childLabels`
/// adding [`NEXT_LABEL`] to every child.
fn next_chart(dir: &Path, version: &str) -> Result<PathBuf> {
    let chart = dir.join("next").join("extension-server-operator");
    std::fs::create_dir_all(dir.join("next"))?;
    run(Command::new("cp").args(["-r", CHART]).arg(&chart))?;
    let manifest = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&manifest)?;
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("version:") {
                format!("version: {version}")
            } else if line.starts_with("appVersion:") {
                format!("appVersion: \"{version}\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&manifest, text.join("\n") + "\n")?;
    let values = chart.join("values.yaml");
    let text = std::fs::read_to_string(&values)?;
    let (key, value) = NEXT_LABEL;
    ensure!(
        text.contains("\nchildLabels: {}\n"),
        "the chart's values.yaml has no `childLabels: {{}}`"
    );
    std::fs::write(
        &values,
        text.replace(
            "\nchildLabels: {}\n",
            &format!("\nchildLabels:\n  {key}: {value}\n"),
        ),
    )?;
    Ok(chart)
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
    let synced = wait_log(&mut operator, "caches synced").await;
    if let Err(error) = synced {
        bail!("{error:#}; the operator's log:\n{}", operator.logs());
    }
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
    kubectl(cluster, &["apply", "-f", EXAMPLE])?;
    let api: Api<ExtensionServer> = Api::namespaced(client.clone(), "default");
    for server in &servers[1..] {
        api.create(&PostParams::default(), &sample_server(server)?)
            .await?;
    }
    let mut pods = Vec::new();
    for server in &servers {
        pods.push(testenv::runtime::start(cluster, "default", &server.name).await?);
    }
    for server in &servers {
        let ready = tokio::time::timeout(
            TIMEOUT,
            await_condition(api.clone(), &server.name, is_ready),
        )
        .await;
        if ready.is_err() {
            bail!(
                "{} did not become Ready; the operator's log:\n{}",
                server.name,
                operator.logs()
            );
        }
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

    let operator = crate::upgrade::under_traffic(
        cluster,
        helm,
        &registry.crane,
        (RELEASE, &name),
        operator,
        &servers,
        target,
    )
    .await?;

    for server in &servers {
        let uid = api
            .get(&server.name)
            .await?
            .metadata
            .uid
            .unwrap_or_default();
        api.delete(&server.name, &Default::default()).await?;
        let deleted = tokio::time::timeout(
            TIMEOUT,
            await_condition(api.clone(), &server.name, conditions::is_deleted(&uid)),
        )
        .await;
        if deleted.is_err() {
            bail!(
                "{} was not deleted; the operator's log:\n{}",
                server.name,
                operator.logs()
            );
        }
    }
    drop(pods);
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

fn is_ready(server: Option<&ExtensionServer>) -> bool {
    server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until the operator's log shows `line` (a file has no watch API: it is re-read).
pub async fn wait_log(operator: &mut ImagePod, line: &str) -> Result<()> {
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
