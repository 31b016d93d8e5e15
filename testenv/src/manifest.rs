//! Applies a manifest file of the repository (an example) the way `kubectl apply -f` would,
//! with its namespaced objects moved into a test's namespace.

use std::path::Path;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Client, ResourceExt};
use serde::Deserialize;

/// The field manager of everything applied here.
const MANAGER: &str = "testenv";

/// The objects of the multi-document YAML file at `path`, in file order.
pub fn read(path: &Path) -> Result<Vec<DynamicObject>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The objects of multi-document YAML `text`, in order.
pub fn parse(text: &str) -> Result<Vec<DynamicObject>> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            let value = serde_yaml::Value::deserialize(document)?;
            Ok(serde_yaml::from_value(value)?)
        })
        .collect::<Result<Vec<DynamicObject>>>()
}

/// Applies every object of `objects` with server-side apply, except Namespaces; namespaced
/// objects go into `namespace` whatever the file says, and so do the ServiceAccounts that
/// bindings name. Returns what the API server stored.
pub async fn apply(
    client: &Client,
    objects: &[DynamicObject],
    namespace: &str,
) -> Result<Vec<DynamicObject>> {
    let mut applied = Vec::new();
    for object in objects {
        let types = object
            .types
            .as_ref()
            .context("an object without apiVersion and kind")?;
        if types.kind == "Namespace" {
            continue;
        }
        let gvk = GroupVersionKind::try_from(types)?;
        let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("discovering {gvk:?}"))?;
        let mut object = object.clone();
        if types.kind.ends_with("RoleBinding") {
            move_subjects(&mut object, namespace);
        }
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                object.metadata.namespace = Some(namespace.to_string());
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let name = object.name_any();
        let stored = api
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
        applied.push(stored);
    }
    Ok(applied)
}

/// Moves the ServiceAccount subjects of a (Cluster)RoleBinding into `namespace`.
fn move_subjects(binding: &mut DynamicObject, namespace: &str) {
    let subjects = binding.data["subjects"]
        .as_array_mut()
        .into_iter()
        .flatten();
    for subject in subjects.filter(|s| s["kind"] == "ServiceAccount") {
        subject["namespace"] = serde_json::Value::from(namespace);
    }
}
