//! A PodDisruptionBudget (maxUnavailable 1) when there is more than one replica.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owned_meta;
use crate::validated::Validated;

pub fn pod_disruption_budget(validated: &Validated) -> Option<PodDisruptionBudget> {
    let names = &validated.names;
    (validated.replicas > 1).then(|| PodDisruptionBudget {
        metadata: owned_meta(validated, names.workload().to_string()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            // Pods that never become ready must not block node drains.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
