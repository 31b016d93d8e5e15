//! The Service the aggregator dials: port 443 named `https` to `spec.port`; for an external
//! server, an ExternalName Service for `external.host` (the aggregator resolves it to
//! `host:<APIService port>` and verifies the certificate for `<name>.<namespace>.svc`).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owned_meta;
use crate::validated::Validated;

pub fn service(validated: &Validated) -> Service {
    let names = &validated.names;
    let metadata = owned_meta(validated, names.workload().to_string());
    if let Some(external) = validated.external() {
        return Service {
            metadata,
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(external.host.clone()),
                ports: Some(vec![ServicePort {
                    name: Some("https".into()),
                    port: external.port,
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names.selector()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::String("https".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
