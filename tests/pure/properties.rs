//! Property tests of the pure parts: parsing never panics, builders always produce objects the
//! API server's name and label rules accept, and every TLS plan's bundle verifies the
//! certificate a pod may serve. `cargo xtask chaos` runs many more cases than CI (see
//! `support::chaos::property_config`).

use std::time::Duration;

use extension_server_operator::context::Settings;
use extension_server_operator::desired::{TlsInput, desired};
use extension_server_operator::names::{
    self, ServerNames, is_dns1035_label, is_dns1123_subdomain, is_label_value,
};
use extension_server_operator::quantity;
use extension_server_operator::tls::{self, CaSet, Lifetimes, TlsObserved, certs, duration};
use extension_server_operator::trust::Facts;
use extension_server_operator::validate;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use proptest::prelude::*;

use crate::support;
use crate::support::fixture::Server;

proptest! {
    #![proptest_config(support::chaos::property_config(256, 125_000))]

    #[test]
    fn durations_parse_without_panicking(text in ".{0,40}") {
        support::chaos::count_case("properties", "durations_parse_without_panicking");
        if let Ok(parsed) = duration::parse(&text) {
            prop_assert!(parsed <= duration::MAX);
        }
    }

    #[test]
    fn duration_like_strings_parse_without_panicking(text in "[0-9]{0,25}(\\.[0-9]{0,5})?(ns|us|ms|s|m|h){0,3}") {
        support::chaos::count_case("properties", "duration_like_strings_parse_without_panicking");
        let _ = duration::parse(&text);
    }

    #[test]
    fn quantities_parse_without_panicking(text in "[-+]?[0-9.]{0,45}([numkMGTPE]|[KMGTPE]i|[eE][-+]?[0-9]{1,3})?") {
        support::chaos::count_case("properties", "quantities_parse_without_panicking");
        let _ = quantity::nanos(&text);
    }

    #[test]
    fn milli_and_whole_spellings_are_the_same_quantity(whole in 0u32..100_000) {
        support::chaos::count_case("properties", "milli_and_whole_spellings_are_the_same_quantity");
        let milli = format!("{}m", u64::from(whole) * 1000);
        prop_assert!(quantity::same(&whole.to_string(), &milli));
        let off_by_one = format!("{}m", u64::from(whole) * 1000 + 1);
        prop_assert!(!quantity::same(&whole.to_string(), &off_by_one));
    }

    #[test]
    fn every_child_of_an_admissible_name_is_admissible(
        name in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
        namespace in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
        replicas in 0i32..5,
        group in "[a-z]{1,20}\\.[a-z]{1,20}",
    ) {
        support::chaos::count_case("properties", "every_child_of_an_admissible_name_is_admissible");
        prop_assume!(names::check_server_name(&name).is_ok());
        let server = Server::in_group(&name, &group)
            .namespace(&namespace)
            .versions(&["v1", "v2beta1"])
            .replicas(replicas)
            .stored()
            .build();
        let validated = validate(&server, &Settings::default(), Facts::none()).unwrap();
        let built = desired(&validated, &tls_input());
        // RBAC names are path segments: anything but '/', '%', "." and "..".
        let delegator = built.auth_delegator.as_ref().unwrap();
        let reader = built.auth_reader.as_ref().unwrap();
        for binding in [delegator.meta(), reader.meta()] {
            let object = binding.name.clone().unwrap_or_default();
            prop_assert!(object.len() <= 253 && !object.contains(['/', '%']), "name {object}");
            for (key, value) in binding.labels.iter().flatten() {
                prop_assert!(is_label_value(value), "label {key}={value} on {object}");
            }
        }
        let mut metas = vec![
            built.deployment.as_ref().unwrap().meta().clone(),
            built.service.meta().clone(),
        ];
        metas.extend(built.service_account.iter().map(|o| o.meta().clone()));
        metas.extend(built.tls_secret.iter().map(|o| o.meta().clone()));
        metas.extend(built.pdb.iter().map(|o| o.meta().clone()));
        metas.extend(built.api_services.iter().map(|o| o.meta().clone()));
        for meta in &metas {
            let object = meta.name.clone().unwrap_or_default();
            prop_assert!(is_dns1123_subdomain(&object), "name {object}");
            for (key, value) in meta.labels.iter().flatten() {
                prop_assert!(is_label_value(value), "label {key}={value} on {object}");
            }
        }
        prop_assert!(is_dns1035_label(built.service.meta().name.as_deref().unwrap_or_default()));
        for dns in ServerNames::of(&server).service_dns_names() {
            prop_assert!(names::is_dns_name(&dns), "{dns}");
        }
    }
}

fn tls_input() -> TlsInput {
    TlsInput {
        managed_serving: None,
        ca_bundle: Some(String::new()),
        cert_hash: "0123456789abcdef".into(),
        front_proxy_hash: None,
    }
}

/// One step of the world between two TLS passes.
#[derive(Debug, Clone)]
struct Step {
    seconds: i64,
    propagated: bool,
    rolled: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (1i64..4000, any::<bool>(), any::<bool>()).prop_map(|(seconds, propagated, rolled)| Step {
            seconds,
            propagated,
            rolled,
        }),
        1..12,
    )
}

proptest! {
    // Each case generates keys and certificates: fewer cases.
    #![proptest_config(support::chaos::property_config(24, 2_000))]

    /// Whatever order the aggregator and the rollout catch up in, the bundle of every pass
    /// trusts both the certificate the pods served before it and the one it hands out.
    #[test]
    fn every_tls_plan_trusts_what_a_pod_may_serve(steps in steps()) {
        support::chaos::count_case("properties", "every_tls_plan_trusts_what_a_pod_may_serve");
        let lifetimes = Lifetimes {
            certificate: Duration::from_secs(3000),
            ca: Duration::from_secs(9000),
        };
        let dns = vec!["srv.ns.svc".to_string()];
        let mut now = Timestamp::from_second(1_800_000_000).unwrap();
        let first = TlsObserved {
            ca: None,
            serving: None,
            bundle_propagated: true,
            rollout_complete: true,
            trusted: None,
        };
        let mut plan = tls::plan(&first, &dns, "srv CA", lifetimes, now).unwrap();
        let mut served = plan.serving.clone();
        for step in steps {
            now = Timestamp::from_second(now.as_second() + step.seconds).unwrap();
            let ca: CaSet = plan.ca.clone();
            let observed = TlsObserved {
                ca: Some(ca),
                serving: Some(plan.serving.clone()),
                bundle_propagated: step.propagated,
                rollout_complete: step.rolled,
                trusted: None,
            };
            let next = tls::plan(&observed, &dns, "srv CA", lifetimes, now).unwrap();
            let bundle = next.bundle();
            prop_assert!(certs::signed_by(next.serving.cert_pem.as_bytes(), bundle.as_bytes()));
            if !step.rolled {
                prop_assert!(
                    certs::signed_by(served.cert_pem.as_bytes(), bundle.as_bytes()),
                    "a pod still serving the previous certificate is not trusted"
                );
            }
            if step.rolled {
                served = plan.serving.clone();
            }
            plan = next;
        }
    }
}
