//! The oracle: reads the live children and says whether they are exactly what the spec asks.
//! It is written from the spec and the README's contract, not from the operator's builders.
//!
//! - **Converged**: status describes the current generation; the Deployment (replicas, image,
//!   pull policy, args, env, port, resources, nodeSelector, tolerations, affinity, service
//!   account, TLS volumes), the Service (443 named `https` to the container's `https` port), the
//!   PDB (only above one replica, evicting unhealthy pods), the auth-delegator binding, and the
//!   APIServices (exactly `<version>.<group>` per version, none at replicas 0, each with its
//!   priorities, Service, and `caBundle` or `insecureSkipTLSVerify` by TLS mode) all match, and
//!   `Registered` is True unless replicas is 0. `Ready`/`Available` stay False: nothing serves
//!   the API on kwok.
//! - **Reported**: the same children match, but some requested APIServices are absent, a fact
//!   the oracle checks itself explains why (the pods cannot run on the fake node and none is
//!   ready, under policy WhenReady; or the APIServices may have been removed for staying
//!   unavailable, see [`History`]), and `Registered` is False with the matching reason and a
//!   message.
//! - Anything else is **pending**; still pending at the deadline fails the test.

use std::collections::BTreeMap;

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::{ExtensionServer, RegistrationPolicy, TlsMode};
use extension_server_operator::trust::grants::PRIORITY_CAP;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Affinity, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::generator::MISSING_ACCOUNT;

/// What the oracle knows without asking the operator.
#[derive(Debug, Clone)]
pub struct Facts {
    pub node_labels: BTreeMap<String, String>,
    /// The `ca.crt` of the server's own certificate Secret (mode Secret).
    pub byo_ca: String,
}

/// A server and its children, as the API server has them.
#[derive(Debug)]
pub struct Live {
    pub server: ExtensionServer,
    pub deployment: Option<Deployment>,
    pub service: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    pub binding: Option<ClusterRoleBinding>,
    pub api_services: Vec<APIService>,
}

impl Live {
    pub async fn read(client: &Client, ns: &str, name: &str) -> Self {
        let server = Api::<ExtensionServer>::namespaced(client.clone(), ns);
        let binding = format!("aggregation.dev:{ns}:{name}:auth-delegator");
        let selector = format!(
            "aggregation.dev/extension-server-namespace={ns},aggregation.dev/extension-server={name}"
        );
        let api_services = Api::<APIService>::all(client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items;
        Self {
            server: server.get(name).await.unwrap(),
            deployment: Api::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .unwrap(),
            service: Api::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .unwrap(),
            pdb: Api::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .unwrap(),
            binding: Api::all(client.clone()).get_opt(&binding).await.unwrap(),
            api_services,
        }
    }

    /// The condition `type_` as (status, reason, message).
    pub fn condition(&self, type_: &str) -> Option<(&str, &str, &str)> {
        let status = self.server.status.as_ref()?;
        let c = status.conditions.iter().find(|c| c.type_ == type_)?;
        Some((&c.status, &c.reason, &c.message))
    }

    pub fn is_current(&self) -> bool {
        let status = self.server.status.as_ref();
        status.and_then(|s| s.observed_generation) == self.server.metadata.generation
    }

    /// A caught panic shows as `InternalError` on any condition.
    pub fn internal_error(&self) -> Option<String> {
        let status = self.server.status.as_ref()?;
        let c = status
            .conditions
            .iter()
            .find(|c| c.reason == "InternalError")?;
        Some(format!("{} {}: {}", c.type_, c.reason, c.message))
    }
}

/// What one server's earlier steps make possible now.
#[derive(Debug, Clone, Copy)]
pub struct History {
    /// Some applied spec of this server set `registration.unregisterAfter`.
    unregister_after_set: bool,
    created: std::time::Instant,
}

impl History {
    pub fn new() -> Self {
        Self {
            unregister_after_set: false,
            created: std::time::Instant::now(),
        }
    }

    /// Records a spec the API server accepted.
    pub fn applied(&mut self, spec: &Value) {
        let set = spec["registration"]["unregisterAfter"]
            .as_str()
            .is_some_and(|u| !u.is_empty());
        self.unregister_after_set |= set;
    }

    /// Whether the APIServices may have been removed for staying unavailable: a spec set
    /// `unregisterAfter`, or the server has lived past the operator's `--max-unavailable`.
    /// Nothing serves them on kwok, so no probe of the backend ever answers, and such a
    /// removal lasts whatever the spec says now (design §3.5).
    fn may_be_held(&self) -> bool {
        let cap = extension_server_operator::context::Settings::default().max_unavailable;
        self.unregister_after_set || self.created.elapsed() >= cap
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Converged,
    Reported(String),
    Pending(Vec<String>),
}

pub fn judge(live: &Live, facts: &Facts, history: &History) -> Verdict {
    if !live.is_current() {
        return Verdict::Pending(vec![
            "status does not describe the current generation".into(),
        ]);
    }
    let mut gaps = children(live);
    let (present, missing) = api_services(live, facts, &mut gaps);
    if let Some(report) = step_failed(live) {
        return Verdict::Reported(report);
    }
    if let Some(report) = missing_account(live).filter(|_| !gaps.is_empty() || !missing.is_empty())
    {
        return Verdict::Reported(report);
    }
    if !gaps.is_empty() {
        return Verdict::Pending(gaps);
    }
    let spec = &live.server.spec;
    if spec.replicas == 0 {
        return match present {
            0 => Verdict::Converged,
            n => Verdict::Pending(vec![format!("{n} APIServices remain at replicas 0")]),
        };
    }
    let registered = live.condition("Registered");
    if missing.is_empty() {
        return match registered {
            Some(("True", ..)) => Verdict::Converged,
            other => Verdict::Pending(vec![format!(
                "all APIServices exist, Registered is {other:?}"
            )]),
        };
    }
    let expected = why_not_registered(live, facts, history);
    match registered {
        Some(("False", reason, message)) if expected.contains(&reason) && !message.is_empty() => {
            Verdict::Reported(format!("Registered False {reason}: {message}"))
        }
        other => Verdict::Pending(vec![format!(
            "APIServices missing: {missing:?}; expected Registered False {expected:?}, found {other:?}"
        )]),
    }
}

/// A write the API server refused: `Ready` False, reason `<Kind>ApplyFailed`, with the API
/// server's message. Expected only for specs that admission accepts but that cannot work; for
/// a valid spec the test fails.
fn step_failed(live: &Live) -> Option<String> {
    match live.condition("Ready") {
        Some(("False", reason, message))
            if reason.ends_with("ApplyFailed") && !message.is_empty() =>
        {
            Some(format!("{APPLY_FAILED} {reason}: {message}"))
        }
        _ => None,
    }
}

/// How [`step_failed`] reports begin.
pub const APPLY_FAILED: &str = "apply failed:";

/// A `serviceAccountName` that does not exist is never created by the operator; before it
/// binds one, it stops and says so.
fn missing_account(live: &Live) -> Option<String> {
    let spec = &live.server.spec;
    if spec.service_account_name.as_deref() != Some(MISSING_ACCOUNT) {
        return None;
    }
    let status = live.server.status.as_ref()?;
    let c = status
        .conditions
        .iter()
        .find(|c| c.status == "False" && c.message.contains(MISSING_ACCOUNT))?;
    Some(format!("{} False {}: {}", c.type_, c.reason, c.message))
}

/// The reasons independent facts give for requested APIServices being absent.
fn why_not_registered(live: &Live, facts: &Facts, history: &History) -> Vec<&'static str> {
    let spec = &live.server.spec;
    let mut reasons = Vec::new();
    let ready = live
        .deployment
        .as_ref()
        .and_then(|d| d.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    let waits = spec.registration.policy == RegistrationPolicy::WhenReady;
    if waits && ready == 0 && !can_run(&live.server, facts) {
        reasons.push("WaitingForReadyReplicas");
    }
    let unregister_after = spec.registration.unregister_after.as_deref();
    if unregister_after.is_some_and(|u| !u.is_empty()) || history.may_be_held() {
        reasons.push("Unregistered");
    }
    reasons
}

/// Whether the pod template fits the fake node (it has no taints and plenty of room).
pub fn can_run(server: &ExtensionServer, facts: &Facts) -> bool {
    let spec = &server.spec;
    let labels = &facts.node_labels;
    let selector_fits = spec
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let account = spec.service_account_name.as_deref().unwrap_or("");
    let affinity_fits = spec
        .affinity
        .as_ref()
        .and_then(|a| {
            a.node_affinity
                .as_ref()?
                .required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|required| {
            required.node_selector_terms.iter().any(|term| {
                term.match_expressions.iter().flatten().all(|e| {
                    let value = labels.get(&e.key);
                    let listed = value.is_some_and(|v| e.values.iter().flatten().any(|x| x == v));
                    match e.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        "Exists" => value.is_some(),
                        _ => value.is_none(),
                    }
                })
            })
        });
    selector_fits && affinity_fits && account != MISSING_ACCOUNT
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// `expected` is contained in `live` (the API server adds defaults such as `apiVersion`, and
/// drops empty strings, as Go's `omitempty` does).
fn contains(live: &Value, expected: &Value) -> bool {
    match (live, expected) {
        (Value::Object(l), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| contains(lv, v)) || v.is_null() || v == ""),
        (Value::Array(l), Value::Array(e)) => {
            l.len() == e.len() && l.iter().zip(e).all(|(l, e)| contains(l, e))
        }
        _ => live == expected,
    }
}

fn check(gaps: &mut Vec<String>, ok: bool, what: impl FnOnce() -> String) {
    if !ok {
        gaps.push(what());
    }
}

fn children(live: &Live) -> Vec<String> {
    let mut gaps = Vec::new();
    let server = &live.server;
    let spec = &server.spec;
    let name = server.name_any();
    let account = match spec.service_account_name.as_deref() {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => name.clone(),
    };
    let Some(deployment) = &live.deployment else {
        return vec!["no Deployment".into()];
    };
    let d = deployment.spec.as_ref().unwrap();
    check(&mut gaps, d.replicas == Some(spec.replicas), || {
        format!("Deployment replicas {:?}", d.replicas)
    });
    let pod = d.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    check(&mut gaps, pod.containers.len() == 1, || {
        "more than one container".into()
    });
    check(&mut gaps, c.image.as_deref() == Some(&spec.image), || {
        format!("image {:?}", c.image)
    });
    if let Some(policy) = spec.image_pull_policy {
        let live_policy = c.image_pull_policy.as_deref();
        check(&mut gaps, live_policy == Some(policy.as_str()), || {
            format!("imagePullPolicy {live_policy:?}")
        });
    }
    check(
        &mut gaps,
        c.args.clone().unwrap_or_default() == spec.args,
        || format!("args {:?}", c.args),
    );
    let env = json(&c.env.clone().unwrap_or_default());
    check(&mut gaps, contains(&env, &json(&spec.env)), || {
        format!("env {env}")
    });
    let port = c.ports.as_deref().unwrap_or_default();
    let port_ok = port.len() == 1
        && port[0].container_port == spec.port
        && port[0].name.as_deref() == Some("https");
    check(&mut gaps, port_ok, || format!("container ports {port:?}"));
    let resources = json(&c.resources.clone().unwrap_or_default());
    let asked = json(&spec.resources.clone().unwrap_or_default());
    for map in ["requests", "limits"] {
        let same = resources.get(map).unwrap_or(&Value::Null)
            == asked.get(map).unwrap_or(&Value::Null)
            || (asked.get(map).is_none()
                && resources[map].as_object().is_none_or(|m| m.is_empty()));
        check(&mut gaps, same, || {
            format!("resources.{map} {}", resources[map])
        });
    }
    let selector = pod.node_selector.clone().unwrap_or_default();
    check(&mut gaps, selector == spec.node_selector, || {
        format!("nodeSelector {selector:?}")
    });
    let tolerations = json(&pod.tolerations.clone().unwrap_or_default());
    check(
        &mut gaps,
        contains(&tolerations, &json(&spec.tolerations)),
        || format!("tolerations {tolerations}"),
    );
    check(
        &mut gaps,
        affinity_ok(pod.affinity.as_ref(), spec.affinity.as_ref(), spec.replicas),
        || format!("affinity {:?}", pod.affinity),
    );
    let live_account = pod.service_account_name.as_deref();
    check(&mut gaps, live_account == Some(&account), || {
        format!("serviceAccountName {live_account:?}")
    });
    let tls_secret = match spec.tls.mode {
        TlsMode::Secret => spec.tls.secret_name.clone().unwrap_or_default(),
        _ => format!("{name}-tls"),
    };
    // The serving Secret backs two volumes: `tls.*` and k8s.io/apiserver's `apiserver.*`.
    let mounted: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v.name.as_str(), v.secret.as_ref()?.secret_name.clone()?)))
        .collect();
    let want = [
        ("serving-cert", tls_secret.clone()),
        ("apiserver-cert", tls_secret.clone()),
    ];
    check(&mut gaps, mounted == want, || {
        format!("TLS volumes {mounted:?}, want {want:?}")
    });

    match live
        .service
        .as_ref()
        .and_then(|s| s.spec.as_ref()?.ports.clone())
    {
        Some(ports) if ports.len() == 1 => {
            let p = &ports[0];
            let ok = p.port == 443 && p.target_port == Some(IntOrString::String("https".into()));
            check(&mut gaps, ok, || format!("Service port {p:?}"));
        }
        other => gaps.push(format!("Service ports {other:?}")),
    }
    check(&mut gaps, live.pdb.is_some() == (spec.replicas > 1), || {
        format!(
            "PDB present {} at replicas {}",
            live.pdb.is_some(),
            spec.replicas
        )
    });
    let eviction = live
        .pdb
        .as_ref()
        .and_then(|p| p.spec.as_ref()?.unhealthy_pod_eviction_policy.clone());
    check(
        &mut gaps,
        live.pdb.is_none() || eviction.as_deref() == Some("AlwaysAllow"),
        || format!("PDB unhealthyPodEvictionPolicy {eviction:?}, want AlwaysAllow"),
    );
    let subject = live
        .binding
        .as_ref()
        .and_then(|b| b.subjects.as_ref()?.first().map(|s| s.name.clone()));
    check(&mut gaps, subject.as_deref() == Some(&account), || {
        format!("auth-delegator subject {subject:?}")
    });
    gaps
}

/// The spec's affinity as given; without one, a preferred spread above one replica.
fn affinity_ok(live: Option<&Affinity>, asked: Option<&Affinity>, replicas: i32) -> bool {
    match asked {
        Some(asked) => contains(&json(&live.cloned().unwrap_or_default()), &json(asked)),
        None if replicas > 1 => live.is_some_and(|a| a.pod_anti_affinity.is_some()),
        None => live.is_none_or(|a| *a == Affinity::default()),
    }
}

/// Checks every live APIService of this server; returns (present, missing requested names).
fn api_services(live: &Live, facts: &Facts, gaps: &mut Vec<String>) -> (usize, Vec<String>) {
    let spec = &live.server.spec;
    let ns = live.server.namespace().unwrap_or_default();
    let name = live.server.name_any();
    let requested: BTreeMap<String, _> = spec
        .versions
        .iter()
        .map(|v| (format!("{}.{}", v.name, spec.group), v))
        .collect();
    for api in &live.api_services {
        let api_name = api.name_any();
        let Some(version) = requested.get(&api_name) else {
            gaps.push(format!("APIService {api_name} is not requested"));
            continue;
        };
        let s = &api.spec;
        let service = s.service.as_ref();
        let mut ok = s.group.as_deref() == Some(&spec.group)
            && s.version.as_deref() == Some(&version.name)
            // Without grants, a group priority above a CRD's is registered at the cap.
            && s.group_priority_minimum == version.group_priority_minimum.min(PRIORITY_CAP)
            && s.version_priority == version.version_priority
            && service.is_some_and(|r| r.namespace == ns && r.name == name && r.port == Some(443));
        let bundle = s
            .ca_bundle
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default();
        // The API server leaves out `insecureSkipTLSVerify: false` (Go's omitempty).
        let insecure = s.insecure_skip_tls_verify.unwrap_or(false);
        ok &= match spec.tls.mode {
            TlsMode::Insecure => insecure && bundle.is_empty(),
            TlsMode::Secret => !insecure && bundle.contains(facts.byo_ca.trim()),
            TlsMode::Managed => !insecure && bundle.contains("BEGIN CERTIFICATE"),
        };
        check(gaps, ok, || {
            format!(
                "APIService {api_name}: priorities {}/{}, service {:?}, insecure {insecure}, caBundle {} bytes",
                s.group_priority_minimum,
                s.version_priority,
                s.service,
                bundle.len()
            )
        });
    }
    let present: Vec<String> = live.api_services.iter().map(|a| a.name_any()).collect();
    let missing = requested
        .keys()
        .filter(|n| !present.contains(n))
        .cloned()
        .collect();
    (present.len(), missing)
}
