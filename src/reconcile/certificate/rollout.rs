//! What the cluster shows of a certificate change, for both modes: which CA the APIServices
//! trust now, whether the pods run the new certificate, and whether availability settled.

use k8s_openapi::api::apps::v1::Deployment;

use super::ObservedApiServices;
use crate::apiservice::APIService;
use crate::names::{CERT_HASH_ANNOTATION, ServerNames};
use crate::reconcile::registration::{Holder, holder};
use crate::tls::{self, certs};

pub fn ours<'a>(
    api_services: &'a ObservedApiServices,
    names: &'a ServerNames,
) -> impl Iterator<Item = &'a APIService> {
    api_services
        .iter()
        .filter_map(|(_, a)| a.as_deref())
        .filter(move |a| holder(a, names) == Holder::Us)
}

/// The serving certificate's hash in the Deployment's pod template.
pub fn template_cert_hash(deployment: &Deployment) -> Option<&String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CERT_HASH_ANNOTATION)
}

/// The CAs our APIServices trust now (PEM), if any carries a caBundle.
pub fn trusted_now(api_services: &ObservedApiServices, names: &ServerNames) -> Option<String> {
    ours(api_services, names)
        .find_map(|a| a.spec.ca_bundle.as_ref())
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// Every registered APIService is Available, or none is (then there is no traffic to protect).
pub fn availability_settled(api_services: &ObservedApiServices, names: &ServerNames) -> bool {
    let available: Vec<bool> = ours(api_services, names)
        .map(|a| a.available().is_some_and(|c| c.status == "True"))
        .collect();
    available.iter().all(|a| *a) || available.iter().all(|a| !*a)
}

pub fn rollout_complete(deployment: Option<&Deployment>, serving: Option<&tls::KeyedCert>) -> bool {
    let Some(deployment) = deployment else {
        return true;
    };
    let Some(serving) = serving else { return false };
    let hash = certs::sha256_hex(serving.cert_pem.as_bytes())[..16].to_string();
    let template_hash = template_cert_hash(deployment);
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    let want = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    template_hash == Some(&hash)
        && status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.ready_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
}
