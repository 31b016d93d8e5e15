//! Status from what was applied and observed: one verdict per condition, each False one saying
//! what is wrong and what to do.

pub mod conditions;
mod diagnosis;
mod failed_pass;
#[cfg(test)]
mod tests;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use crate::reason::{ConditionType, Reason};
pub use conditions::{Conclusion, Status};
pub use diagnosis::{diagnose_external, diagnose_unavailable};
pub use failed_pass::failed;

use crate::crd::{ApiServiceState, CertificateState, ExtensionServerStatus};
use crate::outcome::{Applied, CertificateOutcome, Registration};
use crate::probe::{BackendProbe, Handshake, ProbeFailure};
use crate::trust::Refusal;
use ConditionType::{
    Available, BackendReachable, CertificateReady, DeploymentAvailable, Registered,
};

/// Builds the whole status, merging conditions with the previous ones.
pub fn compute(
    applied: &Applied,
    previous: Option<&ExtensionServerStatus>,
    now: Time,
) -> ExtensionServerStatus {
    let conclusions = conclusions(applied);
    let previous_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let (replicas, ready_replicas) = replica_counts(applied.workload.deployment());
    let generation = applied.subject.generation;
    ExtensionServerStatus {
        observed_generation: generation,
        replicas,
        ready_replicas,
        conditions: conditions::merge(previous_conditions, &conclusions, generation, now),
        api_services: api_service_states(applied),
        certificate: certificate_state(&applied.certificate),
    }
}

/// The five conclusions, Ready first.
pub fn conclusions(applied: &Applied) -> Vec<Conclusion> {
    let parts = match applied.refusal.as_ref() {
        // Refused: nothing runs; Registered says why, the others only point there.
        Some(refusal) if !refusal.keep_registered => {
            let not_started = |type_| {
                Conclusion::new(
                    type_,
                    Status::Unknown,
                    refusal.reason.clone(),
                    "nothing runs while the claim is refused (a Deployment from before, when a grant was withdrawn, is removed and comes back with the grant); see Registered",
                )
            };
            vec![
                not_started(workload_type(applied)),
                not_started(CertificateReady),
                refused_verdict(refusal),
                not_started(Available),
            ]
        }
        Some(refusal) => vec![
            deployment_verdict(applied),
            certificate_verdict(applied),
            refused_verdict(refusal),
            available_verdict(applied),
        ],
        None => vec![
            deployment_verdict(applied),
            certificate_verdict(applied),
            with_clamped(registered_verdict(applied), applied),
            available_verdict(applied),
        ],
    };
    let mut all = vec![conditions::ready(&parts)];
    all.extend(parts);
    all
}

/// DeploymentAvailable, or BackendReachable for an external server.
fn workload_type(o: &Applied) -> ConditionType {
    if o.is_external() {
        BackendReachable
    } else {
        DeploymentAvailable
    }
}

fn backend_verdict(o: &Applied, probe: &BackendProbe) -> Conclusion {
    if o.subject.replicas == 0 {
        return Conclusion::new(
            BackendReachable,
            Status::False,
            Reason::ScaledToZero,
            "spec.replicas is 0, so the APIServices are unregistered; set replicas to 1 to serve the API",
        );
    }
    match &probe.outcome {
        Ok(()) => Conclusion::new(
            BackendReachable,
            Status::True,
            Reason::BackendReachable,
            format!(
                "{} answered a TLS handshake as {}",
                probe.target, probe.server_name
            ),
        ),
        Err(ProbeFailure::Pending(why)) => Conclusion::new(
            BackendReachable,
            Status::Unknown,
            Reason::Probing,
            why.clone(),
        ),
        Err(why) => Conclusion::new(
            BackendReachable,
            Status::False,
            Reason::BackendUnreachable,
            format!(
                "{why}; check that the server runs, listens on {} and is reachable from kube-apiserver, and that it serves a certificate for {} signed by the CA in tls.secretName",
                probe.target, probe.server_name
            ),
        ),
    }
}

fn refused_verdict(refusal: &Refusal) -> Conclusion {
    Conclusion::new(
        Registered,
        Status::False,
        refusal.reason.clone(),
        refusal.message.clone(),
    )
}

fn replica_counts(deployment: Option<&Deployment>) -> (i32, i32) {
    let status = deployment.and_then(|d| d.status.as_ref());
    (
        status.and_then(|s| s.replicas).unwrap_or(0),
        status.and_then(|s| s.ready_replicas).unwrap_or(0),
    )
}

fn deployment_verdict(o: &Applied) -> Conclusion {
    if o.is_external() {
        return match o.backend_probe() {
            Some(probe) => backend_verdict(o, probe),
            None => Conclusion::new(
                BackendReachable,
                Status::Unknown,
                Reason::WaitingForCertificate,
                "not dialled yet: the CA to verify the external server with is not usable; see CertificateReady",
            ),
        };
    }
    let (_, ready) = replica_counts(o.workload.deployment());
    let selector = format!(
        "kubectl get pods -n {} -l app.kubernetes.io/instance={}",
        o.subject.names.namespace, o.subject.names.name
    );
    if o.subject.replicas == 0 {
        return Conclusion::new(
            DeploymentAvailable,
            Status::False,
            Reason::ScaledToZero,
            "spec.replicas is 0, so the APIServices are unregistered; set replicas to 1 or more to serve the API",
        );
    }
    if ready >= 1 {
        return Conclusion::new(
            DeploymentAvailable,
            Status::True,
            Reason::MinimumReplicasAvailable,
            format!("{ready}/{} replicas are ready", o.subject.replicas),
        );
    }
    if o.workload.deployment().is_none() {
        return Conclusion::new(
            DeploymentAvailable,
            Status::False,
            Reason::Progressing,
            format!(
                "Deployment {}/{} does not exist yet; the other conditions say what stops it",
                o.subject.names.namespace, o.subject.names.name
            ),
        );
    }
    let observed = o
        .workload
        .deployment()
        .and_then(|d| Some(d.status.as_ref()?.observed_generation? >= d.metadata.generation?))
        .unwrap_or(false);
    if !observed {
        return Conclusion::new(
            DeploymentAvailable,
            Status::False,
            Reason::Progressing,
            format!(
                "Deployment {}/{} is being rolled out; wait, or check `{selector}`",
                o.subject.names.namespace, o.subject.names.name
            ),
        );
    }
    Conclusion::new(
        DeploymentAvailable,
        Status::False,
        Reason::NoReadyReplicas,
        format!(
            "0/{} replicas are ready; check `{selector}` and that the server answers its readiness probe (HTTPS GET /readyz on port {})",
            o.subject.replicas, o.subject.port
        ),
    )
}

fn certificate_verdict(o: &Applied) -> Conclusion {
    match &o.certificate {
        CertificateOutcome::Valid {
            serving,
            previous_trusted,
            ..
        } => Conclusion::new(
            CertificateReady,
            Status::True,
            Reason::Valid,
            format!(
                "serving certificate for {}.{}.svc is valid until {}{}",
                o.subject.names.name,
                o.subject.names.namespace,
                serving.not_after,
                if *previous_trusted {
                    "; the previous CA stays in the caBundle until the pods serve a certificate from the current one"
                } else {
                    ""
                }
            ),
        ),
        CertificateOutcome::Insecure { serving } => Conclusion::new(
            CertificateReady,
            Status::True,
            Reason::InsecureSkipVerify,
            format!(
                "tls.mode is Insecure: the aggregator does not verify the server's certificate (valid until {}); use Managed in production",
                serving.not_after
            ),
        ),
        CertificateOutcome::SecretInvalid(why) => Conclusion::new(
            CertificateReady,
            Status::False,
            Reason::SecretInvalid,
            why.clone(),
        ),
        CertificateOutcome::NotIssued => Conclusion::new(
            CertificateReady,
            Status::Unknown,
            Reason::NotRegistered,
            "no certificate is issued while the claim is refused",
        ),
        CertificateOutcome::Expired(why) => Conclusion::new(
            CertificateReady,
            Status::False,
            Reason::Expired,
            why.clone(),
        ),
        CertificateOutcome::External {
            ca: Some((secret, not_after)),
        } => Conclusion::new(
            CertificateReady,
            Status::True,
            Reason::Valid,
            format!(
                "the APIServices trust ca.crt of Secret {secret}{}; the external server must serve a certificate for {}.{}.svc signed by it",
                not_after
                    .map(|t| format!(" (valid until {t})"))
                    .unwrap_or_default(),
                o.subject.names.name,
                o.subject.names.namespace
            ),
        ),
        CertificateOutcome::External { ca: None } => Conclusion::new(
            CertificateReady,
            Status::True,
            Reason::InsecureSkipVerify,
            "tls.mode is Insecure: the aggregator does not verify the external server's certificate; use mode Secret with its CA in production",
        ),
    }
}

/// Registered also says which group priorities were lowered to the cap.
fn with_clamped(mut verdict: Conclusion, o: &Applied) -> Conclusion {
    for clamped in &o.subject.clamped {
        verdict.message = format!("{}; {clamped}", verdict.message);
    }
    verdict
}

fn registered_verdict(o: &Applied) -> Conclusion {
    let mut conflicts = Vec::new();
    let mut waiting = Vec::new();
    let mut waiting_cert = Vec::new();
    let mut scaled = Vec::new();
    let mut dropped = Vec::new();
    let mut registered = Vec::new();
    let mut adopting = Vec::new();
    for registration in &o.registrations {
        match registration {
            Registration::Conflict { name, reason } => conflicts.push(format!("{name}: {reason}")),
            Registration::WaitingForReadyReplicas(n) => waiting.push(n.to_string()),
            Registration::WaitingForCertificate(n) => waiting_cert.push(n.to_string()),
            Registration::ScaledToZero(n) => scaled.push(n.to_string()),
            Registration::UnregisteredUnavailable(n) => dropped.push(n.to_string()),
            Registration::Registered(n) => registered.push(n.to_string()),
            Registration::Refused(n) => waiting.push(n.to_string()),
            Registration::WaitingForBackend(n) => adopting.push(n.to_string()),
        }
    }
    if !conflicts.is_empty() {
        return Conclusion::new(
            Registered,
            Status::False,
            Reason::Conflict,
            conflicts.join("; "),
        );
    }
    if !scaled.is_empty() {
        return Conclusion::new(
            Registered,
            Status::False,
            Reason::ScaledToZero,
            format!(
                "{} unregistered because spec.replicas is 0; scale up to register again",
                scaled.join(", ")
            ),
        );
    }
    if !dropped.is_empty() {
        return Conclusion::new(
            Registered,
            Status::False,
            Reason::Unregistered,
            format!(
                "{} unregistered after staying unavailable longer than the operator's --max-unavailable or registration.unregisterAfter, so discovery keeps working; it is registered again once GET /apis/<group>/<version> answers, the aggregator's own check (removed again soon after, it is held twice as long each time), so fix the server",
                dropped.join(", ")
            ),
        );
    }
    if !waiting_cert.is_empty() {
        return Conclusion::new(
            Registered,
            Status::False,
            Reason::WaitingForCertificate,
            format!(
                "{} will be registered once the serving certificate is ready; see CertificateReady",
                waiting_cert.join(", ")
            ),
        );
    }
    if !adopting.is_empty() {
        return Conclusion::new(
            Registered,
            Status::False,
            Reason::WaitingForReadyReplicas,
            format!(
                "{} will be taken over (registration.adoptExisting) once Service {}/{} answers a TLS handshake, so the APIService never points at a backend that does not answer; until then it keeps its current backend",
                adopting.join(", "),
                o.subject.names.namespace,
                o.subject.names.name
            ),
        );
    }
    if !waiting.is_empty() {
        let once = match o.backend_probe() {
            Some(probe) => format!("{} answers a verified TLS handshake", probe.target),
            None => "a replica is ready".to_string(),
        };
        return Conclusion::new(
            Registered,
            Status::False,
            Reason::WaitingForReadyReplicas,
            format!(
                "{} will be registered once {once} (registration.policy WhenReady)",
                waiting.join(", ")
            ),
        );
    }
    Conclusion::new(
        Registered,
        Status::True,
        Reason::Registered,
        format!("{} registered", registered.join(", ")),
    )
}

fn available_verdict(o: &Applied) -> Conclusion {
    let registered: Vec<_> = o
        .registrations
        .iter()
        .filter_map(|r| match r {
            Registration::Registered(n) => Some(n),
            _ => None,
        })
        .collect();
    if registered.len() != o.registrations.len() || registered.is_empty() {
        return Conclusion::new(
            Available,
            Status::Unknown,
            Reason::NotRegistered,
            "not every APIService is registered yet; see the Registered condition",
        );
    }
    if let Handshake::Untrusted(why) = &o.handshake {
        let names: Vec<&str> = registered.iter().map(|n| n.as_str()).collect();
        return Conclusion::new(
            Available,
            Status::False,
            Reason::TlsVerificationFailed,
            format!(
                "{}: {} (the aggregator's availability check does not verify TLS, but every request through it does)",
                names.join(", "),
                diagnose_unavailable(
                    Reason::TlsVerificationFailed.as_str(),
                    why,
                    &o.subject.names,
                    o.subject.port
                )
            ),
        );
    }
    for (name, api_service) in &o.api_services {
        let condition = api_service.as_ref().and_then(|a| a.available());
        match condition {
            Some(c) if c.status == "True" => {}
            Some(c) => {
                let reason = c.reason.clone().unwrap_or_else(|| "Unavailable".into());
                let message = c.message.clone().unwrap_or_default();
                let diagnosis = match o.backend_probe() {
                    Some(probe) => diagnose_external(&message, &probe.target),
                    None => {
                        diagnose_unavailable(&reason, &message, &o.subject.names, o.subject.port)
                    }
                };
                return Conclusion::new(
                    Available,
                    Status::False,
                    Reason::parse(&reason),
                    format!("{name}: {diagnosis}"),
                );
            }
            None => {
                return Conclusion::new(
                    Available,
                    Status::Unknown,
                    Reason::WaitingForAggregator,
                    format!("{name}: the aggregator has not checked it yet"),
                );
            }
        }
    }
    Conclusion::new(
        Available,
        Status::True,
        Reason::Passed,
        "every APIService is available through the aggregator",
    )
}

fn api_service_states(o: &Applied) -> Vec<ApiServiceState> {
    o.api_services
        .iter()
        .map(|(name, api_service)| {
            let condition = api_service.as_ref().and_then(|a| a.available());
            ApiServiceState {
                name: name.to_string(),
                available: condition
                    .map(|c| c.status.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                reason: condition.and_then(|c| c.reason.clone()).unwrap_or_else(|| {
                    if api_service.is_none() {
                        Reason::NotRegistered.as_str().to_string()
                    } else {
                        String::new()
                    }
                }),
                message: condition
                    .and_then(|c| c.message.clone())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn certificate_state(outcome: &CertificateOutcome) -> Option<CertificateState> {
    if let CertificateOutcome::External { ca } = outcome {
        let not_after = ca.as_ref()?.1?;
        return Some(CertificateState {
            not_after: Time(not_after),
            renewal_time: None,
            ca_not_after: Some(Time(not_after)),
        });
    }
    match outcome {
        CertificateOutcome::Valid {
            serving,
            ca_not_after,
            ..
        } => Some(CertificateState {
            not_after: Time(serving.not_after),
            renewal_time: Some(Time(serving.renewal_time())),
            ca_not_after: ca_not_after.map(Time),
        }),
        CertificateOutcome::Insecure { serving } => Some(CertificateState {
            not_after: Time(serving.not_after),
            renewal_time: Some(Time(serving.renewal_time())),
            ca_not_after: None,
        }),
        _ => None,
    }
}
