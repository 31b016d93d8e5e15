//! The local cluster's PKI: a cluster CA with serving and client certs, a separate front-proxy
//! CA for the aggregator, and the service-account signing key. All keys are ECDSA P-256.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, PEM-encoded.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(common_name: &str) -> Result<Ca> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
}

fn leaf(
    ca: &Ca,
    common_name: &str,
    organization: Option<&str>,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<Pem> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn client(ca: &Ca, user: &str, group: Option<&str>) -> Result<Pem> {
    leaf(ca, user, group, vec![], ExtendedKeyUsagePurpose::ClientAuth)
}

fn write(dir: &Path, name: &str, pem: &Pem) -> Result<()> {
    std::fs::write(dir.join(format!("{name}.crt")), &pem.cert)?;
    std::fs::write(dir.join(format!("{name}.key")), &pem.key)?;
    Ok(())
}

/// The client identities that get a kubeconfig.
pub const CLIENTS: &[(&str, &str, Option<&str>)] = &[
    ("admin", "kubernetes-admin", Some("system:masters")),
    (
        "kube-controller-manager",
        "system:kube-controller-manager",
        None,
    ),
    ("kube-scheduler", "system:kube-scheduler", None),
    ("kwok", "kwok", Some("system:masters")),
];

/// Writes a new front-proxy CA and client certificate into `dir` (replacing any).
pub fn front_proxy(dir: &Path) -> Result<()> {
    let front_proxy_ca = ca("extension-server-operator-test-front-proxy-ca")?;
    std::fs::write(dir.join("front-proxy-ca.crt"), front_proxy_ca.pem())?;
    write(
        dir,
        "front-proxy-client",
        &client(&front_proxy_ca, FRONT_PROXY_CLIENT, None)?,
    )
}

/// The name the front-proxy client cert carries; the apiserver's allowed requestheader name.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// Writes the whole PKI into `dir`.
pub fn generate(dir: &Path, service_ip: Ipv4Addr) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let cluster_ca = ca("extension-server-operator-test-ca")?;
    std::fs::write(dir.join("ca.crt"), cluster_ca.pem())?;
    std::fs::write(dir.join("ca.key"), cluster_ca.key().serialize_pem())?;

    let mut sans = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V4(service_ip)),
    ];
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        sans.push(SanType::DnsName(name.try_into()?));
    }
    let serving = leaf(
        &cluster_ca,
        "kube-apiserver",
        None,
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write(dir, "apiserver", &serving)?;

    for (file, user, group) in CLIENTS {
        write(dir, file, &client(&cluster_ca, user, *group)?)?;
    }

    front_proxy(dir)?;

    let sa_key = KeyPair::generate().context("service-account key")?;
    std::fs::write(dir.join("sa.key"), sa_key.serialize_pem())?;
    std::fs::write(dir.join("sa.pub"), sa_key.public_key_pem())?;
    Ok(())
}
