//! Unit-test fixtures shared by the modules' tests: a server's names, one served version, and
//! a server validated as the pipeline would.

use crate::context::Settings;
use crate::crd::ExtensionServer;
use crate::names::{ApiServiceName, Group, ServerNames, Version};
use crate::trust::Facts;
use crate::validated::Validated;

/// `ns/srv`.
pub fn names() -> ServerNames {
    ServerNames {
        name: "srv".into(),
        namespace: "ns".into(),
    }
}

/// `v1.g.example.com`.
pub fn v1() -> ApiServiceName {
    ApiServiceName::new(&Version("v1".into()), &Group("g.example.com".into()))
}

/// A server from YAML, with a uid.
pub fn server(yaml: &str) -> ExtensionServer {
    let mut server: ExtensionServer = serde_yaml::from_str(yaml).expect("an ExtensionServer");
    server.metadata.uid = Some("uid-1".into());
    server
}

/// `server` validated with default settings and no cluster facts.
pub fn validated(server: &ExtensionServer) -> Validated {
    crate::reconcile::validate::validate(server, &Settings::default(), Facts::none())
        .expect("a valid server")
}
