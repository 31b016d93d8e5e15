//! The objects the operator creates for one ExtensionServer, from the operator's own builders,
//! so the floor client makes kube-controller-manager and kwok do the same work as the operator.

use anyhow::Result;
use extension_server_operator::context::Settings;
use extension_server_operator::crd::ExtensionServer;
use extension_server_operator::desired::{Desired, TlsInput, desired};
use extension_server_operator::names::ServerNames;
use extension_server_operator::tls::KeyedCert;
use extension_server_operator::trust::Facts;
use extension_server_operator::validate;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use crate::servers::IMAGE;

/// One CA and one serving certificate, generated once and reused by every floor server.
pub struct Pki {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

impl Pki {
    pub fn generate() -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let cert =
            CertificateParams::new(vec!["s0.bench.svc".to_string()])?.signed_by(&key, &ca)?;
        Ok(Self {
            ca_cert: ca.pem(),
            ca_key: ca.key().serialize_pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The children of one floor server, built by the operator's own builders
/// (`extension_server_operator::desired`), so the floor writes exactly what the operator does.
pub struct Server {
    pub name: String,
    pub children: Desired,
    ca_secret: Secret,
}

impl Server {
    pub fn new(name: String, namespace: &str, pki: &Pki) -> Result<Self> {
        let server: ExtensionServer = serde_json::from_value(json!({
            "apiVersion": "aggregation.dev/v1alpha1",
            "kind": "ExtensionServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "group": format!("{name}.{namespace}.floor.api"),
                "versions": [{"name": "v1"}],
                "image": IMAGE,
            },
        }))?;
        let names = ServerNames::of(&server);
        let tls = TlsInput {
            managed_serving: Some(KeyedCert {
                cert_pem: pki.cert.clone(),
                key_pem: pki.key.clone(),
            }),
            ca_bundle: Some(pki.ca_cert.clone()),
            cert_hash: "floor".into(),
            front_proxy_hash: None,
        };
        // The CA Secret is the operator's TLS step's, not a builder's: the same two keys.
        let ca_secret = serde_json::from_value(json!({
            "metadata": {"name": names.ca_secret(), "namespace": namespace, "labels": names.labels()},
            "type": "Opaque",
            "stringData": {"ca.crt": pki.ca_cert, "ca.key": pki.ca_key},
        }))?;
        Ok(Self {
            name,
            children: desired(
                &validate(&server, &Settings::default(), Facts::none())?,
                &tls,
            ),
            ca_secret,
        })
    }

    pub fn ca_secret(&self) -> &Secret {
        &self.ca_secret
    }
}
