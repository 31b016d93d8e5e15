//! The last step of `cargo xtask test`: the tests leave nothing of the operator's behind.
//! Objects that existed before the run (a demo's, say) are not the tests' and are ignored.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use testenv::Cluster;

/// Every kind the operator labels, cluster-scoped and namespaced.
const KINDS: &str = "apiservices,clusterrolebindings,rolebindings,deployments,services,secrets,serviceaccounts,poddisruptionbudgets";
const SELECTOR: &str = "app.kubernetes.io/managed-by=extension-server-operator";
/// How long namespaces deleted by the tests may take to go.
const NAMESPACES_GONE: &str = "180s";

/// What exists now: the operator's objects, the ExtensionServers and the namespaces.
pub struct Snapshot {
    objects: BTreeSet<String>,
    namespaces: BTreeSet<String>,
}

impl Snapshot {
    pub fn take(cluster: &Cluster) -> Result<Self> {
        let row = "{range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name} {.metadata.uid}{\"\\n\"}{end}";
        let mut objects = lines(
            cluster,
            &[
                "get",
                KINDS,
                "-A",
                "-l",
                SELECTOR,
                "-o",
                &format!("jsonpath={row}"),
            ],
        )?;
        // The CRD may not be installed yet: no ExtensionServers then.
        if let Ok(servers) = lines(
            cluster,
            &[
                "get",
                "extensionservers.aggregation.dev",
                "-A",
                "-o",
                &format!("jsonpath={row}"),
            ],
        ) {
            objects.extend(servers);
        }
        let namespaces = lines(cluster, &["get", "namespaces", "-o", "name"])?;
        Ok(Self {
            objects,
            namespaces,
        })
    }
}

/// Fails, listing them, if objects of the operator's (or ExtensionServers) exist that did not
/// exist in `before`, once the namespaces the tests created are gone.
pub fn assert_none_since(cluster: &Cluster, before: &Snapshot) -> Result<()> {
    eprintln!("==> checking that the tests left nothing behind");
    let now = Snapshot::take(cluster)?;
    for namespace in now.namespaces.difference(&before.namespaces) {
        let out = testenv::kubectl(
            cluster,
            &[
                "wait",
                "--for=delete",
                namespace,
                &format!("--timeout={NAMESPACES_GONE}"),
            ],
        );
        if !out.status.success() {
            bail!(
                "{namespace} was not deleted: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let after = Snapshot::take(cluster)?;
    let left: Vec<&String> = after.objects.difference(&before.objects).collect();
    if !left.is_empty() {
        let list = left
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        bail!("the tests left {} objects behind:\n{list}", left.len());
    }
    eprintln!("    nothing left behind");
    Ok(())
}

fn lines(cluster: &Cluster, args: &[&str]) -> Result<BTreeSet<String>> {
    let out = testenv::kubectl(cluster, args);
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}
