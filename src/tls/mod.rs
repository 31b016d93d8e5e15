//! TLS for mode Managed: one CA per ExtensionServer, a serving certificate renewed at 2/3 of
//! its lifetime, and CA rotation with overlap:
//!
//! 1. steady: bundle = [current]
//! 2. the CA reaches 2/3 of its life: a `next` CA is created; bundle = [current, next]
//! 3. once every APIService carries that bundle: `next` becomes current, the old CA is kept as
//!    `previous`, and a serving cert is issued from the new CA; bundle = [current, previous]
//! 4. once the pods run the new serving cert: `previous` is dropped; bundle = [current]
//!
//! At every step the bundle verifies whatever certificate a pod may still serve.

pub mod certs;
pub mod duration;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

pub use certs::{CertInfo, KeyedCert};

use crate::error::{Error, Result};

/// Keys of the CA Secret `<name>-ca`.
pub mod ca_keys {
    pub const CERT: &str = "ca.crt";
    pub const KEY: &str = "ca.key";
    pub const NEXT_CERT: &str = "next-ca.crt";
    pub const NEXT_KEY: &str = "next-ca.key";
    pub const PREVIOUS_CERT: &str = "previous-ca.crt";
}

/// The CA material of one ExtensionServer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSet {
    pub current: KeyedCert,
    pub next: Option<KeyedCert>,
    pub previous_cert: Option<String>,
}

/// What the CA Secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaRead {
    /// No CA Secret.
    Missing,
    /// A CA Secret that cannot be used, and why. It is never replaced silently: the
    /// APIServices keep trusting what they trust.
    Damaged(String),
    Usable(CaSet),
}

impl CaRead {
    /// Reads and checks the CA Secret: each certificate parses and each key belongs to its
    /// certificate.
    pub fn from_secret(secret: Option<&Secret>) -> Self {
        let Some(secret) = secret else {
            return Self::Missing;
        };
        Self::from_secret_data(secret.data.as_ref().unwrap_or(&BTreeMap::new()))
    }

    /// As [`CaRead::from_secret`], for a present Secret's data.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Self {
        let Some(ca) = CaSet::from_secret_data(data) else {
            return Self::Damaged(format!("it lacks {} or {}", ca_keys::CERT, ca_keys::KEY));
        };
        let mut pairs = vec![(&ca.current, ca_keys::CERT, ca_keys::KEY)];
        if let Some(next) = &ca.next {
            pairs.push((next, ca_keys::NEXT_CERT, ca_keys::NEXT_KEY));
        }
        for (keyed, cert, key) in pairs {
            if let Err(e) = certs::inspect(keyed.cert_pem.as_bytes()) {
                return Self::Damaged(format!("{cert} is not a PEM certificate ({e})"));
            }
            if !certs::key_matches(keyed) {
                return Self::Damaged(format!("{key} does not belong to {cert}"));
            }
        }
        Self::Usable(ca)
    }
}

impl CaSet {
    /// Reads the CA Secret's data; `None` if it lacks the current CA.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Option<Self> {
        let text = |k: &str| {
            data.get(k)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|s| !s.trim().is_empty())
        };
        let keyed = |c: &str, k: &str| {
            Some(KeyedCert {
                cert_pem: text(c)?,
                key_pem: text(k)?,
            })
        };
        Some(Self {
            current: keyed(ca_keys::CERT, ca_keys::KEY)?,
            next: keyed(ca_keys::NEXT_CERT, ca_keys::NEXT_KEY),
            previous_cert: text(ca_keys::PREVIOUS_CERT),
        })
    }

    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
        };
        put(ca_keys::CERT, &self.current.cert_pem);
        put(ca_keys::KEY, &self.current.key_pem);
        if let Some(next) = &self.next {
            put(ca_keys::NEXT_CERT, &next.cert_pem);
            put(ca_keys::NEXT_KEY, &next.key_pem);
        }
        if let Some(previous) = &self.previous_cert {
            put(ca_keys::PREVIOUS_CERT, previous);
        }
        data
    }

    /// The trust bundle: current, then next or previous.
    pub fn bundle(&self) -> String {
        let mut certs = vec![self.current.cert_pem.as_str()];
        if let Some(next) = &self.next {
            certs.push(&next.cert_pem);
        }
        if let Some(previous) = &self.previous_cert {
            certs.push(previous);
        }
        certs::bundle(&certs)
    }
}

/// What is observed of the cluster that the TLS plan depends on.
#[derive(Debug, Clone)]
pub struct TlsObserved {
    pub ca: Option<CaSet>,
    pub serving: Option<KeyedCert>,
    /// Every registered APIService already carries the current bundle.
    pub bundle_propagated: bool,
    /// The Deployment runs the current serving certificate on all replicas, and the
    /// aggregator's view of the APIServices has settled.
    pub rollout_complete: bool,
    /// The CAs the APIServices trust now (PEM). When the CA Secret is gone and a new CA must
    /// be created, these stay trusted until the pods serve a certificate from the new one.
    pub trusted: Option<String>,
}

/// TLS lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub certificate: Duration,
    pub ca: Duration,
}

/// What happened to the TLS material in this pass (drives Events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsEvent {
    CaCreated,
    /// The CA Secret was gone while the APIServices trusted a CA: a new CA was created, and
    /// the old one stays trusted until the rollout.
    CaRecreated,
    CaRotationStarted,
    CaPromoted,
    CaRotationCompleted,
    CertificateIssued,
    CertificateRenewed,
}

/// The outcome of planning: the CA to write (if it changed) and the serving cert to use.
#[derive(Debug, Clone)]
pub struct TlsPlan {
    pub ca: CaSet,
    pub ca_changed: bool,
    pub serving: KeyedCert,
    pub serving_info: CertInfo,
    pub ca_info: CertInfo,
    pub events: Vec<TlsEvent>,
}

impl TlsPlan {
    pub fn bundle(&self) -> String {
        self.ca.bundle()
    }
}

/// Decides the CA and serving certificate for this pass (pure apart from key generation).
pub fn plan(
    observed: &TlsObserved,
    dns_names: &[String],
    common_name: &str,
    lifetimes: Lifetimes,
    now: Timestamp,
) -> Result<TlsPlan> {
    let mut events = Vec::new();
    let (mut ca, mut ca_changed) = match &observed.ca {
        Some(ca) => (ca.clone(), false),
        None => {
            let current = certs::generate_ca(common_name, now, lifetimes.ca)?;
            let previous_cert = observed
                .trusted
                .clone()
                .filter(|trusted| !trusted.trim().is_empty());
            events.push(match previous_cert {
                Some(_) => TlsEvent::CaRecreated,
                None => TlsEvent::CaCreated,
            });
            (
                CaSet {
                    current,
                    next: None,
                    previous_cert,
                },
                true,
            )
        }
    };
    let ca_info = certs::inspect(ca.current.cert_pem.as_bytes())?;

    if ca.next.is_none() && ca.previous_cert.is_none() && now >= ca_info.renewal_time() {
        ca.next = Some(certs::generate_ca(common_name, now, lifetimes.ca)?);
        ca_changed = true;
        events.push(TlsEvent::CaRotationStarted);
    } else if observed.bundle_propagated
        && !ca_changed
        && let Some(next) = ca.next.take()
    {
        ca.previous_cert = Some(std::mem::replace(&mut ca.current, next).cert_pem);
        ca_changed = true;
        events.push(TlsEvent::CaPromoted);
    }

    let reusable = observed
        .serving
        .as_ref()
        .filter(|serving| serving_is_valid(serving, &ca.current, dns_names, now));
    let serving = match reusable {
        Some(serving) => serving.clone(),
        None => {
            events.push(if observed.serving.is_some() {
                TlsEvent::CertificateRenewed
            } else {
                TlsEvent::CertificateIssued
            });
            certs::issue_serving(&ca.current, dns_names, now, lifetimes.certificate)?
        }
    };
    let serving_info = certs::inspect(serving.cert_pem.as_bytes())?;

    let serving_unchanged = reusable.is_some();
    if ca.previous_cert.is_some() && observed.rollout_complete && serving_unchanged && !ca_changed {
        ca.previous_cert = None;
        ca_changed = true;
        events.push(TlsEvent::CaRotationCompleted);
    }
    let ca_info = certs::inspect(ca.current.cert_pem.as_bytes())?;
    Ok(TlsPlan {
        ca,
        ca_changed,
        serving,
        serving_info,
        ca_info,
        events,
    })
}

/// True if the serving cert can stay: signed by `ca`, for exactly these names, not yet due.
pub fn serving_is_valid(
    serving: &KeyedCert,
    ca: &KeyedCert,
    dns_names: &[String],
    now: Timestamp,
) -> bool {
    let Ok(info) = certs::inspect(serving.cert_pem.as_bytes()) else {
        return false;
    };
    let mut have = info.dns_names.clone();
    let mut want = dns_names.to_vec();
    have.sort();
    want.sort();
    have == want
        && now < info.renewal_time()
        && certs::signed_by(serving.cert_pem.as_bytes(), ca.cert_pem.as_bytes())
        && certs::key_matches(serving)
}

/// Reads `tls.crt`/`tls.key` out of Secret data.
pub fn serving_from_secret_data(data: &BTreeMap<String, ByteString>) -> Option<KeyedCert> {
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Some(KeyedCert {
        cert_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
    })
}

/// Parses the configured lifetimes, falling back to the defaults, and checks their bounds:
/// each from 10s to 87600h, the CA longer than the serving certificate.
pub fn lifetimes(
    certificate: Option<&str>,
    ca: Option<&str>,
    defaults: Lifetimes,
) -> Result<Lifetimes> {
    let parse = |field: &str, text: Option<&str>, default: Duration| match text {
        Some(t) if !t.is_empty() => duration::parse_field(field, t, duration::MIN_LIFETIME),
        _ => Ok(default),
    };
    let lifetimes = Lifetimes {
        certificate: parse("tls.certificateDuration", certificate, defaults.certificate)?,
        ca: parse("tls.caDuration", ca, defaults.ca)?,
    };
    let bounds = duration::MIN_LIFETIME..=duration::MAX;
    if !bounds.contains(&lifetimes.certificate) || !bounds.contains(&lifetimes.ca) {
        return Err(Error::InvalidSpec(
            "the default certificate and CA durations must be from 10s to 87600h".into(),
        ));
    }
    if lifetimes.ca <= lifetimes.certificate {
        return Err(Error::InvalidSpec(format!(
            "tls.caDuration ({:?}) must be longer than tls.certificateDuration ({:?})",
            lifetimes.ca, lifetimes.certificate
        )));
    }
    Ok(lifetimes)
}

#[cfg(test)]
mod tests;
