//! `cargo xtask demo`: the operator on the local control plane with the three examples, until
//! all three are Ready, then the metrics stack: Prometheus, prometheus-adapter with an HPA, KEDA
//! with a ScaledObject, and metrics-server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use extension_server_operator::context::{Context, Settings};
use extension_server_operator::crd::ExtensionServer;
use kube::api::Api;
use kube::runtime::wait::{await_condition, conditions};
use testenv::{Cluster, SHARED_INSTANCE};

use crate::demo_show::{kubectl, ready};

/// The grants the demo's operator runs under (the reserved metrics groups open only to them).
const GRANTS: &str = "examples/grants/examples.yaml";

const EXAMPLES: [(&str, &str); 3] = [
    ("my-extension-server", "examples/basic.yaml"),
    ("authenticated-extension-server", "examples/with-auth.yaml"),
    ("production-extension-server", "examples/production.yaml"),
];

fn registered(server: Option<&ExtensionServer>) -> bool {
    server.and_then(|s| s.status.as_ref()).is_some_and(|s| {
        ["DeploymentAvailable", "CertificateReady", "Registered"]
            .iter()
            .all(|t| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == *t && c.status == "True")
            })
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Available" && c.status != "Unknown")
    })
}

/// Applies `crds/` and waits until the CRD is established.
pub async fn install_crd(cluster: &Cluster) -> Result<()> {
    testenv::cargo::install_crd(cluster).await
}

pub async fn run(keep: bool) -> Result<()> {
    crate::cmd::build_stand_in_binaries()?;
    let cluster = testenv::cluster::up(SHARED_INSTANCE).await?;
    // kwok simulates the pods; the kubelet stand-in runs the real servers behind them.
    crate::cmd::ensure_kubelet(&cluster)?;
    let root = testenv::paths::workspace_root();
    std::env::set_current_dir(&root)?;
    eprintln!("==> installing the CRD");
    install_crd(&cluster).await?;

    eprintln!("==> starting the operator");
    let client = cluster.client().await?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let settings = Settings {
        grants_file: Some(root.join(GRANTS)),
        ..Settings::default()
    };
    let ctx = Arc::new(Context::connect(config, settings)?);
    // Stopped by the demo, not by Ctrl-C: after `--keep` it still has the examples to clean up.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let operator = tokio::spawn(extension_server_operator::controller::run_until(
        ctx, None, stopped,
    ));

    eprintln!("==> applying the examples");
    for (_, file) in EXAMPLES {
        kubectl(&cluster, &["apply", "-f", file], true)?;
    }
    let servers: Api<ExtensionServer> = Api::namespaced(client.clone(), "default");
    for (name, _) in EXAMPLES {
        tokio::time::timeout(
            Duration::from_secs(120),
            await_condition(servers.clone(), name, registered),
        )
        .await
        .with_context(|| format!("{name} did not register within 120 s"))??;
    }
    for (name, _) in EXAMPLES {
        tokio::time::timeout(
            Duration::from_secs(120),
            await_condition(servers.clone(), name, ready),
        )
        .await
        .with_context(|| format!("{name} did not become Ready within 120 s"))??;
    }

    kubectl(
        &cluster,
        &["get", "extensionservers", "-n", "default"],
        true,
    )?;
    let api_services = kubectl(&cluster, &["get", "apiservices"], false)?;
    println!("$ kubectl get apiservices | grep custom.api");
    for line in api_services.lines() {
        if line.starts_with("NAME") || line.contains("custom.api") {
            println!("{line}");
        }
    }
    println!();
    kubectl(
        &cluster,
        &["get", "myresources.my.custom.api", "-n", "default"],
        true,
    )?;
    kubectl(
        &cluster,
        &[
            "get",
            "pods",
            "-n",
            "default",
            "-l",
            "app.kubernetes.io/instance=production-extension-server",
            "-o",
            "wide",
        ],
        true,
    )?;
    kubectl(
        &cluster,
        &[
            "describe",
            "extensionserver",
            "my-extension-server",
            "-n",
            "default",
        ],
        true,
    )?;

    let metrics = crate::demo_metrics::run(&cluster, &client).await?;

    if keep {
        eprintln!(
            "==> the operator and the servers keep running (eval \"$(cargo xtask cluster env)\" in another shell); Ctrl-C cleans up"
        );
        tokio::signal::ctrl_c().await?;
    }
    eprintln!("==> removing the examples (the operator unregisters their APIServices first)");
    let mut uids = Vec::new();
    for (name, _) in EXAMPLES {
        uids.push(servers.get(name).await?.metadata.uid.unwrap_or_default());
    }
    for (_, file) in EXAMPLES {
        kubectl(&cluster, &["delete", "-f", file, "--wait=false"], false)?;
    }
    for ((name, _), uid) in EXAMPLES.iter().zip(uids) {
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(servers.clone(), name, conditions::is_deleted(&uid)),
        )
        .await
        .with_context(|| format!("{name} was not cleaned up within 60 s"))??;
    }
    metrics.remove(&cluster, &client).await?;
    let _ = stop.send(true);
    let _ = operator.await;
    println!("The cluster keeps running. Use it with: eval \"$(cargo xtask cluster env)\"");
    println!("Stop it with: cargo xtask cluster down");
    Ok(())
}
