//! Fault suite, part 4: schema-driven mutations (Acto's method). Random valid specs and random
//! changes are drawn from the CRD's own OpenAPI schema and applied, one after another, to live
//! ExtensionServers; after each, the operator either converges to exactly what the spec asks or
//! reports why not in a False condition with a message (see `oracle` for both definitions).
//! About one change in five is invalid: admission must refuse it (422, naming the field), or
//! status must report it. No pass may panic. Deleting the servers leaves zero debris.
//!
//! 30 changes by default, 300 with `CHAOS_SCALE=full`; `CHAOS_SEED` replays a run.

mod generator;
mod invalid;
mod oracle;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::tls::certs;
use futures::future::join_all;
use generator::{Generator, MISSING_ACCOUNT, RUNNER_ACCOUNT, Setting, spec_schema};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::conditions;
use oracle::{Facts, History, Live, Verdict};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support;
use crate::support::Harness;
use crate::support::chaos::{self, Rng};

/// How long one change may take to converge or be reported.
const SETTLE: Duration = Duration::from_secs(60);

/// Counts for the report.
#[derive(Debug, Default)]
struct Tally {
    mutations: usize,
    converged: usize,
    reported: usize,
    invalid: usize,
    refused: usize,
    invalid_reported: usize,
    fields: BTreeSet<String>,
}

/// A JSON merge patch from `old` to `new` (`null` removes a field).
fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for key in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in n {
                match o.get(key) {
                    Some(old) if old == value => {}
                    Some(old) => {
                        patch.insert(key.clone(), merge_patch(old, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// One step's context, for failure messages.
struct Step<'a> {
    h: &'a Harness,
    seed: u64,
    name: &'a str,
    step: usize,
}

impl Step<'_> {
    fn fail(&self, what: &str, spec: &Value, detail: &str) -> ! {
        panic!(
            "seed {} (CHAOS_SEED={} to replay), server {}, step {}: {what}\nspec: {}\n{detail}",
            self.seed,
            self.seed,
            self.name,
            self.step,
            serde_json::to_string(spec).unwrap(),
        )
    }

    fn servers(&self) -> Api<DynamicObject> {
        let resource = ApiResource::erase::<ExtensionServer>(&());
        Api::namespaced_with(self.h.ns.client.clone(), &self.h.ns.name, &resource)
    }

    /// Applies `next` as a merge patch from `applied`, or as a full replace of the spec.
    async fn apply(&self, applied: &Value, next: &Value, replace: bool) -> Result<(), kube::Error> {
        let api = self.servers();
        if !replace {
            let patch = Patch::Merge(json!({"spec": merge_patch(applied, next)}));
            return api
                .patch(self.name, &PatchParams::default(), &patch)
                .await
                .map(drop);
        }
        loop {
            let mut live = api.get(self.name).await?;
            live.data["spec"] = next.clone();
            match api.replace(self.name, &PostParams::default(), &live).await {
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                other => return other.map(drop),
            }
        }
    }

    /// Waits until the oracle converges or accepts a report.
    async fn settle(&self, facts: &Facts, history: &History, spec: &Value) -> Verdict {
        let (client, ns) = (&self.h.ns.client, &self.h.ns.name);
        let mut changes = watch::changes(client, ns, self.name);
        let deadline = Instant::now() + SETTLE;
        loop {
            let live = Live::read(client, ns, self.name).await;
            if let Some(error) = live.internal_error() {
                self.fail("the operator panicked (InternalError)", spec, &error);
            }
            match oracle::judge(&live, facts, history) {
                Verdict::Pending(gaps) => {
                    if !watch::next_change(&mut changes, deadline).await {
                        let detail = format!("gaps: {gaps:#?}\nstatus: {:#?}", live.server.status);
                        self.fail("neither converged nor reported in time", spec, &detail);
                    }
                }
                verdict => return verdict,
            }
        }
    }

    /// Waits until status reports an admitted invalid spec: a False condition at the current
    /// generation whose message contains `hint`, or names a problem the spec already had (the
    /// operator reports the first step that cannot go on).
    async fn reported(&self, spec: &Value, hint: &str) -> String {
        let mut hints = vec![hint.to_lowercase()];
        if spec["serviceAccountName"] == MISSING_ACCOUNT {
            hints.push(MISSING_ACCOUNT.into());
        }
        let (client, ns) = (&self.h.ns.client, &self.h.ns.name);
        let mut changes = watch::changes(client, ns, self.name);
        let deadline = Instant::now() + SETTLE;
        loop {
            let live = Live::read(client, ns, self.name).await;
            if let Some(error) = live.internal_error() {
                self.fail("the operator panicked (InternalError)", spec, &error);
            }
            let conditions = live
                .server
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let naming = conditions.iter().find(|c| {
                let message = c.message.to_lowercase();
                c.status == "False" && hints.iter().any(|h| message.contains(h))
            });
            if let (true, Some(c)) = (live.is_current(), naming) {
                return format!("{} {}: {}", c.type_, c.reason, c.message);
            }
            if !watch::next_change(&mut changes, deadline).await {
                let detail = format!("no False condition names {hints:?}: {conditions:#?}");
                self.fail("an admitted invalid spec was not reported", spec, &detail);
            }
        }
    }
}

/// The first field under `spec` a violation touches, which the refusal must name.
fn field_of(what: &str) -> &str {
    let path = what.split_whitespace().next().unwrap();
    let field = path.split('.').nth(1).unwrap_or(path);
    field.trim_end_matches("[]").trim_end_matches("{}")
}

async fn run_server(h: &Harness, seed: u64, index: usize, steps: usize, facts: &Facts) -> Tally {
    let name = format!("mut-{index}");
    let setting = Setting {
        group: format!("{}-{index}.mut.chaos.example.com", h.ns.name),
        byo_secret: format!("{name}-byo"),
    };
    let root = spec_schema();
    let sites = invalid::sites(&root);
    let mut rng = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut g = Generator {
        rng: &mut rng,
        setting: &setting,
        root: &root,
        touched: BTreeSet::new(),
    };
    let mut tally = Tally::default();
    let mut step = Step {
        h,
        seed,
        name: &name,
        step: 0,
    };

    let mut base = g.spec();
    let object = json!({"apiVersion": "aggregation.dev/v1alpha1", "kind": "ExtensionServer",
                        "metadata": {"name": name}, "spec": base});
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    if let Err(e) = step.servers().create(&PostParams::default(), &object).await {
        step.fail(
            "a valid spec was refused at creation",
            &base,
            &e.to_string(),
        );
    }
    let mut history = History::new();
    history.applied(&base);
    step.settle(facts, &history, &base).await;
    let mut applied = base.clone();

    let mut n = 0;
    while tally.mutations < steps {
        n += 1;
        step.step = n;
        let replace = g.rng.chance(0.3);
        if g.rng.chance(0.2) {
            tally.invalid += 1;
            let violation = if g.rng.chance(0.25) {
                invalid::unworkable(&mut g, &base)
            } else {
                let site = g.rng.pick(&sites).clone();
                invalid::violate(&mut g, &base, &site)
            };
            tally.fields.insert(format!("invalid: {}", violation.what));
            match step.apply(&applied, &violation.spec, replace).await {
                Err(kube::Error::Api(e)) if e.code == 422 && !e.message.is_empty() => {
                    let field = field_of(&violation.what);
                    if violation.admitted_hint.is_none() && !e.message.contains(field) {
                        step.fail(
                            &format!("{} refused without naming {field}", violation.what),
                            &violation.spec,
                            &e.message,
                        );
                    }
                    tally.refused += 1;
                }
                Err(e) => step.fail(
                    &format!("{} refused oddly", violation.what),
                    &violation.spec,
                    &e.to_string(),
                ),
                Ok(()) => {
                    let hint = violation.admitted_hint.clone().unwrap_or_else(|| {
                        step.fail(
                            &format!("admission let {} through", violation.what),
                            &violation.spec,
                            "",
                        )
                    });
                    history.applied(&violation.spec);
                    step.reported(&violation.spec, &hint).await;
                    tally.invalid_reported += 1;
                    applied = violation.spec;
                }
            }
            continue;
        }
        let next = g.mutate(&base);
        if let Err(e) = step.apply(&applied, &next, replace).await {
            step.fail("a valid change was refused", &next, &e.to_string());
        }
        tally.mutations += 1;
        history.applied(&next);
        match step.settle(facts, &history, &next).await {
            Verdict::Converged => tally.converged += 1,
            // A valid spec the operator cannot apply is an operator bug.
            Verdict::Reported(why) if why.starts_with(oracle::APPLY_FAILED) => {
                step.fail("a valid spec could not be applied", &next, &why);
            }
            Verdict::Reported(why) => {
                eprintln!("{name} step {n}: reported {why}");
                tally.reported += 1;
            }
            Verdict::Pending(_) => unreachable!(),
        }
        base = next.clone();
        applied = next;
    }
    tally.fields.extend(g.touched);

    let uid = h.servers().get(&name).await.unwrap().metadata.uid.unwrap();
    h.servers()
        .delete(&name, &Default::default())
        .await
        .unwrap();
    support::wait_for(h.servers(), &name, conditions::is_deleted(&uid)).await;
    tally
}

/// Creates what the generator refers to: the runner ServiceAccount and each server's Secret.
async fn prepare(h: &Harness, indices: &[usize]) -> Facts {
    let accounts: Api<ServiceAccount> = h.ns.api();
    let account = json!({"metadata": {"name": RUNNER_ACCOUNT}});
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(account).unwrap(),
        )
        .await
        .unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    let lifetime = Duration::from_secs(24 * 3600);
    let ca = certs::generate_ca("mutations CA", now, lifetime).unwrap();
    for index in indices {
        let dns = vec![format!("mut-{index}.{}.svc", h.ns.name)];
        let serving = certs::issue_serving(&ca, &dns, now, lifetime).unwrap();
        support::write_cert_manager_secret(&h.ns, &format!("mut-{index}-byo"), &ca, &serving).await;
    }
    let node = Api::<Node>::all(h.ns.client.clone())
        .get("kwok-node-0")
        .await
        .unwrap();
    Facts {
        node_labels: node.metadata.labels.unwrap_or_default(),
        byo_ca: ca.cert_pem.clone(),
    }
}

/// Nothing of the test's namespace is left: cluster-scoped, kube-system, or namespaced.
async fn assert_no_debris(h: &Harness) {
    let client = &h.ns.client;
    let ours = format!("aggregation.dev/extension-server-namespace={}", h.ns.name);
    let managed = "app.kubernetes.io/managed-by=extension-server-operator";
    let wait = Duration::from_secs(60);
    let left: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        (
            "APIService",
            watch::until_none(Api::<APIService>::all(client.clone()), &ours, wait).await,
        ),
        (
            "ClusterRoleBinding",
            watch::until_none(Api::<ClusterRoleBinding>::all(client.clone()), &ours, wait).await,
        ),
        (
            "RoleBinding",
            watch::until_none(
                Api::<RoleBinding>::namespaced(client.clone(), "kube-system"),
                &ours,
                wait,
            )
            .await,
        ),
        (
            "Deployment",
            watch::until_none(h.ns.api::<Deployment>(), managed, wait).await,
        ),
        (
            "Service",
            watch::until_none(h.ns.api::<Service>(), managed, wait).await,
        ),
        (
            "ServiceAccount",
            watch::until_none(h.ns.api::<ServiceAccount>(), managed, wait).await,
        ),
        (
            "Secret",
            watch::until_none(h.ns.api::<Secret>(), managed, wait).await,
        ),
        (
            "PodDisruptionBudget",
            watch::until_none(h.ns.api::<PodDisruptionBudget>(), managed, wait).await,
        ),
    ]);
    let debris: Vec<_> = left.iter().filter(|(_, names)| !names.is_empty()).collect();
    assert!(debris.is_empty(), "debris after deletion: {debris:?}");
}

/// Reconciles that ended in a caught panic, from the operator's metrics.
fn caught_panics(h: &Harness) -> u64 {
    h.ctx
        .metrics
        .encode()
        .lines()
        .filter(|l| l.contains("reconcile_errors_total") && l.contains("category=\"Internal\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs servers `indices` of `seed`, `steps` valid changes each, in a namespace of their own;
/// deleting them must leave no debris, and no pass may panic.
async fn run_seed(seed: u64, indices: &[usize], steps: impl Fn(usize) -> usize) -> Vec<Tally> {
    let h = Harness::start("es-mut").await;
    let facts = prepare(&h, indices).await;
    let tallies = join_all(
        indices
            .iter()
            .map(|&i| run_server(&h, seed, i, steps(i), &facts)),
    )
    .await;
    assert_no_debris(&h).await;
    let panics = caught_panics(&h);
    assert_eq!(
        panics, 0,
        "seed {seed}: the operator caught {panics} panics"
    );
    tallies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_specs_and_changes_converge_or_are_reported() {
    let _cores = crate::sharing_the_cores().await;
    let started = Instant::now();
    let seed = chaos::seed("mutations");
    let total = chaos::sized(30, 300);
    let servers = if chaos::full() { 6 } else { 3 };
    // `total` valid changes, shared out; the invalid ones come on top.
    let steps = |i: usize| total / servers + usize::from(i < total % servers);
    let indices: Vec<usize> = (0..servers).collect();
    let tallies = run_seed(seed, &indices, steps).await;

    let sum = |f: fn(&Tally) -> usize| tallies.iter().map(f).sum::<usize>();
    let (mutations, converged, reported) = (
        sum(|t| t.mutations),
        sum(|t| t.converged),
        sum(|t| t.reported),
    );
    let (invalid, refused, invalid_reported) = (
        sum(|t| t.invalid),
        sum(|t| t.refused),
        sum(|t| t.invalid_reported),
    );
    let fields: BTreeSet<&String> = tallies.iter().flat_map(|t| &t.fields).collect();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "chaos mutations: seed {seed}, {mutations} changes ({converged} converged, {reported} reported), \
         {invalid} invalid ({refused} refused, {invalid_reported} reported), {seconds:.0} s"
    );
    chaos::record(
        "mutations",
        json!({"seed": seed, "mutations": mutations, "mutations_converged": converged,
               "mutations_reported": reported, "invalid_specs": invalid,
               "invalid_specs_refused": refused, "invalid_specs_reported": invalid_reported,
               "panics": 0, "fields_mutated": fields, "seconds": seconds}),
    );
    assert_eq!(converged + reported, mutations);
    assert_eq!(refused + invalid_reported, invalid);
    replay_kept_seeds().await;
}

/// Every seed that ever failed this part, replayed after the random one: the server it failed
/// on, with as many valid changes as a short run gives each server.
async fn replay_kept_seeds() {
    let kept = chaos::kept("mutations");
    assert!(!kept.is_empty(), "the kept seeds of part mutations");
    let runs = kept.iter().map(|k| async move {
        let server: usize = k.scope("server").parse().unwrap();
        run_seed(k.seed, &[server], |_| 10).await
    });
    for tallies in join_all(runs).await {
        let t = &tallies[0];
        assert_eq!(t.converged + t.reported, t.mutations);
        assert_eq!(t.refused + t.invalid_reported, t.invalid);
    }
}
