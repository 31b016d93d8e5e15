//! Validate: parse what the spec leaves as text and check the trust rules (design §3.5)
//! against the grants and the caches, before any request to the API server.

use std::time::Duration;

use crate::context::Settings;
use crate::crd::ExtensionServer;
use crate::error::Result;
use crate::names::{self, ApiServiceName, ServerNames};
use crate::tls::{self, Lifetimes, duration};
use crate::trust::{self, Claim, Facts};

/// A spec that passed validation, with its text fields parsed.
#[derive(Debug, Clone)]
pub struct Validated {
    pub names: ServerNames,
    /// The server's uid: namespaced children are ours only with a controller ownerRef to it.
    pub uid: String,
    /// One APIService per version, in spec order.
    pub requested: Vec<ApiServiceName>,
    /// Certificate and CA lifetimes (modes Managed and Insecure).
    pub lifetimes: Lifetimes,
    /// `registration.unregisterAfter`, if set.
    pub unregister_after: Option<Duration>,
    /// Whether the claim is allowed (and may adopt), or why it is refused.
    pub claim: Claim,
}

pub fn validate(
    server: &ExtensionServer,
    settings: &Settings,
    facts: Facts<'_>,
) -> Result<Validated> {
    let spec = &server.spec;
    let lifetimes = tls::lifetimes(
        spec.tls.certificate_duration.as_deref(),
        spec.tls.ca_duration.as_deref(),
        settings.default_lifetimes,
    )?;
    let unregister_after = match spec.registration.unregister_after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(duration::parse_field(
            "registration.unregisterAfter",
            text,
            duration::MIN_UNREGISTER_AFTER,
        )?),
    };
    let names = ServerNames::of(server);
    names::check_server_name(&names.name)?;
    let requested = names::requested_api_services(server);
    let claim = trust::check(
        &names,
        &spec.group,
        &requested,
        spec.registration.adopt_existing,
        facts,
    );
    Ok(Validated {
        names,
        uid: server.metadata.uid.clone().unwrap_or_default(),
        requested,
        lifetimes,
        unregister_after,
        claim,
    })
}
