//! The trust rules, one test each.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::apiservice::{APIServiceSpec, ServiceReference};
use crate::names::{Group, OWNER_ANNOTATION, ServerNames, Version};

fn names(namespace: &str) -> ServerNames {
    ServerNames {
        name: "srv".into(),
        namespace: namespace.into(),
    }
}

fn requested(group: &str) -> Vec<ApiServiceName> {
    vec![ApiServiceName::new(
        &Version("v1".into()),
        &Group(group.into()),
    )]
}

fn api_service(name: &str, group: &str, local: bool, owner: Option<&str>) -> APIService {
    APIService {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: owner.map(|o| BTreeMap::from([(OWNER_ANNOTATION.into(), o.into())])),
            labels: owner
                .and_then(ServerNames::from_owner_key)
                .map(|n| n.cluster_labels()),
            ..ObjectMeta::default()
        },
        spec: APIServiceSpec {
            group: Some(group.into()),
            service: (!local).then(ServiceReference::default),
            ..APIServiceSpec::default()
        },
        status: None,
    }
}

fn check_with(
    namespace: &str,
    group: &str,
    adopt: bool,
    grants: Option<&Grants>,
    apis: &[APIService],
    crds: &[&str],
) -> Claim {
    check_among(namespace, group, adopt, grants, apis, crds, &[])
}

fn check_among(
    namespace: &str,
    group: &str,
    adopt: bool,
    grants: Option<&Grants>,
    apis: &[APIService],
    crds: &[&str],
    claimants: &[Claimant],
) -> Claim {
    let labels = BTreeMap::new();
    let apis: Vec<std::sync::Arc<APIService>> =
        apis.iter().cloned().map(std::sync::Arc::new).collect();
    let crds: Vec<String> = crds.iter().map(|c| c.to_string()).collect();
    check(
        &names(namespace),
        group,
        &requested(group),
        adopt,
        Facts {
            grants,
            namespace_labels: &labels,
            api_services: &apis,
            crd_names: &crds,
            apiserver_addresses: &[],
            claimants,
        },
    )
}

fn reason(claim: &Claim) -> Option<&Reason> {
    match claim {
        Claim::Refused(refusal) => Some(&refusal.reason),
        Claim::Allowed { .. } => None,
    }
}

#[test]
fn without_grants_any_unprotected_group_is_allowed_but_adoption_is_off() {
    let claim = check_with("a", "my.custom.api", false, None, &[], &[]);
    assert_eq!(claim, Claim::Allowed { adopt: false });
    let unmanaged = [api_service(
        "v1.my.custom.api",
        "my.custom.api",
        false,
        None,
    )];
    let adopt = check_with("a", "my.custom.api", true, None, &unmanaged, &[]);
    assert_eq!(reason(&adopt), Some(&Reason::AdoptionNotAllowed));
    let nothing_to_adopt = check_with("a", "my.custom.api", true, None, &[], &[]);
    assert_eq!(nothing_to_adopt, Claim::Allowed { adopt: false });
}

#[test]
fn protected_groups_are_refused_for_new_versions_too() {
    let builtin = [api_service(
        "v1.rbac.example.com",
        "rbac.example.com",
        true,
        None,
    )];
    for (group, crds) in [
        ("rbac.authorization.k8s.io", &[][..]),
        ("metrics.k8s.io", &[][..]),
        ("rbac.example.com", &[][..]),
        ("aggregation.dev", &["extensionservers.aggregation.dev"][..]),
    ] {
        let claim = check_with("a", group, false, None, &builtin, crds);
        assert_eq!(reason(&claim), Some(&Reason::ProtectedGroup), "{group}");
    }
}

#[test]
fn a_group_protected_after_registration_keeps_its_apiservices() {
    let ours = [api_service(
        "v1.late.example.com",
        "late.example.com",
        false,
        Some("a/srv"),
    )];
    let Claim::Refused(refusal) = check_with(
        "a",
        "late.example.com",
        false,
        None,
        &ours,
        &["things.late.example.com"],
    ) else {
        panic!("a CRD's group is protected");
    };
    assert!(refusal.keep_registered);
    assert!(
        refusal.message.contains("registered it first"),
        "{}",
        refusal.message
    );
    let Claim::Refused(fresh) = check_with(
        "a",
        "late.example.com",
        false,
        None,
        &[],
        &["things.late.example.com"],
    ) else {
        panic!("a CRD's group is protected");
    };
    assert!(!fresh.keep_registered);
}

#[test]
fn grants_decide_namespaces_groups_and_adoption() {
    let grants = Grants::parse(
        "grants: [{namespaces: [team-a], groups: ['*.team-a.io']}, {namespaces: [ops], groups: [m.ops.io], adoptExisting: true}]",
    )
    .expect("grants");
    let allowed = check_with("team-a", "x.team-a.io", false, Some(&grants), &[], &[]);
    assert_eq!(allowed, Claim::Allowed { adopt: false });
    let other = check_with("team-b", "x.team-a.io", false, Some(&grants), &[], &[]);
    assert_eq!(reason(&other), Some(&Reason::NotGranted));
    let unmanaged = [api_service("v1.m.ops.io", "m.ops.io", false, None)];
    let adopt = check_with("ops", "m.ops.io", true, Some(&grants), &unmanaged, &[]);
    assert_eq!(adopt, Claim::Allowed { adopt: true });
    let not_for_team_a = [api_service("v1.x.team-a.io", "x.team-a.io", false, None)];
    let refused = check_with(
        "team-a",
        "x.team-a.io",
        true,
        Some(&grants),
        &not_for_team_a,
        &[],
    );
    assert_eq!(reason(&refused), Some(&Reason::AdoptionNotAllowed));
}

#[test]
fn reserved_groups_open_only_to_exact_grants() {
    let grants = Grants::parse(
        "grants: [{namespaces: [monitoring], groups: [custom.metrics.k8s.io, metrics.k8s.io, rbac.authorization.k8s.io, crd.k8s.io]}, {namespaces: [team-a], groups: ['*.k8s.io', '*.metrics.k8s.io', '*.kubernetes.io']}]",
    )
    .expect("grants");
    let claim = |namespace: &str, group: &str, apis: &[APIService], crds: &[&str]| {
        check_with(namespace, group, false, Some(&grants), apis, crds)
    };
    for group in ["custom.metrics.k8s.io", "metrics.k8s.io"] {
        assert_eq!(
            claim("monitoring", group, &[], &[]),
            Claim::Allowed { adopt: false }
        );
        assert_eq!(
            reason(&claim("team-a", group, &[], &[])),
            Some(&Reason::ProtectedGroup),
            "no wildcard opens {group}"
        );
        assert_eq!(
            reason(&check_with("monitoring", group, false, None, &[], &[])),
            Some(&Reason::ProtectedGroup),
            "without grants {group} stays reserved"
        );
    }
    let local = [api_service(
        "v1.rbac.authorization.k8s.io",
        "rbac.authorization.k8s.io",
        true,
        None,
    )];
    let Claim::Refused(builtin) = claim("monitoring", "rbac.authorization.k8s.io", &local, &[])
    else {
        panic!("a group kube-apiserver serves stays refused under an exact grant");
    };
    assert!(builtin.message.contains("Local"), "{}", builtin.message);
    assert_eq!(
        reason(&claim(
            "monitoring",
            "crd.k8s.io",
            &[],
            &["widgets.crd.k8s.io"]
        )),
        Some(&Reason::ProtectedGroup),
        "a group a CRD serves stays refused under an exact grant"
    );
}

#[test]
fn a_reserved_group_has_one_holder() {
    let grants = Grants::parse(
        "grants: [{namespaces: [monitoring], groups: [custom.metrics.k8s.io], adoptExisting: true}]",
    )
    .expect("grants");
    let group = "custom.metrics.k8s.io";
    let claim = |apis: &[APIService], adopt: bool| {
        check_with("monitoring", group, adopt, Some(&grants), apis, &[])
    };
    let other = [api_service(
        "v1beta2.custom.metrics.k8s.io",
        group,
        false,
        Some("keda/keda-metrics"),
    )];
    let Claim::Refused(refusal) = claim(&other, false) else {
        panic!("another server holds part of the group");
    };
    assert_eq!(refusal.reason, Reason::Conflict);
    assert!(
        refusal
            .message
            .contains("an ExtensionServer in another namespace holds group")
            && !refusal.message.contains("keda"),
        "another namespace's server is not named: {}",
        refusal.message
    );
    assert!(!refusal.keep_registered);
    let unmanaged_other_version = [api_service(
        "v1beta2.custom.metrics.k8s.io",
        group,
        false,
        None,
    )];
    assert_eq!(
        reason(&claim(&unmanaged_other_version, true)),
        Some(&Reason::Conflict),
        "an unmanaged APIService of another version keeps the group from a second holder"
    );
    let unmanaged_requested = [api_service("v1.custom.metrics.k8s.io", group, false, None)];
    assert_eq!(
        claim(&unmanaged_requested, true),
        Claim::Allowed { adopt: true },
        "a requested unmanaged APIService is adopted"
    );
    let ours_and_theirs = [
        api_service(
            "v1.custom.metrics.k8s.io",
            group,
            false,
            Some("monitoring/srv"),
        ),
        other[0].clone(),
    ];
    let Claim::Refused(frozen) = claim(&ours_and_theirs, false) else {
        panic!("a second holder appeared");
    };
    assert!(
        frozen.keep_registered,
        "what this server holds stays registered"
    );
}

#[test]
fn a_shadowed_registration_is_removed_unless_a_grant_keeps_it() {
    let ours = [api_service(
        "v1.late.example.com",
        "late.example.com",
        false,
        Some("a/srv"),
    )];
    let crds = ["things.late.example.com"];
    let keep = |grants: &str| {
        let grants = Grants::parse(grants).expect("grants");
        match check_with("a", "late.example.com", false, Some(&grants), &ours, &crds) {
            Claim::Refused(refusal) => (refusal.reason, refusal.keep_registered),
            Claim::Allowed { .. } => panic!("a CRD's group is protected"),
        }
    };
    assert_eq!(
        keep("grants: [{namespaces: [a], groups: ['*.example.com']}]"),
        (Reason::ProtectedGroup, false),
        "the CRD gets the group"
    );
    assert_eq!(
        keep("grants: [{namespaces: [a], groups: ['*.example.com'], keepWhenShadowed: true}]"),
        (Reason::ProtectedGroup, true),
        "an admin keeps the registration"
    );
    assert_eq!(
        keep("grants: [{namespaces: [b], groups: ['*.example.com'], keepWhenShadowed: true}]"),
        (Reason::ProtectedGroup, false),
        "another namespace's grant keeps nothing here"
    );
}

#[test]
fn any_group_has_one_holder() {
    let group = "held.example.com";
    let theirs = [api_service(
        "v1.held.example.com",
        group,
        false,
        Some("b/holder"),
    )];
    let version_two = vec![ApiServiceName::new(
        &Version("v2".into()),
        &Group(group.into()),
    )];
    let labels = BTreeMap::new();
    let apis: Vec<std::sync::Arc<APIService>> =
        theirs.iter().cloned().map(std::sync::Arc::new).collect();
    let claim = check(
        &names("a"),
        group,
        &version_two,
        false,
        Facts {
            grants: None,
            namespace_labels: &labels,
            api_services: &apis,
            crd_names: &[],
            apiserver_addresses: &[],
            claimants: &[],
        },
    );
    let Claim::Refused(refusal) = claim else {
        panic!("another namespace holds v1 of the group");
    };
    assert_eq!(refusal.reason, Reason::Conflict);
    assert!(
        refusal.message.contains("in another namespace") && !refusal.message.contains("b/holder"),
        "{}",
        refusal.message
    );
    assert!(!refusal.keep_registered);
}

fn claim_among(claimants: &[Claimant], apis: &[APIService]) -> Claim {
    let group = "held.example.com";
    check_among("a", group, false, None, apis, &[], claimants)
}

fn claimant(key: &str, earlier: bool) -> Claimant {
    Claimant {
        key: key.into(),
        group: "held.example.com".into(),
        earlier,
    }
}

#[test]
fn the_first_claimant_holds_the_group_registered_or_not() {
    let Claim::Refused(refusal) = claim_among(&[claimant("b/first", true)], &[]) else {
        panic!("an earlier claimant holds the group without an APIService");
    };
    assert_eq!(refusal.reason, Reason::Conflict);
    assert!(
        refusal
            .message
            .contains("claimed group held.example.com first")
    );
    assert!(
        !refusal.keep_registered,
        "the later claimant releases what it has"
    );
    let later = claim_among(&[claimant("b/later", false)], &[]);
    assert_eq!(later, Claim::Allowed { adopt: false });
}

#[test]
fn a_later_claimant_that_registered_first_never_costs_the_holder_its_workload() {
    let registered_by_later = [api_service(
        "v1.held.example.com",
        "held.example.com",
        false,
        Some("b/later"),
    )];
    let Claim::Refused(refusal) = claim_among(&[claimant("b/later", false)], &registered_by_later)
    else {
        panic!("the group is registered elsewhere for now");
    };
    assert!(refusal.keep_registered, "the holder keeps its workload");
}

#[test]
fn a_named_service_account_needs_a_grant_that_lists_it() {
    let labels = BTreeMap::new();
    let facts = |grants| Facts {
        grants,
        namespace_labels: &labels,
        api_services: &[],
        crd_names: &[],
        apiserver_addresses: &[],
        claimants: &[],
    };
    let grants = Grants::parse(
        "grants: [{namespaces: [a], groups: ['*.example.com'], serviceAccountNames: [metrics]}]",
    )
    .expect("grants");
    assert!(check_account(&names("a"), Some("metrics"), facts(Some(&grants))).is_none());
    assert!(check_account(&names("a"), None, facts(Some(&grants))).is_none());
    let refusal = check_account(&names("a"), Some("admin"), facts(Some(&grants)))
        .expect("an account no grant lists");
    assert_eq!(refusal.reason, Reason::NotGranted);
    assert!(
        refusal.message.contains("serviceAccountNames"),
        "{}",
        refusal.message
    );
    assert!(check_account(&names("b"), Some("metrics"), facts(Some(&grants))).is_some());
    assert!(
        check_account(&names("a"), Some("admin"), facts(None)).is_none(),
        "without grants any existing account may be named"
    );
}
