//! The Service the aggregator dials: port 443 named `https` to `spec.port`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owned_meta;
use crate::crd::ExtensionServer;
use crate::names::ServerNames;

pub fn service(server: &ExtensionServer, names: &ServerNames) -> Service {
    Service {
        metadata: owned_meta(server, names, names.workload().to_string()),
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
