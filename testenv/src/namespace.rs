//! Test support: one shared cluster per machine, one fresh namespace per test.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};

use crate::cluster::{self, Cluster};

/// The cluster instance that `cargo xtask test`, `demo` and integration tests share.
pub const SHARED_INSTANCE: &str = "dev";

/// Ensures the shared cluster is up (concurrent test binaries serialise on its lock) and
/// returns it.
pub async fn shared_cluster() -> Result<Cluster> {
    cluster::up(SHARED_INSTANCE).await
}

/// A namespace that exists for one test. On drop it is deleted; if the test is panicking,
/// its objects and Events are printed first.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
    pub cluster: Cluster,
    dumped: std::cell::Cell<bool>,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` on the shared cluster and waits until its `default`
    /// ServiceAccount exists.
    pub async fn create(prefix: &str) -> Result<Self> {
        Self::create_on(shared_cluster().await?, prefix).await
    }

    /// Like [`TestNamespace::create`], on `cluster` (a dedicated instance, for instance).
    pub async fn create_on(cluster: Cluster, prefix: &str) -> Result<Self> {
        let client = cluster.client().await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut namespace = Namespace::default();
        namespace.metadata.generate_name = Some(format!("{prefix}-"));
        namespace.metadata.labels = Some(
            [("aggregation.dev/test".to_string(), prefix.to_string())]
                .into_iter()
                .collect(),
        );
        let created = namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .context("creating the test namespace")?;
        let name = created.name_any();
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(accounts, "default", conditions::is_created()),
        )
        .await
        .context("timed out waiting for the default ServiceAccount")??;
        Ok(Self {
            name,
            client,
            cluster,
            dumped: std::cell::Cell::new(false),
        })
    }

    /// A namespaced API for this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Runs the cached kubectl against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        kubectl(&self.cluster, args)
    }

    /// Prints the namespace's objects and Events (once).
    pub fn dump(&self) {
        if self.dumped.replace(true) {
            return;
        }
        eprintln!("===== namespace {} at failure =====", self.name);
        for args in [
            vec![
                "get",
                "all,extensionservers,secrets,serviceaccounts,rolebindings,poddisruptionbudgets",
                "-o",
                "wide",
                "-n",
                &self.name,
            ],
            vec!["get", "apiservices"],
            vec![
                "get",
                "events",
                "--sort-by=.lastTimestamp",
                "-n",
                &self.name,
            ],
            vec!["describe", "extensionservers", "-n", &self.name],
        ] {
            let out = self.kubectl(&args);
            eprintln!("$ kubectl {}", args.join(" "));
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        self.dump_container_logs();
    }

    /// The last lines of each container the kubelet stand-in ran in this namespace.
    fn dump_container_logs(&self) {
        const TAIL: usize = 40;
        let pods = self.cluster.dir.join("kubelet").join(&self.name);
        let Ok(pods) = std::fs::read_dir(pods) else {
            return;
        };
        for pod in pods.flatten() {
            for container in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let log = container.path().join("container.log");
                let Ok(text) = std::fs::read_to_string(&log) else {
                    continue;
                };
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("===== {} (last {TAIL} lines) =====", log.display());
                for line in &lines[lines.len().saturating_sub(TAIL)..] {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// Deletes the namespace and waits until it is gone.
    pub async fn delete_and_wait(&self, timeout: Duration) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let uid = namespaces
            .get(&self.name)
            .await?
            .metadata
            .uid
            .unwrap_or_default();
        namespaces
            .delete(&self.name, &DeleteParams::default())
            .await?;
        tokio::time::timeout(
            timeout,
            await_condition(namespaces, &self.name, conditions::is_deleted(&uid)),
        )
        .await
        .context("namespace deletion did not complete")??;
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        let _ = kubectl(
            &self.cluster,
            &["delete", "namespace", &self.name, "--wait=false"],
        );
    }
}

/// Runs the cached kubectl with the cluster's admin kubeconfig.
pub fn kubectl(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    Command::new(&cluster.tools.kubectl)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| std::process::Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(1),
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
        })
}
