use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;

const NAMES: &[&str] = &["srv", "srv.ns", "srv.ns.svc", "srv.ns.svc.cluster.local"];

fn names() -> Vec<String> {
    NAMES.iter().map(|s| s.to_string()).collect()
}

fn der_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| CertificateDer::from(p.unwrap().contents))
        .collect()
}

/// Verifies `serving` for `srv.ns.svc` against `bundle` with rustls, at `at`.
fn verifies(bundle: &str, serving: &str, at: Timestamp) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for ca in der_certs(bundle) {
        roots.add(ca).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let chain = der_certs(serving);
    let name = ServerName::try_from("srv.ns.svc").unwrap();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(at.as_second() as u64));
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], now)
        .is_ok()
}

fn lifetimes() -> Lifetimes {
    Lifetimes {
        certificate: Duration::from_secs(3000),
        ca: Duration::from_secs(9000),
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn step(observed: &TlsObserved, now: Timestamp) -> TlsPlan {
    plan(observed, &names(), "srv.ns CA", lifetimes(), now).unwrap()
}

fn observed_from(plan: &TlsPlan, propagated: bool, rolled: bool) -> TlsObserved {
    TlsObserved {
        ca: Some(plan.ca.clone()),
        serving: Some(plan.serving.clone()),
        bundle_propagated: propagated,
        rollout_complete: rolled,
        trusted: None,
    }
}

fn observed_none() -> TlsObserved {
    TlsObserved {
        ca: None,
        serving: None,
        bundle_propagated: true,
        rollout_complete: true,
        trusted: None,
    }
}

#[test]
fn first_pass_creates_ca_and_a_verifiable_serving_cert() {
    let empty = TlsObserved {
        ca: None,
        serving: None,
        bundle_propagated: true,
        rollout_complete: true,
        trusted: None,
    };
    let plan = step(&empty, at(0));
    assert!(plan.ca_changed);
    assert_eq!(
        plan.events,
        vec![TlsEvent::CaCreated, TlsEvent::CertificateIssued]
    );
    assert!(verifies(&plan.bundle(), &plan.serving.cert_pem, at(1)));
    let mut sans = plan.serving_info.dns_names.clone();
    sans.sort();
    let mut want = names();
    want.sort();
    assert_eq!(sans, want);
    assert!(plan.ca_info.is_ca);
}

#[test]
fn steady_state_reuses_everything() {
    let first = step(
        &TlsObserved {
            ca: None,
            serving: None,
            bundle_propagated: true,
            rollout_complete: true,
            trusted: None,
        },
        at(0),
    );
    let second = step(&observed_from(&first, true, true), at(100));
    assert!(!second.ca_changed);
    assert!(second.events.is_empty());
    assert_eq!(second.serving, first.serving);
}

#[test]
fn serving_cert_renews_at_two_thirds_of_its_life() {
    let first = step(
        &TlsObserved {
            ca: None,
            serving: None,
            bundle_propagated: true,
            rollout_complete: true,
            trusted: None,
        },
        at(0),
    );
    let before = step(&observed_from(&first, true, true), at(1900));
    assert_eq!(before.serving, first.serving);
    let after = step(&observed_from(&first, true, true), at(2000));
    assert_eq!(after.events, vec![TlsEvent::CertificateRenewed]);
    assert_ne!(after.serving, first.serving);
    assert!(verifies(&after.bundle(), &after.serving.cert_pem, at(2001)));
}

#[test]
fn serving_cert_is_reissued_for_changed_names_or_foreign_issuer() {
    let first = step(
        &TlsObserved {
            ca: None,
            serving: None,
            bundle_propagated: true,
            rollout_complete: true,
            trusted: None,
        },
        at(0),
    );
    let other_ca = certs::generate_ca("other", at(0), lifetimes().ca).unwrap();
    let foreign =
        certs::issue_serving(&other_ca, &names(), at(0), lifetimes().certificate).unwrap();
    let mut observed = observed_from(&first, true, true);
    observed.serving = Some(foreign);
    let plan = step(&observed, at(10));
    assert_eq!(plan.events, vec![TlsEvent::CertificateRenewed]);
    assert!(verifies(&plan.bundle(), &plan.serving.cert_pem, at(11)));
}

#[test]
fn ca_rotation_keeps_trust_at_every_step() {
    let mut plan = step(
        &TlsObserved {
            ca: None,
            serving: None,
            bundle_propagated: true,
            rollout_complete: true,
            trusted: None,
        },
        at(0),
    );
    let original_ca = plan.ca.current.cert_pem.clone();
    // Serving certs renew along the way; the CA reaches 2/3 of its life at 6000s.
    let mut now = 0;
    let mut seen = Vec::new();
    let mut served = plan.serving.cert_pem.clone();
    while now < 8000 {
        now += 500;
        // Pods serve what the last rollout gave them; the bundle must verify it.
        let observed = observed_from(&plan, true, true);
        let next = step(&observed, at(now));
        assert!(
            verifies(&next.bundle(), &served, at(now)),
            "bundle at {now}s does not verify the cert the pods still serve"
        );
        assert!(verifies(&next.bundle(), &next.serving.cert_pem, at(now)));
        seen.extend(next.events.iter().copied());
        served = next.serving.cert_pem.clone();
        plan = next;
    }
    for event in [
        TlsEvent::CaRotationStarted,
        TlsEvent::CaPromoted,
        TlsEvent::CaRotationCompleted,
    ] {
        assert!(seen.contains(&event), "{event:?} missing from {seen:?}");
    }
    assert_ne!(plan.ca.current.cert_pem, original_ca);
    assert!(!plan.bundle().contains(original_ca.trim()));
}

#[test]
fn ca_is_not_promoted_before_the_bundle_propagates() {
    let first = step(
        &TlsObserved {
            ca: None,
            serving: None,
            bundle_propagated: true,
            rollout_complete: true,
            trusted: None,
        },
        at(0),
    );
    let started = step(&observed_from(&first, true, true), at(6100));
    assert!(started.events.contains(&TlsEvent::CaRotationStarted));
    let waiting = step(&observed_from(&started, false, true), at(6200));
    assert!(!waiting.events.contains(&TlsEvent::CaPromoted));
    assert!(waiting.ca.next.is_some());
    let promoted = step(&observed_from(&waiting, true, true), at(6300));
    assert!(promoted.events.contains(&TlsEvent::CaPromoted));
    // The old CA stays until the rollout completes.
    let not_rolled = step(&observed_from(&promoted, true, false), at(6400));
    assert!(not_rolled.ca.previous_cert.is_some());
    let rolled = step(&observed_from(&not_rolled, true, true), at(6500));
    assert!(rolled.ca.previous_cert.is_none());
    assert_eq!(rolled.events, vec![TlsEvent::CaRotationCompleted]);
}

#[test]
fn lifetimes_are_validated() {
    let defaults = lifetimes();
    assert!(super::lifetimes(Some("5s"), None, defaults).is_err());
    assert!(super::lifetimes(Some("2h"), Some("1h"), defaults).is_err());
    assert!(super::lifetimes(Some("2h"), Some("2h"), defaults).is_err());
    assert!(super::lifetimes(None, Some("87601h"), defaults).is_err());
    assert!(super::lifetimes(Some("1ns"), None, defaults).is_err());
    let too_long = Lifetimes {
        certificate: Duration::from_secs(3600),
        ca: duration::MAX + Duration::from_secs(1),
    };
    assert!(super::lifetimes(None, None, too_long).is_err());
    assert!(super::lifetimes(Some("10s"), Some("20s"), defaults).is_ok());
    let ok = super::lifetimes(Some("1h"), Some("3h"), defaults).unwrap();
    assert_eq!(ok.certificate, Duration::from_secs(3600));
}

#[test]
fn debug_output_never_contains_key_material() {
    let ca = certs::generate_ca("x", at(0), lifetimes().ca).unwrap();
    let printed = format!("{ca:?}");
    assert!(!printed.contains("PRIVATE KEY"));
}

#[test]
fn the_serving_certificate_never_outlives_its_ca() {
    let ca = certs::generate_ca("ca", at(0), Duration::from_secs(600)).unwrap();
    let serving = certs::issue_serving(&ca, &names(), at(300), Duration::from_secs(3600)).unwrap();
    let ca_end = certs::inspect(ca.cert_pem.as_bytes()).unwrap().not_after;
    let serving_end = certs::inspect(serving.cert_pem.as_bytes())
        .unwrap()
        .not_after;
    assert_eq!(serving_end, ca_end);
}

#[test]
fn a_damaged_ca_secret_is_reported_not_replaced() {
    let first = step(&observed_none(), at(0));
    let other = certs::generate_ca("other", at(0), Duration::from_secs(900)).unwrap();
    let data = |ca: &CaSet| ca.to_secret_data();
    assert_eq!(CaRead::from_secret(None), CaRead::Missing);
    assert_eq!(
        CaRead::from_secret_data(&data(&first.ca)),
        CaRead::Usable(first.ca.clone())
    );
    let mut mismatched = first.ca.clone();
    mismatched.current.key_pem = other.key_pem.clone();
    assert!(matches!(
        CaRead::from_secret_data(&data(&mismatched)),
        CaRead::Damaged(why) if why.contains("ca.key does not belong to ca.crt")
    ));
    let mut garbage = first.ca.clone();
    garbage.current.cert_pem = "not a certificate".into();
    assert!(matches!(
        CaRead::from_secret_data(&data(&garbage)),
        CaRead::Damaged(why) if why.contains("ca.crt is not a PEM certificate")
    ));
    let mut no_key = data(&first.ca);
    no_key.remove(ca_keys::KEY);
    assert!(matches!(
        CaRead::from_secret_data(&no_key),
        CaRead::Damaged(_)
    ));
}

#[test]
fn a_deleted_ca_is_recreated_with_the_old_one_trusted_until_the_rollout() {
    let first = step(&observed_none(), at(0));
    let old_bundle = first.bundle();
    // The CA Secret is gone; the APIServices still trust the old CA, the pods serve its cert.
    let lost = TlsObserved {
        ca: None,
        serving: Some(first.serving.clone()),
        bundle_propagated: false,
        rollout_complete: false,
        trusted: Some(old_bundle.clone()),
    };
    let recreated = step(&lost, at(10));
    assert_eq!(
        recreated.events,
        [TlsEvent::CaRecreated, TlsEvent::CertificateRenewed]
    );
    assert!(
        verifies(&recreated.bundle(), &first.serving.cert_pem, at(10)),
        "old pods"
    );
    assert!(
        verifies(&recreated.bundle(), &recreated.serving.cert_pem, at(10)),
        "new pods"
    );
    // The pods roll: the old CA goes.
    let rolled = step(&observed_from(&recreated, true, true), at(20));
    assert_eq!(rolled.events, [TlsEvent::CaRotationCompleted]);
    assert!(!verifies(&rolled.bundle(), &first.serving.cert_pem, at(20)));
    assert!(verifies(
        &rolled.bundle(),
        &recreated.serving.cert_pem,
        at(20)
    ));
}

#[test]
fn bundles_hold_each_certificate_once_in_order() {
    let a = certs::generate_ca("a", at(0), Duration::from_secs(900))
        .unwrap()
        .cert_pem;
    let b = certs::generate_ca("b", at(0), Duration::from_secs(900))
        .unwrap()
        .cert_pem;
    let ab = certs::bundle(&[&a, &b]);
    assert_eq!(certs::bundle(&[&b, &ab]), certs::bundle(&[&b, &a]));
    assert_eq!(certs::bundle(&[&ab, &ab]), ab);
    assert_eq!(certs::inspect_bundle(ab.as_bytes()).unwrap().len(), 2);
    assert_eq!(certs::bundle(&["garbage"]), "");
}
