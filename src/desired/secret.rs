//! The serving-certificate Secret `<name>-tls` (type kubernetes.io/tls).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::owned_meta;
use crate::crd::ExtensionServer;
use crate::names::ServerNames;
use crate::tls::KeyedCert;

pub fn tls_secret(
    server: &ExtensionServer,
    names: &ServerNames,
    serving: &KeyedCert,
    ca_bundle: Option<&str>,
) -> Secret {
    let mut data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(serving.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(serving.key_pem.clone().into_bytes()),
        ),
    ]);
    if let Some(bundle) = ca_bundle {
        data.insert("ca.crt".into(), ByteString(bundle.as_bytes().to_vec()));
    }
    Secret {
        metadata: owned_meta(server, names, names.tls_secret()),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}
