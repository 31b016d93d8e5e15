//! Mode Secret: the user's Secret (often written by cert-manager) does not carry the operator's
//! label, so it is not in the Secret cache. A metadata-only watch of Secrets wakes the servers
//! that name a Secret when it changes; their pass then reads that one Secret. Nothing of it is
//! kept: no store, and no Secret data ever reaches the operator this way.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::crd::{ExtensionServer, TlsMode};

/// Wires the watch into `controller`. With `namespace`, only that namespace's Secrets.
pub fn watch(
    controller: Controller<ExtensionServer>,
    client: &Client,
    namespace: Option<&str>,
    servers: Store<ExtensionServer>,
) -> Controller<ExtensionServer> {
    // An Api of PartialObjectMeta asks for metadata only.
    let api: Api<PartialObjectMeta<Secret>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let changes = watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    controller.watches_stream(changes, move |secret: PartialObjectMeta<Secret>| {
        users_of(&servers, secret.namespace().as_deref(), &secret.name_any())
    })
}

/// The servers in mode Secret that name this Secret.
fn users_of(
    servers: &Store<ExtensionServer>,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<ExtensionServer>> {
    servers
        .state()
        .iter()
        .filter(|s| {
            s.spec.tls.mode == TlsMode::Secret
                && s.spec.tls.secret_name.as_deref() == Some(name)
                && s.namespace().as_deref() == namespace
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}
