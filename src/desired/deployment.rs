//! The Deployment: the validated pod template, with the annotations whose change rolls the
//! pods (the served certificate's hash and the cluster's front-proxy settings).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{TlsInput, owned_meta};
use crate::names::{CERT_HASH_ANNOTATION, FRONT_PROXY_HASH_ANNOTATION};
use crate::validated::{Pods, Validated};

pub fn deployment(validated: &Validated, pods: &Pods, tls: &TlsInput) -> Deployment {
    let names = &validated.names;
    let mut template = pods.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    // The operator's annotations win over the template's.
    meta.annotations
        .get_or_insert_with(Default::default)
        .extend(template_annotations(tls));
    Deployment {
        metadata: owned_meta(validated, names.workload().to_string()),
        spec: Some(DeploymentSpec {
            replicas: Some(validated.replicas),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            },
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The hashes whose change must roll the pods.
fn template_annotations(tls: &TlsInput) -> BTreeMap<String, String> {
    let mut annotations =
        BTreeMap::from([(CERT_HASH_ANNOTATION.to_string(), tls.cert_hash.clone())]);
    if let Some(hash) = &tls.front_proxy_hash {
        annotations.insert(FRONT_PROXY_HASH_ANNOTATION.to_string(), hash.clone());
    }
    annotations
}
