//! The status rules, one test per verdict. Each fixture starts from a healthy server and
//! changes one thing.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::apiservice::{APIService, APIServiceCondition, APIServiceSpec, APIServiceStatus};
use crate::fixtures::{names, v1};
use crate::names::ApiServiceName;
use crate::outcome::{ClampedPriority, Subject, Workload};
use crate::tls::CertInfo;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).expect("timestamp")
}

fn deployment(generation: i64, observed: i64, ready: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            generation: Some(generation),
            ..ObjectMeta::default()
        },
        status: Some(DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(1),
            ready_replicas: Some(ready),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    }
}

fn api_service(available: Option<(&str, &str, &str)>) -> APIService {
    APIService {
        metadata: ObjectMeta::default(),
        spec: APIServiceSpec::default(),
        status: available.map(|(status, reason, message)| APIServiceStatus {
            conditions: vec![APIServiceCondition {
                type_: "Available".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: None,
            }],
        }),
    }
}

fn valid_certificate() -> CertificateOutcome {
    CertificateOutcome::Valid {
        serving: CertInfo {
            not_before: at(0),
            not_after: at(3_000),
            dns_names: vec!["srv.ns.svc".into()],
            is_ca: false,
            fingerprint: String::new(),
        },
        ca_not_after: Some(at(9_000)),
        previous_trusted: false,
    }
}

/// Everything a healthy, registered, available server shows.
struct Fixture {
    spec_replicas: i32,
    deployment: Option<Deployment>,
    certificate: CertificateOutcome,
    registrations: Vec<Registration>,
    api_services: Vec<(ApiServiceName, Option<APIService>)>,
    handshake: Handshake,
    refusal: Option<Refusal>,
    external_backend: bool,
    clamped: Vec<ClampedPriority>,
}

impl Fixture {
    fn healthy() -> Self {
        Self {
            spec_replicas: 1,
            deployment: Some(deployment(1, 1, 1)),
            certificate: valid_certificate(),
            registrations: vec![Registration::Registered(v1())],
            api_services: vec![(v1(), Some(api_service(Some(("True", "Passed", "")))))],
            handshake: Handshake::Trusted,
            refusal: None,
            external_backend: false,
            clamped: Vec::new(),
        }
    }

    fn verdict(&self, type_: ConditionType) -> Conclusion {
        self.find(type_)
            .expect("every condition type has a verdict")
    }

    fn find(&self, type_: ConditionType) -> Option<Conclusion> {
        conclusions(&self.applied())
            .into_iter()
            .find(|v| v.type_ == type_)
    }

    fn applied(&self) -> Applied {
        let workload = match self.external_backend {
            true => Workload::External { probe: None },
            false => Workload::Pods {
                deployment: self.deployment.clone(),
            },
        };
        Applied {
            subject: Subject {
                names: names(),
                generation: Some(3),
                replicas: self.spec_replicas,
                port: 8443,
                clamped: self.clamped.clone(),
            },
            refusal: self.refusal.clone(),
            workload,
            service: None,
            certificate: self.certificate.clone(),
            registrations: self.registrations.clone(),
            api_services: self.api_services.clone(),
            handshake: self.handshake.clone(),
            restored: Vec::new(),
            tls_events: Vec::new(),
            tls_due: None,
            rotating: false,
        }
    }
}

fn assert_verdict(v: &Conclusion, status: Status, reason: Reason, message_has: &str) {
    assert_eq!((v.status, &v.reason), (status, &reason), "{v:?}");
    assert!(
        v.message.contains(message_has),
        "{:?} lacks {message_has:?}",
        v.message
    );
}

#[test]
fn a_healthy_server_is_ready() {
    let f = Fixture::healthy();
    assert_verdict(
        &f.verdict(ConditionType::Ready),
        Status::True,
        Reason::Ready,
        "available",
    );
    assert_verdict(
        &f.verdict(ConditionType::DeploymentAvailable),
        Status::True,
        Reason::MinimumReplicasAvailable,
        "1/1 replicas are ready",
    );
    assert_verdict(
        &f.verdict(ConditionType::CertificateReady),
        Status::True,
        Reason::Valid,
        "srv.ns.svc",
    );
    assert_verdict(
        &f.verdict(ConditionType::Registered),
        Status::True,
        Reason::Registered,
        "v1.g.example.com registered",
    );
    assert_verdict(
        &f.verdict(ConditionType::Available),
        Status::True,
        Reason::Passed,
        "every APIService",
    );
}

#[test]
fn deployment_scaled_to_zero_says_how_to_serve_again() {
    let f = Fixture {
        spec_replicas: 0,
        ..Fixture::healthy()
    };
    assert_verdict(
        &f.verdict(ConditionType::DeploymentAvailable),
        Status::False,
        Reason::ScaledToZero,
        "set replicas to 1 or more",
    );
}

#[test]
fn deployment_not_yet_observed_is_progressing() {
    let f = Fixture {
        deployment: Some(deployment(2, 1, 0)),
        ..Fixture::healthy()
    };
    assert_verdict(
        &f.verdict(ConditionType::DeploymentAvailable),
        Status::False,
        Reason::Progressing,
        "kubectl get pods -n ns -l app.kubernetes.io/instance=srv",
    );
}

#[test]
fn a_missing_deployment_is_not_called_a_rollout() {
    let f = Fixture {
        deployment: None,
        ..Fixture::healthy()
    };
    let verdict = f.verdict(ConditionType::DeploymentAvailable);
    assert_verdict(
        &verdict,
        Status::False,
        Reason::Progressing,
        "does not exist yet; the other conditions say what stops it",
    );
    assert!(!verdict.message.contains("rolled out"), "{verdict:?}");
}

#[test]
fn deployment_without_ready_replicas_points_at_the_readiness_probe() {
    let f = Fixture {
        deployment: Some(deployment(1, 1, 0)),
        ..Fixture::healthy()
    };
    assert_verdict(
        &f.verdict(ConditionType::DeploymentAvailable),
        Status::False,
        Reason::NoReadyReplicas,
        "readiness probe (HTTPS GET /readyz on port 8443)",
    );
}

#[test]
fn certificate_verdicts_follow_the_tls_outcome() {
    let serving = match valid_certificate() {
        CertificateOutcome::Valid { serving, .. } => serving,
        _ => unreachable!(),
    };
    let cases = [
        (
            CertificateOutcome::Insecure { serving },
            Status::True,
            Reason::InsecureSkipVerify,
            "use Managed in production",
        ),
        (
            CertificateOutcome::SecretInvalid("Secret ns/x does not exist".into()),
            Status::False,
            Reason::SecretInvalid,
            "Secret ns/x does not exist",
        ),
        (
            CertificateOutcome::Expired("tls.crt expired".into()),
            Status::False,
            Reason::Expired,
            "tls.crt expired",
        ),
    ];
    for (certificate, status, reason, message) in cases {
        let f = Fixture {
            certificate,
            ..Fixture::healthy()
        };
        assert_verdict(
            &f.verdict(ConditionType::CertificateReady),
            status,
            reason,
            message,
        );
    }
}

#[test]
fn registration_reports_the_most_pressing_problem_first() {
    let conflict = Registration::Conflict {
        name: v1(),
        reason: "already held by ExtensionServer a/b".into(),
    };
    // In order of precedence: each row beats every row below it.
    let rows = [
        (
            conflict,
            Reason::Conflict,
            "already held by ExtensionServer a/b",
        ),
        (
            Registration::ScaledToZero(v1()),
            Reason::ScaledToZero,
            "scale up to register again",
        ),
        (
            Registration::UnregisteredUnavailable(v1()),
            Reason::Unregistered,
            "registration.unregisterAfter",
        ),
        (
            Registration::WaitingForCertificate(v1()),
            Reason::WaitingForCertificate,
            "see CertificateReady",
        ),
        (
            Registration::WaitingForReadyReplicas(v1()),
            Reason::WaitingForReadyReplicas,
            "once a replica is ready",
        ),
    ];
    for (i, (registration, reason, message)) in rows.iter().enumerate() {
        let mut registrations = vec![registration.clone()];
        registrations.extend(rows[i + 1..].iter().map(|(r, _, _)| r.clone()));
        registrations.push(Registration::Registered(v1()));
        let f = Fixture {
            registrations,
            ..Fixture::healthy()
        };
        assert_verdict(
            &f.verdict(ConditionType::Registered),
            Status::False,
            reason.clone(),
            message,
        );
        assert_verdict(
            &f.verdict(ConditionType::Available),
            Status::Unknown,
            Reason::NotRegistered,
            "see the Registered condition",
        );
    }
}

#[test]
fn available_copies_the_aggregators_reason_and_says_what_to_do() {
    let f = Fixture {
        api_services: vec![(
            v1(),
            Some(api_service(Some((
                "False",
                "FailedDiscoveryCheck",
                "dial tcp 127.64.0.9:443: connect: connection refused",
            )))),
        )],
        ..Fixture::healthy()
    };
    let available = f.verdict(ConditionType::Available);
    assert_verdict(
        &available,
        Status::False,
        Reason::Aggregator("FailedDiscoveryCheck".into()),
        "listens on spec.port (8443)",
    );
    assert!(available.message.starts_with("v1.g.example.com: "));
    let ready = f.verdict(ConditionType::Ready);
    assert_eq!(
        ready.reason,
        Reason::Aggregator("FailedDiscoveryCheck".into())
    );
    assert!(ready.message.starts_with("Available: v1.g.example.com"));
}

#[test]
fn available_waits_for_the_aggregators_first_check() {
    let f = Fixture {
        api_services: vec![(v1(), Some(api_service(None)))],
        ..Fixture::healthy()
    };
    assert_verdict(
        &f.verdict(ConditionType::Available),
        Status::Unknown,
        Reason::WaitingForAggregator,
        "has not checked it yet",
    );
}

#[test]
fn an_untrusted_certificate_overrides_the_aggregators_available() {
    let f = Fixture {
        handshake: Handshake::Untrusted("x509: certificate signed by unknown authority".into()),
        ..Fixture::healthy()
    };
    assert_verdict(
        &f.verdict(ConditionType::Available),
        Status::False,
        Reason::TlsVerificationFailed,
        "do not serve the certificate from Secret srv-tls",
    );
    let inconclusive = Fixture {
        handshake: Handshake::Inconclusive,
        ..Fixture::healthy()
    };
    assert!(inconclusive.verdict(ConditionType::Available).is_true());
}

#[test]
fn compute_keeps_transition_times_and_records_the_generation() {
    let applied = Fixture::healthy().applied();
    let first = compute(&applied, None, Time(at(100)));
    let again = compute(&applied, Some(&first), Time(at(200)));
    assert_eq!(first, again, "the same inputs give the same status");
    assert_eq!(again.observed_generation, Some(3));
    assert!(
        again
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    assert!(
        again
            .conditions
            .iter()
            .all(|c| c.last_transition_time == Time(at(100)))
    );
    assert_eq!((again.replicas, again.ready_replicas), (1, 1));
    let certificate = again.certificate.expect("certificate state");
    assert_eq!(certificate.not_after, Time(at(3_000)));
    assert_eq!(certificate.renewal_time, Some(Time(at(2_000))));
    assert_eq!(again.api_services[0].available, "True");
}

#[test]
fn a_refused_server_points_every_condition_at_registered() {
    for external_backend in [false, true] {
        let f = Fixture {
            refusal: Some(Refusal {
                reason: Reason::NotGranted,
                message: "namespace ns has no grant for group g.example.com".into(),
                keep_registered: false,
            }),
            external_backend,
            ..Fixture::healthy()
        };
        assert_verdict(
            &f.verdict(ConditionType::Registered),
            Status::False,
            Reason::NotGranted,
            "has no grant",
        );
        // An external server has no Deployment: its workload condition is BackendReachable.
        let (workload, absent) = match external_backend {
            true => (
                ConditionType::BackendReachable,
                ConditionType::DeploymentAvailable,
            ),
            false => (
                ConditionType::DeploymentAvailable,
                ConditionType::BackendReachable,
            ),
        };
        for type_ in [
            workload,
            ConditionType::CertificateReady,
            ConditionType::Available,
        ] {
            assert_verdict(
                &f.verdict(type_),
                Status::Unknown,
                Reason::NotGranted,
                "see Registered",
            );
        }
        assert_eq!(f.find(absent), None, "external: {external_backend}");
    }
}

#[test]
fn an_external_server_not_yet_dialled_reports_its_backend() {
    let f = Fixture {
        external_backend: true,
        deployment: None,
        certificate: CertificateOutcome::SecretInvalid("Secret ns/ca has no ca.crt".into()),
        ..Fixture::healthy()
    };
    assert_verdict(
        &f.verdict(ConditionType::BackendReachable),
        Status::Unknown,
        Reason::WaitingForCertificate,
        "see CertificateReady",
    );
    assert_eq!(f.find(ConditionType::DeploymentAvailable), None);
}

#[test]
fn an_adoption_waiting_for_its_backend_says_the_old_one_keeps_serving() {
    let adopting = Fixture {
        registrations: vec![Registration::WaitingForBackend(v1())],
        ..Fixture::healthy()
    };
    assert_verdict(
        &adopting.verdict(ConditionType::Registered),
        Status::False,
        Reason::WaitingForReadyReplicas,
        "keeps its current backend",
    );
    assert_eq!(
        adopting.verdict(ConditionType::Available).status,
        Status::Unknown
    );
}

#[test]
fn a_lowered_group_priority_is_said_in_registered() {
    let mut fixture = Fixture::healthy();
    fixture.clamped = vec![ClampedPriority {
        group: "hijack.example.com".into(),
        asked: 20000,
        cap: 1000,
    }];
    let registered = fixture.verdict(ConditionType::Registered);
    assert!(registered.is_true(), "{registered:?}");
    assert!(
        registered.message.contains(
            "group hijack.example.com is registered at groupPriorityMinimum 1000, not 20000"
        ),
        "{}",
        registered.message
    );
}
