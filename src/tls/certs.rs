//! Issuing (rcgen, ECDSA P-256) and inspecting (x509-parser) certificates. Pure functions of
//! their inputs and `now`; no key material is ever logged.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for KeyedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("KeyedCert")
            .field("cert_sha256", &sha256_hex(self.cert_pem.as_bytes()))
            .finish_non_exhaustive()
    }
}

/// What the operator needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub dns_names: Vec<String>,
    pub is_ca: bool,
    /// SHA-256 of the DER encoding.
    pub fingerprint: String,
}

impl CertInfo {
    /// When to renew: at 2/3 of the lifetime.
    pub fn renewal_time(&self) -> Timestamp {
        let lifetime = self.not_after.as_second() - self.not_before.as_second();
        Timestamp::from_second(self.not_before.as_second() + lifetime * 2 / 3)
            .unwrap_or(self.not_after)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_offset(ts: Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(ts.as_second())
        .map_err(|e| Error::ReadCertificate(e.to_string()))
}

/// Sets the validity to `lifetime` from now, ending no later than `cap` (the issuer's own end).
fn validity(
    params: &mut CertificateParams,
    now: Timestamp,
    lifetime: Duration,
    cap: Option<Timestamp>,
) -> Result<()> {
    // Backdate a little for clock skew between the operator and the aggregator.
    let lifetime = i64::try_from(lifetime.as_secs())
        .map_err(|e| Error::ReadCertificate(format!("lifetime: {e}")))?;
    let skew = 60.min(lifetime / 10);
    let not_before = Timestamp::from_second(now.as_second() - skew)
        .map_err(|e| Error::ReadCertificate(e.to_string()))?;
    let mut not_after = Timestamp::from_second(now.as_second().saturating_add(lifetime))
        .map_err(|e| Error::ReadCertificate(e.to_string()))?;
    if let Some(cap) = cap {
        not_after = not_after.min(cap);
    }
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    Ok(())
}

/// A new self-signed CA.
pub fn generate_ca(common_name: &str, now: Timestamp, lifetime: Duration) -> Result<KeyedCert> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, now, lifetime, None)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `dns_names`, signed by `ca`; it never outlives `ca`.
pub fn issue_serving(
    ca: &KeyedCert,
    dns_names: &[String],
    now: Timestamp,
    lifetime: Duration,
) -> Result<KeyedCert> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut params = CertificateParams::default();
    if let Some(first) = dns_names.first() {
        params.distinguished_name.push(DnType::CommonName, first);
    }
    params.subject_alt_names = dns_names
        .iter()
        .map(|n| Ok(SanType::DnsName(n.clone().try_into()?)))
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let ca_not_after = inspect(ca.cert_pem.as_bytes())?.not_after;
    validity(&mut params, now, lifetime, Some(ca_not_after))?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// True if `keyed`'s private key belongs to its certificate.
pub fn key_matches(keyed: &KeyedCert) -> bool {
    let Ok(key) = KeyPair::from_pem(&keyed.key_pem) else {
        return false;
    };
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(keyed.cert_pem.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&block.contents) else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// Parses every certificate in a PEM bundle.
pub fn inspect_bundle(pem: &[u8]) -> Result<Vec<CertInfo>> {
    let mut infos = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| Error::ReadCertificate(e.to_string()))?;
        let cert = block
            .parse_x509()
            .map_err(|e| Error::ReadCertificate(e.to_string()))?;
        let ts = |t: x509_parser::time::ASN1Time| {
            Timestamp::from_second(t.timestamp()).map_err(|e| Error::ReadCertificate(e.to_string()))
        };
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        infos.push(CertInfo {
            not_before: ts(cert.validity().not_before)?,
            not_after: ts(cert.validity().not_after)?,
            dns_names,
            is_ca: cert.is_ca(),
            fingerprint: sha256_hex(&block.contents),
        });
    }
    if infos.is_empty() {
        return Err(Error::ReadCertificate("no certificate in PEM data".into()));
    }
    Ok(infos)
}

/// Parses the first certificate of a PEM bundle.
pub fn inspect(pem: &[u8]) -> Result<CertInfo> {
    inspect_bundle(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::ReadCertificate("no certificate in PEM data".into()))
}

/// True if `cert_pem` was signed by any CA in `bundle_pem` (checks signatures, not names).
pub fn signed_by(cert_pem: &[u8], bundle_pem: &[u8]) -> bool {
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(cert_pem) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&block.contents) else {
        return false;
    };
    x509_parser::pem::Pem::iter_from_buffer(bundle_pem)
        .filter_map(|ca| ca.ok())
        .any(|ca| {
            x509_parser::parse_x509_certificate(&ca.contents)
                .is_ok_and(|(_, ca)| cert.verify_signature(Some(ca.public_key())).is_ok())
        })
}

/// Concatenates PEM certificates (each argument one or more) into one bundle, in order,
/// each certificate once.
pub fn bundle(certs: &[&str]) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    let mut seen: Vec<&str> = Vec::new();
    for pem in certs {
        for block in pem.split_inclusive(END) {
            let block = block.trim();
            if block.ends_with(END) && !seen.contains(&block) {
                seen.push(block);
            }
        }
    }
    seen.iter().map(|b| format!("{b}\n")).collect()
}
