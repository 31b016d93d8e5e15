//! ExtensionServers as the watch lists them, decoded one by one: an object the operator cannot
//! decode (nested past serde_json's limit, stored under an older CRD, written by a newer one)
//! keeps only its metadata and why, instead of failing the whole list page and with it every
//! other server.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::crd::ExtensionServer;

/// One listed ExtensionServer: decoded, or its metadata and the decoding error.
#[derive(Debug, Clone)]
pub struct Listed {
    pub metadata: ObjectMeta,
    pub decoded: Result<ExtensionServer, String>,
}

impl<'de> Deserialize<'de> for Listed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as raw text: serde_json skips over it without a nesting limit.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(decode(raw.get()))
    }
}

/// Decodes one object's JSON text; never fails. Only when that fails is it read again without
/// `managedFields`, which mirror the spec's nesting and which the operator never reads.
pub fn decode(json: &str) -> Listed {
    let decoded = serde_json::from_str::<ExtensionServer>(json).or_else(|error| {
        let lean = without_managed_fields(json).ok_or(error)?;
        serde_json::from_str::<ExtensionServer>(&lean)
    });
    match decoded {
        Ok(server) => Listed {
            metadata: server.metadata.clone(),
            decoded: Ok(server),
        },
        Err(error) => Listed {
            metadata: identity(json),
            decoded: Err(error.to_string()),
        },
    }
}

/// The object's JSON text with `metadata.managedFields` left out, read without a nesting limit.
fn without_managed_fields(json: &str) -> Option<String> {
    type Fields<'a> = BTreeMap<String, &'a RawValue>;
    let mut object: Fields<'_> = serde_json::from_str(json).ok()?;
    let mut metadata: Fields<'_> = serde_json::from_str(object.get("metadata")?.get()).ok()?;
    metadata.remove("managedFields");
    let metadata = serde_json::to_string(&metadata).ok()?;
    let metadata = RawValue::from_string(metadata).ok()?;
    object.insert("metadata".into(), &metadata);
    serde_json::to_string(&object).ok()
}

/// The object's identity only: its `managedFields` mirror the spec's nesting, so the rest of
/// the metadata may be as undecodable as the spec.
fn identity(json: &str) -> ObjectMeta {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Identity {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
    }
    #[derive(Deserialize)]
    struct Outer {
        #[serde(default)]
        metadata: Identity,
    }
    let identity = serde_json::from_str::<Outer>(json)
        .map(|o| o.metadata)
        .unwrap_or_default();
    ObjectMeta {
        name: identity.name,
        namespace: identity.namespace,
        uid: identity.uid,
        resource_version: identity.resource_version,
        ..ObjectMeta::default()
    }
}

impl Resource for Listed {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ExtensionServer::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ExtensionServer::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ExtensionServer::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ExtensionServer::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            "{}{}",
            "{\"x\":".repeat(depth),
            "1".to_string() + &"}".repeat(depth)
        )
    }

    #[test]
    fn a_list_page_with_one_object_nested_too_deep_decodes_every_other_one() {
        let good = r#"{"apiVersion":"aggregation.dev/v1alpha1","kind":"ExtensionServer","metadata":{"name":"good","namespace":"ns"},"spec":{"group":"g.example.com","versions":[{"name":"v1"}],"image":"i"}}"#;
        let deep = format!(
            r#"{{"apiVersion":"aggregation.dev/v1alpha1","kind":"ExtensionServer","metadata":{{"name":"deep","namespace":"ns","uid":"u","managedFields":[{{"fieldsV1":{}}}]}},"spec":{{"group":"h.example.com","versions":[{{"name":"v1"}}],"image":"i","podTemplate":{{"spec":{}}}}}}}"#,
            nested(140),
            nested(140)
        );
        let page = format!(r#"{{"items":[{good},{deep}]}}"#);
        #[derive(Deserialize)]
        struct Page {
            items: Vec<Listed>,
        }
        let page: Page = serde_json::from_str(&page).expect("the page decodes");
        assert_eq!(page.items.len(), 2);
        assert!(page.items[0].decoded.is_ok());
        assert_eq!(page.items[1].metadata.name.as_deref(), Some("deep"));
        assert_eq!(page.items[1].metadata.uid.as_deref(), Some("u"));
        let why = page.items[1].decoded.as_ref().expect_err("too deep");
        assert!(why.contains("recursion limit"), "{why}");
    }

    #[test]
    fn managed_fields_as_deep_as_a_pruned_spec_are_left_out() {
        let json = format!(
            r#"{{"apiVersion":"aggregation.dev/v1alpha1","kind":"ExtensionServer","metadata":{{"name":"s","namespace":"ns","managedFields":[{{"fieldsV1":{}}}]}},"spec":{{"group":"g.example.com","versions":[{{"name":"v1"}}],"image":"i"}}}}"#,
            nested(140)
        );
        let listed = decode(&json);
        let server = listed.decoded.expect("decoded");
        assert_eq!(server.metadata.name.as_deref(), Some("s"));
        assert_eq!(server.metadata.managed_fields, None);
    }
}
