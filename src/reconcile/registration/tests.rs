//! The registration rules: who may hold an APIService, and what each gate does to it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::apiservice::{APIServiceCondition, APIServiceSpec, APIServiceStatus, ServiceReference};
use crate::crd::ExtensionServer;
use crate::fixtures::{names, v1};
use crate::names::{OWNER_ANNOTATION, ServerNames};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).expect("timestamp")
}

/// An APIService with a Service (not Local), owned by `owner` if given.
fn external(owner: Option<&str>) -> APIService {
    APIService {
        metadata: ObjectMeta {
            name: Some(v1().to_string()),
            annotations: owner.map(|o| BTreeMap::from([(OWNER_ANNOTATION.into(), o.into())])),
            labels: owner
                .and_then(ServerNames::from_owner_key)
                .map(|n| n.cluster_labels()),
            ..ObjectMeta::default()
        },
        spec: APIServiceSpec {
            service: Some(ServiceReference::default()),
            ..APIServiceSpec::default()
        },
        status: None,
    }
}

fn local() -> APIService {
    APIService {
        spec: APIServiceSpec::default(),
        ..external(None)
    }
}

fn server(yaml_spec: &str) -> ExtensionServer {
    serde_yaml::from_str(&format!(
        "apiVersion: aggregation.dev/v1alpha1\nkind: ExtensionServer\nmetadata: {{name: srv, namespace: ns}}\nspec: {yaml_spec}\n"
    ))
    .expect("server")
}

const GATES: [Gate; 7] = [
    Gate::Allowed,
    Gate::WaitingForReadyReplicas,
    Gate::WaitingForCertificate,
    Gate::ScaledToZero,
    Gate::HeldBack,
    Gate::Frozen,
    Gate::Screened,
];

#[test]
fn holders_are_told_apart_by_locality_owner_annotation_and_labels() {
    assert_eq!(holder(&local(), &names()), Holder::BuiltIn);
    assert_eq!(holder(&external(Some("ns/srv")), &names()), Holder::Us);
    // Our annotation copied onto a hand-made APIService claims nothing without our labels.
    let mut copied = external(Some("ns/srv"));
    copied.metadata.labels = None;
    assert_eq!(holder(&copied, &names()), Holder::Unmanaged);
    assert_eq!(
        holder(&external(Some("other/srv")), &names()),
        Holder::OtherServer("other/srv".into())
    );
    assert_eq!(holder(&external(None), &names()), Holder::Unmanaged);
}

#[test]
fn a_free_name_is_created_only_when_the_gate_is_open() {
    for gate in GATES {
        let decision = decide(&v1(), None, &names(), gate, false, false);
        match gate {
            Gate::Allowed => assert_eq!(decision, Decision::Create),
            _ => assert!(
                matches!(decision, Decision::Report(_)),
                "{gate:?}: {decision:?}"
            ),
        }
    }
    assert_eq!(
        decide(
            &v1(),
            None,
            &names(),
            Gate::WaitingForReadyReplicas,
            false,
            false
        ),
        Decision::Report(Registration::WaitingForReadyReplicas(v1()))
    );
}

#[test]
fn ours_is_kept_while_allowed_and_removed_when_the_gate_closes_for_good() {
    let ours = external(Some("ns/srv"));
    let cases = [
        (Gate::Allowed, Decision::Apply),
        (Gate::WaitingForReadyReplicas, Decision::Apply),
        (Gate::WaitingForCertificate, Decision::Apply),
        (Gate::Frozen, Decision::Apply),
        (
            Gate::ScaledToZero,
            Decision::Delete(Registration::ScaledToZero(v1())),
        ),
        (
            Gate::HeldBack,
            Decision::Delete(Registration::UnregisteredUnavailable(v1())),
        ),
        (
            Gate::Screened,
            Decision::Delete(Registration::Refused(v1())),
        ),
    ];
    for (gate, want) in cases {
        assert_eq!(
            decide(&v1(), Some(&ours), &names(), gate, false, false),
            want,
            "{gate:?}"
        );
    }
    assert_eq!(
        decide(&v1(), Some(&ours), &names(), Gate::Allowed, false, true),
        Decision::Delete(Registration::UnregisteredUnavailable(v1())),
        "unavailable longer than unregisterAfter"
    );
}

#[test]
fn what_is_not_ours_is_never_touched() {
    for gate in GATES {
        for adopt in [false, true] {
            for theirs in [local(), external(Some("other/srv"))] {
                let decision = decide(&v1(), Some(&theirs), &names(), gate, adopt, true);
                assert!(
                    matches!(decision, Decision::Report(Registration::Conflict { .. })),
                    "{gate:?} adopt={adopt}: {decision:?}"
                );
            }
        }
    }
    let unmanaged = external(None);
    let refused = decide(
        &v1(),
        Some(&unmanaged),
        &names(),
        Gate::Allowed,
        false,
        false,
    );
    let Decision::Report(Registration::Conflict { reason, .. }) = refused else {
        panic!("unmanaged without adoption: {refused:?}");
    };
    assert!(reason.contains("registration.adoptExisting"), "{reason}");
    assert_eq!(
        decide(
            &v1(),
            Some(&unmanaged),
            &names(),
            Gate::Allowed,
            true,
            false
        ),
        Decision::Apply,
        "adoptExisting takes over an unmanaged, non-Local APIService"
    );
    assert_eq!(
        decide(
            &v1(),
            Some(&unmanaged),
            &names(),
            Gate::WaitingForReadyReplicas,
            true,
            false
        ),
        Decision::Report(Registration::WaitingForReadyReplicas(v1())),
        "the hand-made APIService keeps serving until a replica of ours is ready"
    );
}

fn gate_of(server: &ExtensionServer, held_back: bool, certificate: bool, ready: i32) -> Gate {
    let spec = &server.spec;
    gate(
        spec.replicas,
        &spec.registration.policy,
        held_back,
        certificate,
        ready,
    )
}

#[test]
fn the_gate_checks_hold_back_then_scale_then_certificate_then_readiness() {
    let basic = server("{group: g.example.com, versions: [{name: v1}], image: i}");
    assert_eq!(gate_of(&basic, false, true, 1), Gate::Allowed);
    assert_eq!(
        gate_of(&basic, false, true, 0),
        Gate::WaitingForReadyReplicas
    );
    assert_eq!(
        gate_of(&basic, false, false, 1),
        Gate::WaitingForCertificate
    );
    assert_eq!(gate_of(&basic, true, false, 0), Gate::HeldBack);
    let scaled = server("{group: g.example.com, versions: [{name: v1}], image: i, replicas: 0}");
    assert_eq!(gate_of(&scaled, false, false, 0), Gate::ScaledToZero);
    let always = server(
        "{group: g.example.com, versions: [{name: v1}], image: i, registration: {policy: Always}}",
    );
    assert_eq!(gate_of(&always, false, true, 0), Gate::Allowed);
}

#[test]
fn unregister_deadline_counts_from_the_last_transition_to_unavailable() {
    let mut api = external(Some("ns/srv"));
    let limit = Some(Duration::from_secs(60));
    assert_eq!(unavailable_until(&api, limit), None, "no condition yet");
    api.status = Some(APIServiceStatus {
        conditions: vec![APIServiceCondition {
            type_: "Available".into(),
            status: "False".into(),
            last_transition_time: Some(Time(at(1_000))),
            ..APIServiceCondition::default()
        }],
    });
    assert_eq!(unavailable_until(&api, limit), Some(at(1_060)));
    assert_eq!(unavailable_until(&api, None), None);
    assert!(!unavailable_too_long(&api, limit, at(1_059)));
    assert!(unavailable_too_long(&api, limit, at(1_060)));
    assert_eq!(
        unavailable_until(&api, Some(Duration::from_secs(u64::MAX))),
        None,
        "an absurd limit never overflows"
    );
}
