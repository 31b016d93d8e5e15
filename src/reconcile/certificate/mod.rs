//! The certificate step: plan the CA and serving certificate from the cached Secrets
//! ([`managed`]), or read the user's Secret ([`user_secret`]), for every later step's TLS input.

mod managed;
mod rollout;
mod user_secret;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::TlsMode;
use crate::desired::TlsInput;
use crate::error::Result;
use crate::names::ApiServiceName;
use crate::observe::Observed;
use crate::outcome::CertificateOutcome;
use crate::tls::TlsEvent;
use crate::validated::Validated;

type ObservedApiServices = [(ApiServiceName, Option<Arc<APIService>>)];

/// The result of the TLS step.
pub struct TlsStep {
    pub input: Option<TlsInput>,
    pub outcome: CertificateOutcome,
    pub events: Vec<TlsEvent>,
    /// When the next renewal or rotation step is due.
    pub next_due: Option<Timestamp>,
    /// A CA rotation is in progress (re-check soon).
    pub rotating: bool,
    /// A same-named Secret that is not ours is in the way (left untouched).
    pub in_the_way: Option<String>,
}

pub async fn run(ctx: &Context, validated: &Validated, observed: &Observed) -> Result<TlsStep> {
    let names = &validated.names;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    match validated.tls_mode {
        // The user's Secret is not cached (only Secrets the operator labels are): read it live.
        TlsMode::Secret => {
            user_secret::run(&secrets, &validated.tls_secret_name, names, observed).await
        }
        TlsMode::Managed | TlsMode::Insecure => {
            managed::run(ctx, &secrets, validated, observed).await
        }
    }
}
