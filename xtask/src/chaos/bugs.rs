//! The bugs the fault suite found, each fixed with a regression test.

pub struct Bug {
    pub found_by: &'static str,
    pub what: &'static str,
    pub regression_test: &'static str,
}

pub const FOUND: [Bug; 6] = [
    Bug {
        found_by: "mutations",
        what: "switching tls.mode between Managed and Insecure on a registered server failed forever: the caBundle our create set outlived every server-side apply",
        regression_test: "tests/cluster/tls_modes.rs::switching_between_managed_and_insecure_moves_the_api_services_trust",
    },
    Bug {
        found_by: "mutations",
        what: "duplicate env names passed admission but the Deployment could never be applied",
        regression_test: "tests/cluster/validation.rs (duplicate env names)",
    },
    Bug {
        found_by: "restarts",
        what: "kube-runtime's trigger backoff paused every cache for up to 30 s per watch error, for minutes after a kube-apiserver restart",
        regression_test: "tests/chaos/chaos_restarts.rs",
    },
    Bug {
        found_by: "faults",
        what: "retry delays doubled on unrelated transient failures, so at a 30 % fault rate servers waited minutes between passes",
        regression_test: "tests/chaos/chaos_faults.rs (30 %), src/reconcile/backoff.rs unit tests",
    },
    Bug {
        found_by: "mutations",
        what: "DeploymentAvailable said the Deployment was being rolled out when an earlier step had stopped the pass and no Deployment existed",
        regression_test: "src/status/tests.rs::a_missing_deployment_is_not_called_a_rollout",
    },
    Bug {
        found_by: "mutations",
        what: "a quantity without digits (\"-\", \"+\", \"Mi\") is 0 to the API server but unparsable to the operator, so a Deployment with one never compared equal and was re-applied on every pass",
        regression_test: "src/quantity.rs::a_quantity_without_digits_is_zero_as_the_api_server_stores_it",
    },
];
