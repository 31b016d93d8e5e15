//! Mode Secret: the user's Secret (ca.crt, tls.crt, tls.key), read live and checked.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::TlsStep;
use super::rollout::{
    availability_settled, ours, rollout_complete, template_cert_hash, trusted_now,
};
use crate::desired::TlsInput;
use crate::error::Result;
use crate::names::ServerNames;
use crate::observe::Observed;
use crate::outcome::CertificateOutcome;
use crate::ssa::get_opt;
use crate::tls::{self, certs};

pub async fn run(
    secrets: &Api<Secret>,
    secret_name: &str,
    names: &ServerNames,
    observed: &Observed,
) -> Result<TlsStep> {
    let invalid = |why: String| TlsStep {
        input: None,
        outcome: CertificateOutcome::SecretInvalid(why),
        events: Vec::new(),
        next_due: None,
        rotating: false,
        in_the_way: None,
    };
    let Some(secret) = get_opt(secrets, secret_name).await? else {
        return Ok(invalid(format!(
            "Secret {}/{secret_name} (tls.secretName) does not exist; create it with ca.crt, tls.crt and tls.key",
            names.namespace
        )));
    };
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| data.get(k).map(|v| v.0.clone()).filter(|v| !v.is_empty());
    let (Some(ca), Some(cert), Some(key)) = (text("ca.crt"), text("tls.crt"), text("tls.key"))
    else {
        return Ok(invalid(format!(
            "Secret {}/{secret_name} must contain ca.crt, tls.crt and tls.key",
            names.namespace
        )));
    };
    let info = match certs::inspect(&cert) {
        Ok(info) => info,
        Err(e) => return Ok(invalid(format!("tls.crt in Secret {secret_name}: {e}"))),
    };
    let wanted = names.service_host();
    if !info.dns_names.contains(&wanted) {
        // The names it has are not echoed: status shows only what this server needs.
        return Ok(invalid(format!(
            "tls.crt in Secret {secret_name} is not valid for {wanted}; reissue it with that DNS name"
        )));
    }
    let ca_certs = certs::inspect_bundle(&ca).unwrap_or_default();
    let signed = certs::signed_by(&cert, &ca);
    if !signed {
        return Ok(invalid(format!(
            "tls.crt in Secret {secret_name} is not signed by its ca.crt; the aggregator would reject it"
        )));
    }
    if info.not_after <= Timestamp::now() {
        return Ok(TlsStep {
            outcome: CertificateOutcome::Expired(format!(
                "tls.crt in Secret {secret_name} expired at {}; renew it",
                info.not_after
            )),
            ..invalid(String::new())
        });
    }
    // A new ca.crt (the issuer's CA changed) is trusted at once, and the CAs trusted so far stay
    // in the bundle until every pod runs the new certificate.
    let serving = tls::KeyedCert {
        cert_pem: String::from_utf8_lossy(&cert).into_owned(),
        key_pem: String::from_utf8_lossy(&key).into_owned(),
    };
    let api_services = observed.api_services.as_slice();
    let rolled = rollout_complete(observed.deployment.as_deref(), Some(&serving))
        && availability_settled(api_services, names);
    let ca = String::from_utf8_lossy(&ca).into_owned();
    let trusted = trusted_now(api_services, names).filter(|_| !rolled);
    let ca_bundle = match &trusted {
        Some(trusted) => certs::bundle(&[&ca, trusted]),
        None => ca.clone(),
    };
    let previous_trusted = certs::bundle(&[&ca]) != certs::bundle(&[&ca_bundle]);
    // The pods are rolled onto the new certificate only once every APIService trusts its CA;
    // until then the template keeps the certificate it has.
    let published = ours(api_services, names).all(|a| {
        let live = a
            .spec
            .ca_bundle
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        live.is_some_and(|live| certs::bundle(&[&live, &ca]) == certs::bundle(&[&live]))
    });
    let new_hash = certs::sha256_hex(&cert)[..16].to_string();
    let cert_hash = match observed.deployment.as_deref().and_then(template_cert_hash) {
        Some(held) if !published => held.clone(),
        _ => new_hash,
    };
    Ok(TlsStep {
        input: Some(TlsInput {
            managed_serving: None,
            ca_bundle: Some(ca_bundle),
            cert_hash,
            front_proxy_hash: None,
        }),
        outcome: CertificateOutcome::Valid {
            ca_not_after: ca_certs.iter().map(|c| c.not_after).min(),
            serving: info.clone(),
            previous_trusted,
        },
        events: Vec::new(),
        next_due: Some(info.not_after),
        rotating: previous_trusted || !published,
        in_the_way: None,
    })
}
