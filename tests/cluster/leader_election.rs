//! Two operator processes with `--leader-elect`: exactly one writes; after `kill -9` of the
//! leader the other takes over within the lease duration; SIGTERM releases the Lease.

use std::time::{Duration, Instant};

use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::leader;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use testenv::TestNamespace;

use crate::support;
use crate::support::fixture::Server;
use crate::support::operator::OperatorProcess;

const LEASE: &str = "extension-server-operator";
const LEASE_DURATION: Duration = Duration::from_secs(6);
const RETRY_PERIOD: Duration = Duration::from_secs(1);

fn candidate(ns: &TestNamespace, identity: &str) -> OperatorProcess {
    support::operator::start(
        crate::OPERATOR,
        ns,
        identity,
        &[
            "--leader-elect",
            &format!("--leader-elect-namespace={}", ns.name),
            &format!("--leader-elect-identity={identity}"),
            "--leader-elect-lease-duration=6s",
            "--leader-elect-renew-deadline=4s",
            "--leader-elect-retry-period=1s",
        ],
    )
}

fn holder(lease: Option<&Lease>) -> Option<String> {
    lease.and_then(leader::holder).map(str::to_string)
}

async fn wait_holder(leases: &Api<Lease>, wanted: impl Fn(Option<String>) -> bool) -> Lease {
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(leases.clone(), LEASE, move |l: Option<&Lease>| {
            l.is_some() && wanted(holder(l))
        }),
    )
    .await
    .expect("timed out waiting on the Lease holder")
    .unwrap()
    .unwrap()
}

async fn create_server(ns: &TestNamespace, name: &str) {
    let server = Server::new(name)
        .namespace(&ns.name)
        .group(&format!("{name}.{}.custom.api", ns.name))
        .build();
    ns.api::<ExtensionServer>()
        .create(&PostParams::default(), &server)
        .await
        .unwrap();
}

async fn wait_registered(ns: &TestNamespace, name: &str) {
    support::wait_for(
        ns.api::<ExtensionServer>(),
        name,
        support::is_true("Registered"),
    )
    .await;
}

#[tokio::test]
async fn one_leader_writes_and_a_standby_takes_over() {
    let ns = TestNamespace::create("es-leader").await.unwrap();
    support::install_crd(&ns.client).await;
    let leases: Api<Lease> = ns.api();
    let mut processes = vec![candidate(&ns, "first"), candidate(&ns, "second")];
    for process in &processes {
        process.wait_listening().await.unwrap();
    }

    let lease = wait_holder(&leases, |h| h.is_some()).await;
    let leader_name = holder(Some(&lease)).unwrap();
    let leader_index = processes
        .iter()
        .position(|p| p.name == leader_name)
        .unwrap();
    let mut leader = processes.remove(leader_index);
    let mut standby = processes.remove(0);

    create_server(&ns, "alpha").await;
    wait_registered(&ns, "alpha").await;
    assert!(
        leader.writes().await.unwrap() > 0.0,
        "the leader wrote nothing"
    );
    assert_eq!(standby.writes().await.unwrap(), 0.0, "the standby wrote");
    assert_eq!(
        leader
            .metric("extension_server_operator_leader")
            .await
            .unwrap(),
        1.0
    );
    assert_eq!(
        standby
            .metric("extension_server_operator_leader")
            .await
            .unwrap(),
        0.0
    );
    assert_eq!(
        support::operator::http_get(standby.port, "/readyz")
            .await
            .unwrap()
            .0,
        200
    );

    // kill -9: no release, so the standby must wait for the lease to expire.
    leader.child.start_kill().unwrap();
    let killed = Instant::now();
    leader.child.wait().await.unwrap();
    let standby_name = standby.name.clone();
    let taken = wait_holder(&leases, move |h| h.as_deref() == Some(&standby_name)).await;
    let failover = killed.elapsed();
    println!(
        "failover after kill -9: {:.2}s (lease duration {LEASE_DURATION:?}, retry period {RETRY_PERIOD:?})",
        failover.as_secs_f64()
    );
    assert!(
        failover <= LEASE_DURATION + 2 * RETRY_PERIOD,
        "takeover took {failover:?}"
    );
    assert_eq!(
        taken.spec.as_ref().and_then(|s| s.lease_transitions),
        Some(1)
    );

    // The new leader reconciles new work and deletes old work.
    create_server(&ns, "beta").await;
    wait_registered(&ns, "beta").await;
    assert!(
        standby.writes().await.unwrap() > 0.0,
        "the new leader wrote nothing"
    );
    for name in ["alpha", "beta"] {
        let servers = ns.api::<ExtensionServer>();
        let uid = servers.get(name).await.unwrap().metadata.uid.unwrap();
        servers
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(servers, name, conditions::is_deleted(&uid)),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} was not deleted"))
        .unwrap();
    }

    // SIGTERM: the leader releases the Lease and exits cleanly.
    standby.signal("-TERM").unwrap();
    let exited = tokio::time::timeout(Duration::from_secs(30), standby.child.wait())
        .await
        .expect("the leader did not exit after SIGTERM")
        .unwrap();
    assert!(exited.success(), "exit status {exited}");
    let released = leases.get(LEASE).await.unwrap();
    assert_eq!(holder(Some(&released)), None, "the Lease was not released");
    assert!(standby.logs().contains("released the lease"));
}

#[tokio::test]
async fn sigterm_right_after_winning_exits_promptly_and_releases() {
    let ns = TestNamespace::create("es-leader-stop").await.unwrap();
    support::install_crd(&ns.client).await;
    let leases: Api<Lease> = ns.api();
    let mut only = candidate(&ns, "only");
    wait_holder(&leases, |h| h.as_deref() == Some("only")).await;
    // Usually before the controller's caches have synced: nothing is in flight, so no grace.
    only.signal("-TERM").unwrap();
    let exited = tokio::time::timeout(
        extension_server_operator::shutdown::GRACE,
        only.child.wait(),
    )
    .await
    .expect("the operator hung after SIGTERM")
    .unwrap();
    assert!(exited.success(), "exit status {exited}");
    let released = leases.get(LEASE).await.unwrap();
    assert_eq!(holder(Some(&released)), None, "the Lease was not released");
}
