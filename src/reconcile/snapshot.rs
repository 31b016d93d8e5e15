//! What the trust rules read, taken from the caches once per pass.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use super::Reconciler;
use crate::apiservice::APIService;
use crate::crd::ExtensionServer;
use crate::trust::{self, grants::Grants};

/// The grants in force and the cached facts, owned for the length of one pass.
pub struct TrustSnapshot {
    grants: Option<Arc<Grants>>,
    namespace_labels: BTreeMap<String, String>,
    api_services: Vec<Arc<APIService>>,
    crd_names: Vec<String>,
    apiserver_addresses: Vec<String>,
    claimants: Vec<trust::Claimant>,
}

impl TrustSnapshot {
    pub fn take(reconciler: &Reconciler, server: &ExtensionServer) -> Self {
        let namespace = server.namespace().unwrap_or_default();
        let grants = reconciler.ctx.grants();
        let claimants = trust::claimants::of(
            server,
            &reconciler.servers.store.state(),
            grants.as_deref(),
            |ns| reconciler.facts.namespace_labels(ns),
        );
        Self {
            grants,
            namespace_labels: reconciler.facts.namespace_labels(&namespace),
            api_services: reconciler.stores.api_services.state(),
            crd_names: reconciler.facts.crd_names(),
            apiserver_addresses: reconciler
                .ctx
                .apiserver_addresses
                .get()
                .cloned()
                .unwrap_or_default(),
            claimants,
        }
    }

    pub fn facts(&self) -> trust::Facts<'_> {
        trust::Facts {
            grants: self.grants.as_deref(),
            namespace_labels: &self.namespace_labels,
            api_services: &self.api_services,
            crd_names: &self.crd_names,
            apiserver_addresses: &self.apiserver_addresses,
            claimants: &self.claimants,
        }
    }
}
