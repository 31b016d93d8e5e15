//! Validate: parse what the spec leaves as text and check the operator's rules, before any
//! read or write.

use std::time::Duration;

use crate::context::Settings;
use crate::crd::ExtensionServer;
use crate::error::Result;
use crate::names::{ApiServiceName, Group, ServerNames, Version};
use crate::tls::{self, Lifetimes};

/// A spec that passed validation, with its text fields parsed.
#[derive(Debug, Clone)]
pub struct Validated {
    pub names: ServerNames,
    /// One APIService per version, in spec order.
    pub requested: Vec<ApiServiceName>,
    /// Certificate and CA lifetimes (modes Managed and Insecure).
    pub lifetimes: Lifetimes,
    /// `registration.unregisterAfter`, if set.
    pub unregister_after: Option<Duration>,
    /// The group is within the operator's `--allowed-groups`.
    pub group_allowed: bool,
}

pub fn validate(server: &ExtensionServer, settings: &Settings) -> Result<Validated> {
    let spec = &server.spec;
    let lifetimes = tls::lifetimes(
        spec.tls.certificate_duration.as_deref(),
        spec.tls.ca_duration.as_deref(),
        settings.default_lifetimes,
    )?;
    let unregister_after = match spec.registration.unregister_after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(tls::duration::parse(text)?),
    };
    Ok(Validated {
        names: ServerNames::of(server),
        requested: requested_api_services(server),
        lifetimes,
        unregister_after,
        group_allowed: settings.group_allowed(&spec.group),
    })
}

/// The APIService names a server asks for, in spec order.
pub fn requested_api_services(server: &ExtensionServer) -> Vec<ApiServiceName> {
    let group = Group(server.spec.group.clone());
    server
        .spec
        .versions
        .iter()
        .map(|v| ApiServiceName::new(&Version(v.name.clone()), &group))
        .collect()
}
