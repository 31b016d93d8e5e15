//! One APIService per served version of every group, pointing at the Service, with the CA
//! bundle.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::apiservice::{APIService, APIServiceSpec, ServiceReference};
use crate::names::OWNER_ANNOTATION;
use crate::validated::Validated;

pub fn api_services(validated: &Validated, ca_bundle: Option<&str>) -> Vec<APIService> {
    let names = &validated.names;
    let insecure = validated.is_insecure();
    // The aggregator dials the Service's 443, or an external server's own port (at the host
    // of its ExternalName Service).
    let port = validated.external().map_or(443, |e| e.port);
    validated
        .served
        .iter()
        .map(|served| {
            let name = &served.name;
            let mut api_service = APIService::new(
                name.as_str(),
                APIServiceSpec {
                    group: Some(name.group().to_string()),
                    version: Some(name.version().to_string()),
                    service: Some(ServiceReference {
                        namespace: names.namespace.clone(),
                        name: names.workload().to_string(),
                        port: Some(port),
                    }),
                    ca_bundle: ca_bundle
                        .filter(|_| !insecure)
                        .map(|b| ByteString(b.as_bytes().to_vec())),
                    // Always explicit, so server-side apply reverts anyone who flips it.
                    insecure_skip_tls_verify: Some(insecure),
                    group_priority_minimum: served.group_priority_minimum,
                    version_priority: served.version_priority,
                },
            );
            api_service.metadata = ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(names.cluster_labels()),
                annotations: Some(BTreeMap::from([(
                    OWNER_ANNOTATION.to_string(),
                    names.owner_key(),
                )])),
                ..ObjectMeta::default()
            };
            api_service
        })
        .collect()
}
