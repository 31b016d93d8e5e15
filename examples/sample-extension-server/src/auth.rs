//! Authentication by "request headers": kube-apiserver (the aggregator) proxies
//! each request with its front-proxy client certificate and names the real user
//! in headers such as `X-Remote-User` / `X-Remote-Group`. We trust those headers
//! only when the connection's client certificate chains to the requestheader CA
//! and its CN is allowed. The settings come from the ConfigMap
//! `kube-system/extension-apiserver-authentication`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use http::HeaderMap;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::tls;

/// An authenticated user, as the aggregator named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The requestheader settings published by kube-apiserver.
pub struct RequestHeaderAuth {
    client_ca: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
    username_headers: Vec<String>,
    group_headers: Vec<String>,
}

impl RequestHeaderAuth {
    /// Reads `kube-system/extension-apiserver-authentication`. This needs the
    /// `extension-apiserver-authentication-reader` Role in kube-system.
    pub async fn load(client: kube::Client) -> Result<Self> {
        let api: Api<ConfigMap> = Api::namespaced(client, "kube-system");
        let cm = api
            .get("extension-apiserver-authentication")
            .await
            .context("reading ConfigMap kube-system/extension-apiserver-authentication")?;
        Self::from_data(&cm.data.unwrap_or_default())
    }

    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self> {
        let ca = data
            .get("requestheader-client-ca-file")
            .context("no requestheader-client-ca-file: is the aggregation layer enabled?")?;
        Ok(RequestHeaderAuth {
            client_ca: tls::client_ca_verifier(ca)?,
            allowed_names: json_list(data, "requestheader-allowed-names", &[])?,
            username_headers: json_list(
                data,
                "requestheader-username-headers",
                &["X-Remote-User"],
            )?,
            group_headers: json_list(data, "requestheader-group-headers", &["X-Remote-Group"])?,
        })
    }

    /// The CA verifier, also used by the TLS layer to hint the CA to clients.
    pub fn client_ca(&self) -> Arc<dyn ClientCertVerifier> {
        self.client_ca.clone()
    }

    /// Who sent this request? `peer_certs` is the client's TLS chain (leaf first).
    /// The error says why authentication failed, for the logs.
    pub fn authenticate(
        &self,
        peer_certs: &[CertificateDer],
        headers: &HeaderMap,
    ) -> Result<User, String> {
        let (leaf, intermediates) = peer_certs.split_first().ok_or("no client certificate")?;
        self.client_ca
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| format!("client certificate not trusted: {e}"))?;
        let cn = common_name(leaf).ok_or("client certificate has no common name")?;
        if !cn_allowed(&self.allowed_names, &cn) {
            return Err(format!(
                "client certificate CN {cn:?} is not in requestheader-allowed-names"
            ));
        }
        user_from_headers(headers, &self.username_headers, &self.group_headers)
            .ok_or_else(|| "no username header".to_string())
    }
}

/// Reads a ConfigMap value holding a JSON array of strings, with a default.
fn json_list(data: &BTreeMap<String, String>, key: &str, default: &[&str]) -> Result<Vec<String>> {
    match data.get(key) {
        Some(raw) => serde_json::from_str(raw).with_context(|| format!("parsing {key}")),
        None => Ok(default.iter().map(|s| s.to_string()).collect()),
    }
}

/// The subject CN of a DER certificate.
fn common_name(cert: &CertificateDer) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";

/// An empty allowed-names list means any CN signed by the CA is accepted.
pub fn cn_allowed(allowed_names: &[String], cn: &str) -> bool {
    allowed_names.is_empty() || allowed_names.iter().any(|n| n == cn)
}

/// The user is the first non-empty username header; groups are every value
/// of every group header, plus `system:authenticated`, which every
/// authenticated user belongs to (as in kube-apiserver). The aggregator's own
/// discovery and OpenAPI requests send no group header and rely on it.
pub fn user_from_headers(
    headers: &HeaderMap,
    username_headers: &[String],
    group_headers: &[String],
) -> Option<User> {
    let name = username_headers
        .iter()
        .filter_map(|h| headers.get(h.as_str())?.to_str().ok())
        .find(|v| !v.is_empty())?
        .to_string();
    let mut groups: Vec<String> = group_headers
        .iter()
        .flat_map(|h| headers.get_all(h.as_str()))
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    Some(User { name, groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn user_comes_from_headers() {
        let user_h = strings(&["X-Remote-User"]);
        let group_h = strings(&["X-Remote-Group"]);
        let h = headers(&[
            ("x-remote-user", "alice"),
            ("X-Remote-Group", "devs"),
            ("X-Remote-Group", "system:authenticated"),
        ]);
        let user = user_from_headers(&h, &user_h, &group_h).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, strings(&["devs", "system:authenticated"]));

        assert_eq!(
            user_from_headers(&headers(&[("X-Remote-Group", "g")]), &user_h, &group_h),
            None
        );
        assert_eq!(
            user_from_headers(&headers(&[("X-Remote-User", "")]), &user_h, &group_h),
            None
        );

        // Several username headers: the first one present wins.
        let two = strings(&["X-First", "X-Second"]);
        let user = user_from_headers(&headers(&[("X-Second", "bob")]), &two, &group_h).unwrap();
        assert_eq!(
            user,
            User {
                name: "bob".into(),
                groups: strings(&[AUTHENTICATED])
            }
        );
    }

    #[test]
    fn allowed_names() {
        assert!(cn_allowed(&[], "anything"));
        let allowed = strings(&["front-proxy-client"]);
        assert!(cn_allowed(&allowed, "front-proxy-client"));
        assert!(!cn_allowed(&allowed, "someone-else"));
    }

    /// A self-signed CA (PEM) and a client cert it signed for `cn` (DER).
    fn ca_and_client(cn: &str) -> (String, CertificateDer<'static>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = params
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        (ca_cert.pem(), client.der().clone())
    }

    fn auth_for(ca_pem: &str, allowed: &str) -> RequestHeaderAuth {
        let data = BTreeMap::from([
            (
                "requestheader-client-ca-file".to_string(),
                ca_pem.to_string(),
            ),
            (
                "requestheader-allowed-names".to_string(),
                allowed.to_string(),
            ),
        ]);
        RequestHeaderAuth::from_data(&data).unwrap()
    }

    #[test]
    fn authenticates_only_trusted_allowed_certificates() {
        let (ca, proxy_cert) = ca_and_client("front-proxy-client");
        let (_, stranger_cert) = ca_and_client("front-proxy-client");
        let h = headers(&[("X-Remote-User", "alice"), ("X-Remote-Group", "devs")]);

        let any_cn = auth_for(&ca, "[]");
        let alice = any_cn
            .authenticate(std::slice::from_ref(&proxy_cert), &h)
            .unwrap();
        assert_eq!(
            alice,
            User {
                name: "alice".into(),
                groups: strings(&["devs", AUTHENTICATED])
            }
        );

        assert!(any_cn.authenticate(&[], &h).is_err(), "no certificate");
        assert!(
            any_cn.authenticate(&[stranger_cert], &h).is_err(),
            "other CA"
        );
        let no_user = headers(&[("X-Remote-Group", "devs")]);
        assert!(
            any_cn
                .authenticate(std::slice::from_ref(&proxy_cert), &no_user)
                .is_err()
        );

        let only_other = auth_for(&ca, r#"["someone-else"]"#);
        assert!(
            only_other
                .authenticate(std::slice::from_ref(&proxy_cert), &h)
                .is_err()
        );
    }
}
