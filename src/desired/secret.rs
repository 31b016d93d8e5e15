//! The serving-certificate Secret `<name>-tls` (type kubernetes.io/tls), and the labels of the
//! CA Secret `<name>-ca`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::owned_meta;
use crate::child_labels::ChildLabels;
use crate::names::ServerNames;
use crate::tls::KeyedCert;
use crate::validated::Validated;

pub fn tls_secret(validated: &Validated, serving: &KeyedCert, ca_bundle: Option<&str>) -> Secret {
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
        metadata: owned_meta(validated, validated.names.tls_secret()),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The CA Secret's metadata alone: its name and labels, the child labels included. The CA is
/// written create-only (or replaced at a resourceVersion) so that it is never minted twice;
/// its labels follow by a server-side apply of this, which cannot touch the key material and,
/// owning the labels, removes one the operator no longer sets.
pub fn ca_secret_labels(names: &ServerNames, child_labels: &ChildLabels) -> Secret {
    let mut labels = names.labels();
    child_labels.add_to(&mut labels);
    Secret {
        metadata: ObjectMeta {
            name: Some(names.ca_secret()),
            namespace: Some(names.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}
