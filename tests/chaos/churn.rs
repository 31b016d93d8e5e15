//! Fault suite, part 6: churn. ExtensionServers are created and deleted cycle after cycle while
//! the operator binary is killed with SIGKILL at random moments and started again; some cycles
//! delete the whole namespace instead. Afterwards every namespace is gone and nothing the
//! operator made is left: no APIService, ClusterRoleBinding, kube-system RoleBinding or
//! Secret, and `kubectl api-resources` reports no error for the groups used.

use std::time::{Duration, Instant};

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use testenv::TestNamespace;

use crate::support;
use crate::support::chaos::{self, Rng, until};
use crate::support::fixture::Server;
use crate::support::operator::OperatorProcess;

const GROUPS: &str = "churn.chaos.example.com";
const NAMESPACE_LABEL: &str = "aggregation.dev/extension-server-namespace";
const WAIT: Duration = Duration::from_secs(90);

/// A test namespace with its own operator process (the binary watches one namespace).
struct Space {
    ns: TestNamespace,
    operator: OperatorProcess,
    starts: usize,
}

impl Space {
    async fn create() -> Self {
        let ns = TestNamespace::create("chaos-churn").await.unwrap();
        support::install_crd(&ns.client).await;
        let operator = support::operator::start(crate::OPERATOR, &ns, "operator-0", &[]);
        Self {
            ns,
            operator,
            starts: 1,
        }
    }

    /// Fails if the operator has exited on its own.
    fn assert_running(&mut self) {
        let exited = self.operator.child.try_wait().unwrap();
        let log = self.operator.log.display();
        assert!(
            exited.is_none(),
            "the operator exited ({exited:?}); see {log}"
        );
    }

    /// `kill -9` of the operator.
    async fn kill(&mut self) {
        self.assert_running();
        self.operator.signal("-KILL").unwrap();
        self.operator.child.wait().await.unwrap();
    }

    /// A new operator process, after [`Space::kill`].
    fn start(&mut self) {
        let name = format!("operator-{}", self.starts);
        self.operator = support::operator::start(crate::OPERATOR, &self.ns, &name, &[]);
        self.starts += 1;
    }
}

impl Drop for Space {
    /// After a failure, leaves nothing that would block the namespace's deletion or discovery.
    fn drop(&mut self) {
        let _ = self.operator.child.start_kill();
        if !std::thread::panicking() {
            return;
        }
        support::remove_debris(&self.ns);
    }
}

/// Waits until the server `name` has reached step `step` of its first pass: 0 nothing, 1 its
/// ServiceAccount, 2 its CA Secret, 3 its Deployment, 4 its APIService, 5 `Registered=True`.
async fn reach(ns: &TestNamespace, name: &str, step: u64) {
    let what = format!("{name} to reach step {step}");
    let created = match step {
        1 => wait_created(ns.api::<ServiceAccount>(), name).await,
        2 => wait_created(ns.api::<Secret>(), &format!("{name}-ca")).await,
        3 => wait_created(ns.api::<Deployment>(), name).await,
        4 => {
            let api = Api::<APIService>::all(ns.client.clone());
            wait_created(api, &format!("v1.{name}.{GROUPS}")).await
        }
        5 => {
            let registered = support::is_true("Registered");
            let wait = await_condition(ns.api::<ExtensionServer>(), name, registered);
            tokio::time::timeout(WAIT, wait).await.is_ok()
        }
        _ => true,
    };
    assert!(created, "timed out waiting for {what}");
}

async fn wait_created<K>(api: Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let wait = await_condition(api, name, conditions::is_created());
    tokio::time::timeout(WAIT, wait).await.is_ok()
}

/// Deletes the namespace (again, if it is already terminating) and waits until it is gone.
async fn delete_namespace(client: kube::Client, name: String) -> bool {
    let namespaces: Api<Namespace> = Api::all(client);
    let _ = namespaces.delete(&name, &DeleteParams::default()).await;
    let gone = |ns: Option<&Namespace>| ns.is_none();
    let wait = await_condition(namespaces, &name, gone);
    matches!(tokio::time::timeout(WAIT, wait).await, Ok(Ok(_)))
}

/// How many of `api`'s objects match `selector`.
async fn count<K>(api: Api<K>, selector: &str) -> usize
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let listed = api.list(&ListParams::default().labels(selector)).await;
    listed.unwrap().items.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_operator_kills_leaves_nothing_behind() {
    let _cores = crate::sharing_the_cores().await;
    let started = Instant::now();
    let seed = chaos::seed("churn");
    let mut rng = Rng::new(seed);
    let cycles = chaos::sized(10, 100);
    let mut space = Space::create().await;
    let mut names = vec![space.ns.name.clone()];
    let mut retiring = Vec::new();
    let mut kills = 0;
    // At least one cycle deletes a whole namespace.
    let namespace_cycle = rng.below(cycles as u64) as usize;

    for cycle in 0..cycles {
        let servers: Vec<String> = (0..1 + rng.below(3))
            .map(|j| format!("c{cycle}-{j}"))
            .collect();
        for name in &servers {
            space
                .ns
                .api::<ExtensionServer>()
                .create(
                    &PostParams::default(),
                    &Server::in_group(name, &format!("{name}.{GROUPS}"))
                        .port(443)
                        .build(),
                )
                .await
                .unwrap();
        }
        let last = servers.last().unwrap();
        reach(&space.ns, last, rng.below(6)).await;
        // A short random delay is the source of each kill's timing, not a wait for state.
        let jitter = |rng: &mut Rng| Duration::from_millis(rng.below(400));
        let kill = rng.chance(0.4);
        // Some killed operators come back only after the deletes were sent.
        let restart_late = kill && rng.chance(0.5);
        if kill {
            tokio::time::sleep(jitter(&mut rng)).await;
            space.kill().await;
            kills += 1;
            if !restart_late {
                space.start();
            }
        }
        let whole_namespace = cycle == namespace_cycle || rng.chance(0.1);
        if whole_namespace {
            // The namespace goes with its servers; their finalizers must still clear.
            let namespaces: Api<Namespace> = Api::all(space.ns.client.clone());
            namespaces
                .delete(&space.ns.name, &DeleteParams::default())
                .await
                .unwrap();
        } else {
            let api = space.ns.api::<ExtensionServer>();
            for name in &servers {
                api.delete(name, &DeleteParams::default()).await.unwrap();
            }
        }
        if restart_late {
            space.start();
        } else if rng.chance(0.3) {
            tokio::time::sleep(jitter(&mut rng)).await;
            space.kill().await;
            space.start();
            kills += 1;
        }
        if whole_namespace {
            let old = std::mem::replace(&mut space, Space::create().await);
            names.push(space.ns.name.clone());
            retiring.push(tokio::spawn(async move {
                let deleted = delete_namespace(old.ns.client.clone(), old.ns.name.clone()).await;
                (old.ns.name.clone(), deleted)
            }));
        }
    }

    // One operator runs per namespace: every server goes, then every namespace.
    let servers = space.ns.api::<ExtensionServer>();
    let gone = until(servers, "", WAIT, |list| list.is_empty()).await;
    assert!(gone.is_some(), "ExtensionServers were not all deleted");
    let managed = "app.kubernetes.io/managed-by=extension-server-operator";
    let secrets = space.ns.api::<Secret>();
    // The garbage collector deletes them after their owner.
    until(secrets.clone(), managed, WAIT, |list| list.is_empty()).await;
    let left_secrets = count(secrets, managed).await;
    space.assert_running();
    let mut namespaces_deleted =
        usize::from(delete_namespace(space.ns.client.clone(), space.ns.name.clone()).await);
    let mut stuck = Vec::new();
    for task in retiring {
        let (name, deleted) = task.await.unwrap();
        if deleted {
            namespaces_deleted += 1;
        } else {
            stuck.push(name);
        }
    }

    let client = space.ns.client.clone();
    let ours = format!("{NAMESPACE_LABEL} in ({})", names.join(","));
    let api_services = Api::<APIService>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|a| {
            a.metadata
                .name
                .as_ref()
                .is_some_and(|n| n.ends_with(GROUPS))
        })
        .count();
    let bindings = count(Api::<ClusterRoleBinding>::all(client.clone()), &ours).await;
    let readers = count(Api::<RoleBinding>::namespaced(client, "kube-system"), &ours).await;
    let orphans = api_services + bindings + readers + left_secrets;
    let discovery = space.ns.kubectl(&["api-resources"]);
    let stderr = String::from_utf8_lossy(&discovery.stderr).to_string();
    chaos::record(
        "churn",
        json!({
            "churn_cycles": cycles,
            "operator_kills": kills,
            "orphans": orphans,
            "namespaces_deleted": namespaces_deleted,
            "seed": seed,
            "seconds": started.elapsed().as_secs_f64(),
        }),
    );
    eprintln!(
        "churn: {cycles} cycles, {kills} kills, {namespaces_deleted} of {} namespaces deleted, \
         {orphans} orphans in {:.1}s",
        names.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(stuck.is_empty(), "namespaces not deleted: {stuck:?}");
    assert_eq!(
        (api_services, bindings, readers, left_secrets),
        (0, 0, 0, 0),
        "orphans: (APIServices, ClusterRoleBindings, kube-system RoleBindings, Secrets)"
    );
    assert!(!stderr.contains(GROUPS), "discovery errors: {stderr}");
    // Other tests on the shared cluster may have an unavailable APIService of their own.
    if !discovery.status.success() || !stderr.is_empty() {
        eprintln!("kubectl api-resources (other tests' groups): {stderr}");
    }
}
