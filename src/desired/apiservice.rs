//! One APIService per served version of every group, pointing at the Service, with the CA
//! bundle.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::apiservice::{APIService, APIServiceSpec, ServiceReference};
use crate::crd::ExtensionServer;
use crate::names::{ApiServiceName, Group, OWNER_ANNOTATION, ServerNames, Version};

pub fn api_services(
    server: &ExtensionServer,
    names: &ServerNames,
    ca_bundle: Option<&str>,
) -> Vec<APIService> {
    let insecure = super::is_insecure(server);
    let served = server
        .spec
        .served_groups()
        .flat_map(|(group, versions)| versions.iter().map(move |v| (Group(group.to_string()), v)));
    served
        .map(|(group, served)| {
            let version = Version(served.name.clone());
            let name = ApiServiceName::new(&version, &group);
            let mut api_service = APIService::new(
                name.as_str(),
                APIServiceSpec {
                    group: Some(group.0.clone()),
                    version: Some(version.0.clone()),
                    service: Some(ServiceReference {
                        namespace: names.namespace.clone(),
                        name: names.workload().to_string(),
                        port: Some(super::service_port(server)),
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
