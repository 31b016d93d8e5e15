//! The CA Secret's labels. The CA itself is written create-only (or replaced at a
//! resourceVersion, its labels kept) so that it is never minted twice; its labels follow the
//! child labels by a server-side apply of the metadata alone, which cannot touch the key
//! material and, owning the labels, removes one the operator no longer sets.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;

use crate::child_labels::ChildLabels;
use crate::error::Result;
use crate::names::ServerNames;
use crate::ssa;

/// The CA Secret's labels alone (a pure function).
pub fn desired(names: &ServerNames, child_labels: &ChildLabels) -> Secret {
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

/// Brings the live CA Secret's labels to `desired`; no request when they already match.
pub async fn apply(secrets: &Api<Secret>, desired: &Secret, live: &Secret) -> Result<()> {
    ssa::apply(secrets, desired, Some(live)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_carry_the_child_labels_and_nothing_of_the_key_material() {
        let names = ServerNames {
            name: "s".into(),
            namespace: "ns".into(),
        };
        let child = ChildLabels::parse(["team=platform"]).unwrap();
        let secret = desired(&names, &child);
        let labels = secret.metadata.labels.clone().unwrap();
        assert_eq!(labels["team"], "platform");
        assert_eq!(labels[crate::names::SERVER_LABEL], "s");
        assert!(secret.data.is_none() && secret.type_.is_none());
        let hash = |s: &Secret| ssa::with_hash(s).unwrap().metadata.annotations;
        assert_ne!(
            hash(&secret),
            hash(&desired(&names, &ChildLabels::default())),
            "a label change changes the applied hash"
        );
    }
}
