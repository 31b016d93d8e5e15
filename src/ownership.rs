//! No takeover (design §3.5): the operator writes or deletes only objects it created.
//! Namespaced children carry its controller ownerRef to the ExtensionServer's uid;
//! cluster-scoped and kube-system ones carry its labels and the owner annotation.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, ListParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::names::ServerNames;
use crate::observe::owning_server;
use crate::ssa;

/// Who may write an object: the server it must belong to.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A namespaced child: the controller ownerRef names this uid.
    Uid(&'a str),
    /// A cluster-scoped or kube-system child: our labels and this owner annotation.
    Annotated(&'a ServerNames),
}

impl Owner<'_> {
    pub fn owns<K: Resource>(&self, object: &K) -> bool {
        let meta = object.meta();
        match self {
            Owner::Uid(uid) => meta
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && r.uid == *uid),
            Owner::Annotated(names) => owning_server(object) == Some(names.owner_key().as_str()),
        }
    }
}

/// The outcome of writing one child.
#[derive(Debug, Clone)]
pub enum Written<K> {
    /// Ours, and now as desired.
    Done(K),
    /// A same-named object that is not ours is in the way; it was left untouched.
    Blocked(String),
}

/// Writes `desired` only if it is ours to write. A cached object that is ours is applied when
/// it differs; one that is not is left alone. When the caches hold nothing of that name, the
/// name is checked live first (the label-selected caches do not see foreign objects), so
/// server-side apply never merges into an object someone else made.
pub async fn ensure<K>(
    api: &Api<K>,
    desired: &K,
    cached: Option<&K>,
    owner: Owner<'_>,
) -> Result<Written<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let fresh;
    let existing = match cached {
        Some(cached) => Some(cached),
        None => {
            fresh = live(api, desired.meta().name.as_deref().unwrap_or_default()).await?;
            fresh.as_ref()
        }
    };
    match existing {
        Some(existing) if !owner.owns(existing) => Ok(Written::Blocked(blocked(existing))),
        existing => Ok(Written::Done(ssa::apply(api, desired, existing).await?)),
    }
}

/// How a blocking object is named in status.
pub fn blocked<K: Resource<DynamicType = ()>>(object: &K) -> String {
    let meta = object.meta();
    let name = match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    };
    format!(
        "{} {name} exists and is not managed by this ExtensionServer; the operator leaves it untouched: delete or rename it, or rename this ExtensionServer",
        K::kind(&())
    )
}

/// The object called `name`, read live with a list by name (the `list` grant covers it; the
/// operator has no `get` on its children).
pub async fn live<K>(api: &Api<K>, name: &str) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    let list = crate::ssa::retrying_read(|| api.list(&params))
        .await
        .map_err(|source| Error::Get {
            kind: K::kind(&()),
            name: name.to_string(),
            source,
        })?;
    Ok(list.items.into_iter().next())
}
