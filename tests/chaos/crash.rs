//! Fault suite, part 1: crash at every write. The operator runs in-process behind the fault
//! layer, which lets write k reach the API server and then lets nothing else out (not even
//! write k's response); the test then drops the operator's runtime task, as if the process had
//! died, and starts a fresh operator. For creation, deletion, a spec change, a certificate
//! renewal and a CA rotation step, the end state must equal an uninterrupted run's, and the
//! CA is never re-minted. The sample server runs behind the aggregator throughout, so
//! "converged" means `Ready=True` through the real aggregator.

use std::time::{Duration, Instant};

use extension_server_operator::context::Settings;
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::names::CERT_HASH_ANNOTATION;
use extension_server_operator::tls::certs;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use testenv::runtime;

use crate::support::Harness;
use crate::support::chaos::{self, Rng};
use crate::support::faults::{Faults, Plan};
use crate::support::fixture::Server;
use crate::support::state::{self, State};

const NAME: &str = "crashy";
const CRASH_WAIT: Duration = Duration::from_secs(60);

/// One scenario: how to reach its starting point, and the change whose writes get crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Create,
    SpecChange,
    Renewal,
    CaRotation,
    Delete,
}

impl Scenario {
    fn tls(self) -> &'static str {
        match self {
            // Renewal at 2/3 of 30 s; the CA lives long.
            Self::Renewal => "{certificateDuration: 30s}",
            // The CA reaches 2/3 of its life after 40 s and rotates.
            Self::CaRotation => "{certificateDuration: 20s, caDuration: 60s}",
            _ => "{mode: Managed}",
        }
    }
}

struct Suite {
    h: Harness,
    /// The serving certificate when the scenario started (renewal replaces it).
    serving_before: Option<Vec<u8>>,
    /// The current CA at the moment a rotation completed (a later rotation may follow).
    ca_at_rotation_end: Option<Vec<u8>>,
    _pod: runtime::PodRuntime,
    points: usize,
    converged: usize,
    ca_reminted: usize,
    per_scenario: serde_json::Map<String, serde_json::Value>,
}

impl Suite {
    /// Starts (or restarts) the operator with a fresh fault layer and returns the layer.
    async fn operator(&mut self) -> Faults {
        self.h.stop_operator().await;
        let faults = Faults::new(Plan::default());
        self.h.set_client(Some(faults.make_client()));
        self.h.start_operator().await;
        faults
    }

    /// Waits until the server is Ready at its generation, with no rollout in progress and the
    /// pods on the Secret's current certificate.
    async fn ready(&self) -> ExtensionServer {
        // The status is current only once the operator has applied the Deployment, and the
        // rollout it starts is only seen after that: wait for the status, the rollout, and the
        // status the rollout leaves.
        self.status_current().await;
        self.rolled_out().await;
        self.status_current().await
    }

    /// Waits until the status reflects the current generation with every replica ready.
    async fn status_current(&self) -> ExtensionServer {
        self.h
            .wait(NAME, |s: Option<&ExtensionServer>| {
                s.is_some_and(|s| {
                    let replicas = s.spec.replicas;
                    s.status.as_ref().is_some_and(|st| {
                        st.observed_generation == s.metadata.generation
                            && st.replicas == replicas
                            && st.ready_replicas == replicas
                            && st.conditions.iter().any(|c| {
                                c.type_ == "Ready"
                                    && c.status == "True"
                                    && c.observed_generation == s.metadata.generation
                            })
                    })
                })
            })
            .await
    }

    /// The CA Secret's `key` (`ca.crt`, or `next-ca.crt` during a rotation).
    async fn ca_key(&self, key: &str) -> Option<Vec<u8>> {
        let secrets: Api<Secret> = self.h.ns.api();
        let secret = secrets.get_opt(&format!("{NAME}-ca")).await.unwrap()?;
        Some(secret.data?.get(key)?.0.clone())
    }

    /// Waits until the Deployment's pods carry the Secret's current certificate, all updated.
    async fn rolled_out(&self) {
        let Some(serving) = self.serving().await else {
            return;
        };
        let hash = certs::sha256_hex(&serving)[..16].to_string();
        let deployments: Api<Deployment> = self.h.ns.api();
        let rolled = move |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                let annotations = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref());
                let status = d.status.clone().unwrap_or_default();
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                annotations.and_then(|a| a.get(CERT_HASH_ANNOTATION)) == Some(&hash)
                    && status.observed_generation == d.metadata.generation
                    && status.updated_replicas.unwrap_or(0) == replicas
                    && status.replicas.unwrap_or(0) == replicas
            })
        };
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(deployments, NAME, rolled),
        )
        .await
        .expect("the pods did not roll onto the current certificate in 90 s")
        .unwrap();
    }

    async fn serving(&self) -> Option<Vec<u8>> {
        let secrets: Api<Secret> = self.h.ns.api();
        let secret = secrets.get_opt(&format!("{NAME}-tls")).await.unwrap()?;
        Some(secret.data?.get("tls.crt")?.0.clone())
    }

    async fn ca_crt(&self) -> Option<Vec<u8>> {
        self.ca_key("ca.crt").await
    }

    async fn gone(&self) {
        let servers = self.h.servers();
        let uid = servers
            .get_opt(NAME)
            .await
            .unwrap()
            .and_then(|s| s.metadata.uid);
        let Some(uid) = uid else { return };
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(servers, NAME, conditions::is_deleted(&uid)),
        )
        .await
        .expect("the ExtensionServer was not deleted in 90 s")
        .unwrap();
    }

    async fn delete(&self) {
        let _ = self
            .h
            .servers()
            .delete(NAME, &DeleteParams::default())
            .await;
        self.gone().await;
        self.collected().await;
    }

    /// Waits until garbage collection has removed the owned children: the next scenario must
    /// not find the old CA (it would count as re-minted when it disappears), and a deleted
    /// server's end state is the same whenever it is read.
    async fn collected(&self) {
        let secrets: Api<Secret> = self.h.ns.api();
        for secret in [format!("{NAME}-ca"), format!("{NAME}-tls")] {
            tokio::time::timeout(
                Duration::from_secs(90),
                await_condition(secrets.clone(), &secret, |s: Option<&Secret>| s.is_none()),
            )
            .await
            .unwrap_or_else(|_| panic!("garbage collection left {secret} for 90 s"))
            .unwrap();
        }
        let deployments: Api<Deployment> = self.h.ns.api();
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(deployments, NAME, |d: Option<&Deployment>| d.is_none()),
        )
        .await
        .expect("garbage collection left the Deployment for 90 s")
        .unwrap();
        let services: Api<Service> = self.h.ns.api();
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(services, NAME, |s: Option<&Service>| s.is_none()),
        )
        .await
        .expect("garbage collection left the Service for 90 s")
        .unwrap();
        let accounts: Api<ServiceAccount> = self.h.ns.api();
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(accounts, NAME, |a: Option<&ServiceAccount>| a.is_none()),
        )
        .await
        .expect("garbage collection left the ServiceAccount for 90 s")
        .unwrap();
    }

    /// Brings the server to the scenario's starting point (absent for Create).
    async fn set_up(&mut self, scenario: Scenario) {
        if scenario == Scenario::Create {
            return;
        }
        self.operator().await;
        self.h
            .create(&Server::sample(NAME).tls(scenario.tls()))
            .await;
        self.ready().await;
        self.serving_before = self.serving().await;
        if scenario == Scenario::CaRotation {
            // Wait until the CA Secret holds a `next` CA: the rotation has started.
            let secrets: Api<Secret> = self.h.ns.api();
            let has_next = |s: Option<&Secret>| {
                s.and_then(|s| s.data.as_ref())
                    .is_some_and(|d| d.keys().any(|k| k.starts_with("next")))
            };
            tokio::time::timeout(
                Duration::from_secs(90),
                await_condition(secrets, &format!("{NAME}-ca"), has_next),
            )
            .await
            .expect("the CA rotation did not start in 90 s")
            .unwrap();
        }
    }

    /// Makes the change whose writes are counted.
    async fn change(&self, scenario: Scenario) {
        match scenario {
            Scenario::Create => {
                self.h
                    .create(&Server::sample(NAME).tls(scenario.tls()))
                    .await;
            }
            Scenario::SpecChange => {
                // The sample server serves only v1, so the change keeps the version.
                let patch = serde_json::json!({"spec": {
                    "replicas": 2,
                    "env": [{"name": "CHAOS", "value": "on"}],
                    "versions": [{"name": "v1", "groupPriorityMinimum": 900, "versionPriority": 20}],
                }});
                self.h
                    .servers()
                    .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
            // Time makes these changes.
            Scenario::Renewal | Scenario::CaRotation => {}
            Scenario::Delete => {
                self.h
                    .servers()
                    .delete(NAME, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
    }

    /// Waits for the end state of an uninterrupted run of `scenario`.
    async fn settle(&mut self, scenario: Scenario) -> State {
        match scenario {
            Scenario::Delete => {
                self.gone().await;
                self.collected().await;
            }
            Scenario::SpecChange => {
                self.ready().await;
            }
            Scenario::Renewal => {
                // A new serving certificate, then Ready again.
                let secrets: Api<Secret> = self.h.ns.api();
                let before = self.serving_before.clone();
                let renewed = move |s: Option<&Secret>| {
                    s.and_then(|s| s.data.as_ref())
                        .and_then(|d| d.get("tls.crt"))
                        .is_some_and(|crt| Some(&crt.0) != before.as_ref())
                };
                tokio::time::timeout(
                    Duration::from_secs(90),
                    await_condition(secrets, &format!("{NAME}-tls"), renewed),
                )
                .await
                .expect("the certificate was not renewed in 90 s")
                .unwrap();
                self.ready().await;
            }
            Scenario::CaRotation => {
                // The rotation completes: one CA left, no `next`, no `previous`.
                let secrets: Api<Secret> = self.h.ns.api();
                let done = |s: Option<&Secret>| {
                    s.and_then(|s| s.data.as_ref())
                        .is_some_and(|d| d.keys().all(|k| k == "ca.crt" || k == "ca.key"))
                };
                let ended = tokio::time::timeout(
                    Duration::from_secs(120),
                    await_condition(secrets, &format!("{NAME}-ca"), done),
                )
                .await
                .expect("the CA rotation did not complete in 120 s")
                .unwrap();
                self.ca_at_rotation_end = ended
                    .and_then(|s| s.data)
                    .and_then(|d| d.get("ca.crt").map(|c| c.0.clone()));
                self.ready().await;
            }
            _ => {
                self.ready().await;
            }
        }
        state::of_namespace(&self.h.ns).await
    }

    /// The number of writes an uninterrupted run of `scenario` makes, and its end state.
    async fn reference(&mut self, scenario: Scenario) -> (usize, State) {
        self.set_up(scenario).await;
        let faults = self.operator().await;
        self.change(scenario).await;
        let end = self.settle(scenario).await;
        let writes = faults.tally.writes();
        self.delete().await;
        (writes, end)
    }

    /// Crashes right after write `k` of `scenario`, recovers, and compares with `reference`.
    async fn crash_at(&mut self, scenario: Scenario, k: usize, reference: &State) {
        self.set_up(scenario).await;
        self.h.stop_operator().await;
        // The CA that must be current at the end: the one in use, or the rotation's next one
        // (already current if the rotation got that far).
        let before_ca = match scenario {
            Scenario::CaRotation => match self.ca_key("next-ca.crt").await {
                Some(next) => Some(next),
                None => self.ca_crt().await,
            },
            _ => self.ca_crt().await,
        };
        let crashing = self.operator().await;
        crashing.crash_after(k);
        self.change(scenario).await;
        let crashed = crashing.tally.wait_crashed(CRASH_WAIT).await;
        self.h.stop_operator().await;
        let survivor = self.operator().await;
        let end = self.settle(scenario).await;
        self.points += 1;
        let log = crashing.tally.log.lock().unwrap().clone();
        let context = format!(
            "{scenario:?}, crash after write {k} (crashed: {crashed}); writes before the crash: {log:#?}"
        );
        if let Some(difference) = state::difference(reference, &end) {
            panic!("{context}\nthe end state differs from an uninterrupted run's:\n{difference}");
        }
        self.converged += 1;
        // The CA is never re-minted: the CA the first operator wrote (or found) stays.
        let created_ca = crashing
            .tally
            .first_created(&format!("/secrets/{NAME}-ca"))
            .and_then(|body| body["data"]["ca.crt"].as_str().map(str::to_string));
        let minted_twice = survivor
            .tally
            .first_created(&format!("/secrets/{NAME}-ca"))
            .is_some()
            && (created_ca.is_some() || before_ca.is_some());
        let ca_now = self.ca_crt().await;
        let kept = match scenario {
            Scenario::Create => created_ca
                .is_none_or(|b64| ca_now.as_ref().is_some_and(|now| base64_matches(&b64, now))),
            Scenario::Delete => true,
            // The rotation ends on the CA it announced as next (later rotations may follow).
            Scenario::CaRotation => self.ca_at_rotation_end == before_ca,
            _ => ca_now == before_ca,
        };
        if minted_twice || !kept {
            self.ca_reminted += 1;
        }
        assert!(!minted_twice && kept, "{context}\nthe CA was re-minted");
        if scenario != Scenario::Delete {
            self.delete().await;
        }
    }
}

fn base64_matches(encoded: &str, raw: &[u8]) -> bool {
    let encoded_raw = k8s_openapi::ByteString(raw.to_vec());
    serde_json::to_value(&encoded_raw).unwrap().as_str() == Some(encoded)
}

/// The crash points to try out of `writes`: all of them in the full suite, a seeded sample in
/// CI (always including the first and the last).
fn points(writes: usize, rng: &mut Rng) -> Vec<usize> {
    if chaos::full() || writes <= 3 {
        return (1..=writes).collect();
    }
    let mut picked = vec![1, writes, 2 + rng.below(writes as u64 - 2) as usize];
    picked.sort_unstable();
    picked.dedup();
    picked
}

#[tokio::test]
async fn every_crash_point_converges_to_the_uninterrupted_state() {
    let _cores = crate::sharing_the_cores().await;
    let started = Instant::now();
    let seed = chaos::seed("crash");
    let mut rng = Rng::new(seed);
    let h = Harness::start_with_client("chaos-crash", Settings::default(), None).await;
    let pod = runtime::start(&h.ns.cluster, &h.ns.name, NAME)
        .await
        .unwrap();
    let mut suite = Suite {
        h,
        serving_before: None,
        ca_at_rotation_end: None,
        _pod: pod,
        points: 0,
        converged: 0,
        ca_reminted: 0,
        per_scenario: Default::default(),
    };
    let scenarios = if chaos::full() {
        vec![
            Scenario::Create,
            Scenario::Delete,
            Scenario::SpecChange,
            Scenario::Renewal,
            Scenario::CaRotation,
        ]
    } else {
        vec![Scenario::Create, Scenario::Delete, Scenario::SpecChange]
    };
    // `CHAOS_CRASH_SCENARIOS=Renewal,CaRotation` runs only those (to replay one).
    let only = std::env::var("CHAOS_CRASH_SCENARIOS").ok();
    let scenarios = scenarios.into_iter().filter(|s| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|n| n == format!("{s:?}")))
    });
    for scenario in scenarios {
        let (writes, reference) = suite.reference(scenario).await;
        let tried = points(writes, &mut rng);
        eprintln!("crash {scenario:?}: {writes} writes; crashing after {tried:?}");
        for k in &tried {
            suite.crash_at(scenario, *k, &reference).await;
        }
        suite.per_scenario.insert(
            format!("{scenario:?}"),
            serde_json::json!({"writes": writes, "crash_points": tried.len()}),
        );
    }
    chaos::record(
        "crash",
        serde_json::json!({
            "seed": seed,
            "method": "in-process: the fault layer stops all traffic right after write k, then the operator's task is dropped",
            "crash_points": suite.points,
            "crash_points_converged": suite.converged,
            "ca_reminted": suite.ca_reminted,
            "scenarios": suite.per_scenario,
            "seconds": started.elapsed().as_secs(),
        }),
    );
    assert_eq!(suite.points, suite.converged);
}
