//! Which watched objects enter the caches. The label selector only narrows the watch; anyone may
//! put the label on their own objects, so a label alone never admits one. Namespaced children
//! need an ExtensionServer's controller ownerRef; cluster-scoped and kube-system children our
//! owner annotation and labels, naming the same server.

use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::runtime::watcher::Event;

use super::owning_server;
use crate::tls::ca_keys;

/// Secret keys the operator reads (serving certificate and CA Secrets); others are not cached.
const SECRET_KEYS: [&str; 7] = [
    "tls.crt",
    "tls.key",
    ca_keys::CERT,
    ca_keys::KEY,
    ca_keys::NEXT_CERT,
    ca_keys::NEXT_KEY,
    ca_keys::PREVIOUS_CERT,
];

/// Every object (the APIService cache: ownership and conflicts are decided from all of them).
pub fn everything<K>(_: &K) -> bool {
    true
}

/// Controlled by an ExtensionServer.
pub fn controlled<K: Resource>(object: &K) -> bool {
    object.meta().owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == "ExtensionServer"
            && r.api_version.starts_with("aggregation.dev/")
    })
}

/// Carries our owner annotation and the labels of the same server.
pub fn annotated<K: Resource>(object: &K) -> bool {
    owning_server(object).is_some()
}

/// Drops the data a Secret holds under keys the operator never reads.
pub fn trim_secret(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        data.retain(|key, _| SECRET_KEYS.contains(&key.as_str()));
    }
    secret.string_data = None;
}

/// Passes the events of admitted objects. An object that stops being admitted leaves the cache
/// (its update becomes a delete); one never admitted is not listed at all.
pub fn filter<K>(event: Event<K>, admit: fn(&K) -> bool) -> Option<Event<K>> {
    match event {
        Event::Apply(object) if !admit(&object) => Some(Event::Delete(object)),
        Event::InitApply(object) if !admit(&object) => None,
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;
    use crate::names::OWNER_ANNOTATION;

    fn secret(owner: Option<(&str, bool)>, labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                owner_references: owner.map(|(kind, controller)| {
                    vec![OwnerReference {
                        api_version: "aggregation.dev/v1alpha1".into(),
                        kind: kind.into(),
                        name: "srv".into(),
                        uid: "u".into(),
                        controller: Some(controller),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn a_label_alone_admits_nothing() {
        let managed = [("app.kubernetes.io/managed-by", "extension-server-operator")];
        assert!(!controlled(&secret(None, &managed)));
        assert!(!controlled(&secret(
            Some(("ExtensionServer", false)),
            &managed
        )));
        assert!(!controlled(&secret(Some(("Deployment", true)), &managed)));
        assert!(controlled(&secret(Some(("ExtensionServer", true)), &[])));
        assert!(!annotated(&secret(None, &managed)));
    }

    #[test]
    fn cluster_scoped_children_need_annotation_and_labels_of_one_server() {
        use crate::names::{MANAGED_BY, MANAGED_BY_LABEL, SERVER_LABEL, SERVER_NAMESPACE_LABEL};
        let server_labels = [(SERVER_NAMESPACE_LABEL, "a"), (SERVER_LABEL, "srv")];
        let annotation = Some(BTreeMap::from([(OWNER_ANNOTATION.into(), "a/srv".into())]));
        let mut unmanaged = secret(None, &server_labels);
        unmanaged.metadata.annotations = annotation.clone();
        assert!(!annotated(&unmanaged), "without the managed-by label");
        let mut binding = secret(
            None,
            &[
                server_labels[0],
                server_labels[1],
                (MANAGED_BY_LABEL, MANAGED_BY),
            ],
        );
        assert!(!annotated(&binding), "labels alone");
        binding.metadata.annotations = annotation;
        assert!(annotated(&binding));
        binding.metadata.annotations =
            Some(BTreeMap::from([(OWNER_ANNOTATION.into(), "b/srv".into())]));
        assert!(!annotated(&binding), "labels of another server");
    }

    #[test]
    fn foreign_objects_never_enter_and_leave_when_disowned() {
        let foreign = secret(None, &[]);
        assert!(filter(Event::InitApply(foreign.clone()), controlled).is_none());
        assert!(matches!(
            filter(Event::Apply(foreign), controlled),
            Some(Event::Delete(_))
        ));
        let ours = secret(Some(("ExtensionServer", true)), &[]);
        assert!(matches!(
            filter(Event::Apply(ours), controlled),
            Some(Event::Apply(_))
        ));
    }

    #[test]
    fn secrets_keep_only_the_keys_the_operator_reads() {
        let mut s = secret(None, &[]);
        s.data = Some(BTreeMap::from([
            ("tls.crt".into(), ByteString(b"c".to_vec())),
            ("ca.key".into(), ByteString(b"k".to_vec())),
            ("payload".into(), ByteString(vec![0; 700 * 1024])),
        ]));
        trim_secret(&mut s);
        let keys: Vec<_> = s.data.unwrap().into_keys().collect();
        assert_eq!(keys, ["ca.key", "tls.crt"]);
    }
}
