//! A cached object kept as its JSON text. k8s-openapi inlines every optional field, so a typed
//! Deployment (its pod template inlines every volume source of every volume) takes about 14 KiB
//! where its JSON takes 3. A pass decodes the few objects it reads.

use std::borrow::Cow;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// An object of kind `K` as JSON; its metadata holds only the name and namespace (the cache's
/// key).
#[derive(Debug)]
pub struct Packed<K> {
    metadata: ObjectMeta,
    json: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned> Packed<K> {
    pub fn pack(object: &K) -> Self {
        let json = serde_json::to_string(object).unwrap_or_else(|error| {
            // Not expected for an object just decoded; unpacking it fails and the pass
            // treats it as missing (and applies it).
            tracing::warn!(%error, kind = %K::kind(&()), "could not encode an object for the cache");
            String::new()
        });
        let meta = object.meta();
        Self {
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                ..ObjectMeta::default()
            },
            json: json.into(),
            kind: PhantomData,
        }
    }

    /// The object; `None` (logged) if its text does not decode.
    pub fn unpack(&self) -> Option<K> {
        serde_json::from_str(&self.json)
            .inspect_err(|error| tracing::warn!(%error, name = ?self.metadata.name, "could not decode a cached object"))
            .ok()
    }
}

/// Decodes `K` and packs it (for caches filled from JSON, as in the mock-API scenarios).
impl<'de, K: Resource<DynamicType = ()> + Serialize + DeserializeOwned> Deserialize<'de>
    for Packed<K>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(|object| Self::pack(&object))
    }
}

impl<K> Resource for Packed<K>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Keeps `writer`'s cache from a stream of events of `K`, each object packed.
pub fn packing<K>(mut writer: Writer<Packed<K>>) -> impl FnMut(&Event<K>)
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    move |event| writer.apply_watcher_event(&pack_event(event))
}

/// The same event with its object packed.
fn pack_event<K>(event: &Event<K>) -> Event<Packed<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    match event {
        Event::Apply(object) => Event::Apply(Packed::pack(object)),
        Event::Delete(object) => Event::Delete(Packed::pack(object)),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(Packed::pack(object)),
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;

    #[test]
    fn a_packed_object_unpacks_to_itself_and_keeps_its_key() {
        let deployment: Deployment = serde_yaml::from_str(
            "metadata: {name: d, namespace: n, labels: {a: b}}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i}]\n      volumes: [{name: tls, secret: {secretName: s}}]\nstatus: {readyReplicas: 1}\n",
        )
        .expect("deployment");
        let packed = Packed::pack(&deployment);
        assert_eq!(packed.unpack(), Some(deployment));
        assert_eq!(packed.meta().name.as_deref(), Some("d"));
        assert_eq!(packed.meta().namespace.as_deref(), Some("n"));
        assert_eq!(packed.meta().labels, None, "the key only");
        assert_eq!(Packed::<Deployment>::kind(&()), "Deployment");
    }

    #[test]
    fn text_that_does_not_decode_unpacks_to_nothing() {
        let mut packed = Packed::pack(&Deployment::default());
        packed.json = "{".into();
        assert_eq!(packed.unpack(), None);
    }
}
