//! External servers (`spec.external`): the TLS step reads the user's CA instead of running one.
//! A verified handshake with the host stands in for ready replicas (`reconcile::probe`).

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::context::Context;
use crate::crd::TlsMode;
use crate::desired::TlsInput;
use crate::error::Result;
use crate::outcome::CertificateOutcome;
use crate::reconcile::certificate::TlsStep;
use crate::ssa::get_opt;
use crate::tls::certs;
use crate::validated::Validated;

/// The CA the APIServices trust: `ca.crt` of the Secret in `tls.secretName` (mode Secret), or
/// none (mode Insecure).
pub async fn tls(ctx: &Context, validated: &Validated) -> Result<TlsStep> {
    let names = &validated.names;
    let step = |input: Option<TlsInput>, outcome| TlsStep {
        input,
        outcome,
        events: Vec::new(),
        next_due: None,
        rotating: false,
        in_the_way: None,
    };
    let input = |ca_bundle: Option<String>| TlsInput {
        managed_serving: None,
        ca_bundle,
        cert_hash: String::new(),
        front_proxy_hash: None,
    };
    if validated.tls_mode == TlsMode::Insecure {
        let outcome = CertificateOutcome::External { ca: None };
        return Ok(step(Some(input(None)), outcome));
    }
    let secret_name = validated.tls_secret_name.clone();
    // The user's Secret is not cached (only Secrets the operator labels are): read it live.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let ca = get_opt(&secrets, &secret_name)
        .await?
        .and_then(|s| s.data?.remove("ca.crt"))
        .map(|v| v.0)
        .filter(|v| !v.is_empty());
    let invalid = |why: String| Ok(step(None, CertificateOutcome::SecretInvalid(why)));
    let Some(ca) = ca else {
        return invalid(format!(
            "Secret {}/{secret_name} (tls.secretName) must exist and hold ca.crt: the CA that signed the external server's certificate",
            names.namespace
        ));
    };
    let cas = match certs::inspect_bundle(&ca) {
        Ok(cas) if !cas.is_empty() => cas,
        Ok(_) => {
            return invalid(format!(
                "ca.crt in Secret {secret_name} holds no certificate"
            ));
        }
        Err(e) => return invalid(format!("ca.crt in Secret {secret_name}: {e}")),
    };
    let ca_not_after = cas.iter().map(|c| c.not_after).min();
    let outcome = CertificateOutcome::External {
        ca: Some((secret_name.clone(), ca_not_after)),
    };
    let bundle = String::from_utf8_lossy(&ca).into_owned();
    Ok(step(Some(input(Some(bundle))), outcome))
}
