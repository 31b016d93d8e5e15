//! Property tests of status and the grant matcher: status is a function of its inputs (the
//! same observation gives the same status, and recomputing it later from its own result changes
//! nothing, so no write is needed), and grant parsing and matching never panic and agree with
//! their definitions. `cargo xtask chaos` runs many more cases than CI.
#![allow(clippy::unwrap_used)] // a failed case should fail loudly

use crate::support;

use std::collections::BTreeMap;

use extension_server_operator::apiservice::{
    APIService, APIServiceCondition, APIServiceSpec, APIServiceStatus,
};
use extension_server_operator::names::{ApiServiceName, Group, ServerNames, Version};
use extension_server_operator::outcome::{
    Applied, CertificateOutcome, Registration, Subject, Workload,
};
use extension_server_operator::probe::Handshake;
use extension_server_operator::status;
use extension_server_operator::tls::CertInfo;
use extension_server_operator::trust::grants::{Allowance, Grants, group_matches};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

/// The inputs of one status computation, drawn small.
#[derive(Debug, Clone)]
struct Inputs {
    generation: i64,
    spec_replicas: i32,
    deployment: Option<(i64, i32)>,
    certificate: u8,
    registration: u8,
    available: Option<(bool, String)>,
    handshake: u8,
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        1i64..5,
        0i32..4,
        prop::option::of((0i64..5, 0i32..4)),
        0u8..5,
        0u8..7,
        prop::option::of((any::<bool>(), "[A-Za-z ]{0,20}")),
        0u8..3,
    )
        .prop_map(
            |(
                generation,
                spec_replicas,
                deployment,
                certificate,
                registration,
                available,
                handshake,
            )| {
                Inputs {
                    generation,
                    spec_replicas,
                    deployment,
                    certificate,
                    registration,
                    available,
                    handshake,
                }
            },
        )
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn certificate(kind: u8) -> CertificateOutcome {
    let serving = CertInfo {
        not_before: at(1_000),
        not_after: at(2_000_000_000),
        dns_names: vec!["srv.ns.svc".into()],
        is_ca: false,
        fingerprint: "ab".into(),
    };
    match kind {
        0 => CertificateOutcome::Valid {
            serving,
            ca_not_after: Some(at(2_100_000_000)),
            previous_trusted: false,
        },
        1 => CertificateOutcome::Insecure { serving },
        2 => CertificateOutcome::SecretInvalid("Secret srv-cert does not exist".into()),
        3 => CertificateOutcome::Expired("expired at 1970".into()),
        _ => CertificateOutcome::NotIssued,
    }
}

fn registration(kind: u8, name: &ApiServiceName) -> Registration {
    let name = name.clone();
    match kind {
        0 => Registration::Registered(name),
        1 => Registration::WaitingForReadyReplicas(name),
        2 => Registration::WaitingForCertificate(name),
        3 => Registration::ScaledToZero(name),
        4 => Registration::Conflict {
            name,
            reason: "held by someone else".into(),
        },
        5 => Registration::UnregisteredUnavailable(name),
        _ => Registration::Refused(name),
    }
}

fn deployment(generation: i64, ready: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            generation: Some(generation),
            ..ObjectMeta::default()
        },
        status: Some(DeploymentStatus {
            observed_generation: Some(generation),
            replicas: Some(ready),
            ready_replicas: Some(ready),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    }
}

fn api_service(available: &Option<(bool, String)>) -> APIService {
    APIService {
        metadata: ObjectMeta::default(),
        spec: APIServiceSpec::default(),
        status: available.as_ref().map(|(up, message)| APIServiceStatus {
            conditions: vec![APIServiceCondition {
                type_: "Available".into(),
                status: if *up { "True" } else { "False" }.into(),
                reason: Some(
                    if *up {
                        "Passed"
                    } else {
                        "FailedDiscoveryCheck"
                    }
                    .into(),
                ),
                message: Some(message.clone()),
                last_transition_time: None,
            }],
        }),
    }
}

/// Computes the status of `inputs` at `now`, on top of `previous`.
fn compute(
    inputs: &Inputs,
    previous: Option<&extension_server_operator::crd::ExtensionServerStatus>,
    now: i64,
) -> extension_server_operator::crd::ExtensionServerStatus {
    let names = ServerNames {
        name: "srv".into(),
        namespace: "ns".into(),
    };
    let name = ApiServiceName::new(&Version("v1".into()), &Group("g.example.com".into()));
    let deployment = inputs.deployment.map(|(g, ready)| deployment(g, ready));
    let certificate = certificate(inputs.certificate);
    let registrations = vec![registration(inputs.registration, &name)];
    let api_services = vec![(name, Some(api_service(&inputs.available)))];
    let handshake = match inputs.handshake {
        0 => Handshake::Trusted,
        1 => Handshake::Untrusted("signed by an unknown authority".into()),
        _ => Handshake::Inconclusive,
    };
    let applied = Applied {
        subject: Subject {
            names,
            generation: Some(inputs.generation),
            replicas: inputs.spec_replicas,
            port: 443,
            clamped: Vec::new(),
        },
        refusal: None,
        workload: Workload::Pods { deployment },
        service: None,
        certificate,
        registrations,
        api_services,
        handshake,
        restored: Vec::new(),
        tls_events: Vec::new(),
        tls_due: None,
        rotating: false,
    };
    status::compute(&applied, previous, Time(at(now)))
}

proptest! {
    #![proptest_config(support::chaos::property_config(256, 125_000))]

    #[test]
    fn status_is_a_function_of_its_inputs(inputs in inputs(), later in 1i64..100_000) {
        support::chaos::count_case("properties_status", "status_is_a_function_of_its_inputs");
        let first = compute(&inputs, None, 1_000_000);
        prop_assert_eq!(&first, &compute(&inputs.clone(), None, 1_000_000));
        // Recomputed later from its own result: nothing changes, so nothing is written.
        let again = compute(&inputs, Some(&first), 1_000_000 + later);
        prop_assert_eq!(&first, &again);
        for condition in &first.conditions {
            prop_assert!(!condition.reason.is_empty(), "{condition:?}");
            prop_assert_eq!(condition.observed_generation, Some(inputs.generation));
            if condition.status != "True" {
                prop_assert!(!condition.message.is_empty(), "{condition:?}");
            }
        }
        let ready = first.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        let others_true = first
            .conditions
            .iter()
            .filter(|c| c.type_ != "Ready")
            .all(|c| c.status == "True");
        prop_assert_eq!(ready.status == "True", others_true, "{:?}", first.conditions);
    }

    #[test]
    fn grants_parse_without_panicking(text in "(grants:\\n)?(- |  )?(namespaces|groups|adoptExisting|namespaceSelector|matchLabels)?: ?[\\[\\]a-z*.,{}: -]{0,40}\\n?") {
        support::chaos::count_case("properties_status", "grants_parse_without_panicking");
        let _ = Grants::parse(&text);
    }

    #[test]
    fn a_wildcard_matches_exactly_the_groups_under_its_suffix(
        head in "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
        suffix in "[a-z]{1,8}\\.[a-z]{2,5}",
        other in "[a-z.]{0,20}",
    ) {
        support::chaos::count_case("properties_status", "a_wildcard_matches_exactly_the_groups_under_its_suffix");
        let pattern = format!("*.{suffix}");
        let under = format!("{head}.{suffix}");
        prop_assert!(group_matches(&pattern, &under));
        prop_assert!(!group_matches(&pattern, &suffix));
        // Under the suffix: something, a dot, then the suffix.
        let dotted = format!(".{suffix}");
        let expected = other.ends_with(&dotted) && other.len() > dotted.len();
        prop_assert_eq!(group_matches(&pattern, &other), expected);
    }

    #[test]
    fn another_grant_never_takes_a_claim_away(
        namespace in "[a-z]{1,6}",
        group in "[a-z]{1,6}\\.example\\.com",
        first in "(\\*\\.)?[a-z]{1,6}\\.example\\.com",
        second in "(\\*\\.)?[a-z]{1,6}\\.example\\.com",
    ) {
        support::chaos::count_case("properties_status", "another_grant_never_takes_a_claim_away");
        let grants = |patterns: &[&str]| {
            let entries: Vec<String> = patterns
                .iter()
                .map(|p| format!("  - namespaces: [{namespace}]\n    groups: [\"{p}\"]\n"))
                .collect();
            Grants::parse(&format!("grants:\n{}", entries.concat())).unwrap()
        };
        let labels = BTreeMap::new();
        let one = grants(&[&first]).allowance(&namespace, &labels, &group);
        let two = grants(&[&first, &second]).allowance(&namespace, &labels, &group);
        if one != Allowance::NotGranted {
            prop_assert_ne!(two, Allowance::NotGranted);
        }
    }
}
