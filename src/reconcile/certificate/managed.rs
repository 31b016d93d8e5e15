//! Mode Managed (and Insecure): the operator's own CA and serving certificate, planned from the
//! cached Secrets; a changed CA is written create-only or at a resourceVersion.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::rollout::{availability_settled, ours, rollout_complete, trusted_now};
use super::{ObservedApiServices, TlsStep};
use crate::context::Context;
use crate::crd::TlsMode;
use crate::desired::TlsInput;
use crate::error::{Error, Result};
use crate::names::ServerNames;
use crate::observe::Observed;
use crate::outcome::CertificateOutcome;
use crate::ownership::{self, Owner};
use crate::ssa::{self, get_opt};
use crate::tls::{self, CaRead, CaSet, TlsObserved, certs};
use crate::validated::Validated;

pub async fn run(
    ctx: &Context,
    secrets: &Api<Secret>,
    validated: &Validated,
    observed: &Observed,
) -> Result<TlsStep> {
    let names = &validated.names;

    let cached = (observed.ca_secret.clone(), observed.tls_secret.clone());
    let labels = crate::desired::ca_secret_labels(names, &ctx.settings.child_labels);
    let step = managed(secrets, validated, observed, cached, &labels, false).await?;
    match step {
        Managed::Done(step) => Ok(*step),
        // Minting is a create and a CA change a replace at a resourceVersion: both
        // need the Secrets as they are now, since the cache may not have seen this
        // server's last write. Read them live and plan again.
        Managed::NeedsFreshSecrets => {
            let live = (
                get_opt(secrets, &names.ca_secret()).await?.map(Arc::new),
                get_opt(secrets, &names.tls_secret()).await?.map(Arc::new),
            );
            match managed(secrets, validated, observed, live, &labels, true).await? {
                Managed::Done(step) => Ok(*step),
                Managed::NeedsFreshSecrets => Err(Error::ReadCertificate(
                    "the CA and serving Secrets changed while planning".into(),
                )),
            }
        }
    }
}

/// The managed TLS step's outcome: done, or a write of the CA (or a mint) that first needs
/// fresh Secrets.
enum Managed {
    Done(Box<TlsStep>),
    NeedsFreshSecrets,
}

async fn managed(
    secrets: &Api<Secret>,
    validated: &Validated,
    observed: &Observed,
    (ca_secret, tls_secret): (Option<Arc<Secret>>, Option<Arc<Secret>>),
    ca_labels: &Secret,
    fresh: bool,
) -> Result<Managed> {
    let names = &validated.names;
    let owner = Owner::Uid(&validated.uid);
    if let Some(foreign) = [&ca_secret, &tls_secret]
        .into_iter()
        .flatten()
        .find(|s| !owner.owns(s.as_ref()))
    {
        return Ok(Managed::Done(Box::new(TlsStep {
            input: None,
            outcome: CertificateOutcome::SecretInvalid(ownership::blocked(foreign.as_ref())),
            events: Vec::new(),
            next_due: None,
            rotating: false,
            in_the_way: Some(ownership::blocked(foreign.as_ref())),
        })));
    }
    let api_services = observed.api_services.as_slice();
    let ca = match CaRead::from_secret(ca_secret.as_deref()) {
        CaRead::Usable(ca) => Some(ca),
        CaRead::Missing => None,
        CaRead::Damaged(why) => return Ok(Managed::Done(Box::new(damaged(names, &why)))),
    };
    let serving = tls_secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(tls::serving_from_secret_data);
    if !fresh && (ca.is_none() || serving.is_none()) {
        return Ok(Managed::NeedsFreshSecrets);
    }
    let insecure = validated.tls_mode == TlsMode::Insecure;
    let tls_observed = TlsObserved {
        // Without a caBundle there is nothing to propagate, so a rotation can complete.
        bundle_propagated: insecure || bundle_propagated(ca.as_ref(), api_services, names),
        trusted: trusted_now(api_services, names),
        rollout_complete: rollout_complete(observed.deployment.as_deref(), serving.as_ref())
            && availability_settled(api_services, names),
        ca,
        serving,
    };
    let plan = tls::plan(
        &tls_observed,
        &names.service_dns_names(),
        &format!("{}.{} extension-server CA", names.name, names.namespace),
        validated.lifetimes,
        Timestamp::now(),
    )?;
    if plan.ca_changed && !fresh {
        return Ok(Managed::NeedsFreshSecrets);
    }
    // The labels follow by a server-side apply of the metadata alone (no request when they
    // match, as after a create, which carries them).
    let labelled = if plan.ca_changed {
        let written = write_ca(
            secrets,
            validated,
            ca_secret.as_deref(),
            &plan.ca,
            ca_labels,
        )
        .await?;
        Some(ssa::apply(secrets, ca_labels, Some(&written)).await?)
    } else if let Some(live) = ca_secret.as_deref() {
        Some(ssa::apply(secrets, ca_labels, Some(live)).await?)
    } else {
        None
    };
    if let Some(labelled) = labelled {
        ssa::remove_stale_labels(secrets, ca_labels, labelled).await?;
    }
    let rotating = plan.ca.next.is_some() || plan.ca.previous_cert.is_some();
    let next_due = [
        plan.serving_info.renewal_time(),
        plan.ca_info.renewal_time(),
    ]
    .into_iter()
    .min();
    Ok(Managed::Done(Box::new(TlsStep {
        input: Some(TlsInput {
            managed_serving: Some(plan.serving.clone()),
            ca_bundle: (!insecure).then(|| plan.bundle()),
            cert_hash: certs::sha256_hex(plan.serving.cert_pem.as_bytes())[..16].to_string(),
            front_proxy_hash: None,
        }),
        outcome: if insecure {
            CertificateOutcome::Insecure {
                serving: plan.serving_info.clone(),
            }
        } else {
            CertificateOutcome::Valid {
                serving: plan.serving_info.clone(),
                ca_not_after: Some(plan.ca_info.not_after),
                previous_trusted: plan.ca.previous_cert.is_some(),
            }
        },
        events: plan.events.clone(),
        next_due,
        rotating,
        in_the_way: None,
    })))
}

/// A CA Secret that cannot be used: reported, and nothing is replaced.
fn damaged(names: &ServerNames, why: &str) -> TlsStep {
    let message = format!(
        "Secret {}/{} is damaged: {why}. Nothing was replaced: the APIServices keep their caBundle and the pods their certificate. Restore the Secret, or delete it to have a new CA created; the current CA then stays trusted until the pods serve a certificate from the new one",
        names.namespace,
        names.ca_secret()
    );
    TlsStep {
        input: None,
        outcome: CertificateOutcome::SecretInvalid(message),
        events: Vec::new(),
        next_due: None,
        rotating: false,
        in_the_way: None,
    }
}

fn bundle_propagated(
    ca: Option<&CaSet>,
    api_services: &ObservedApiServices,
    names: &ServerNames,
) -> bool {
    let Some(ca) = ca else { return true };
    let bundle = ca.bundle();
    ours(api_services, names)
        .all(|a| a.spec.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(bundle.as_bytes()))
}

/// Creates the CA Secret (create-only: on 409 the next pass adopts what is there) or replaces
/// it at the observed resourceVersion, so two operator replicas never mint two CAs. A create
/// carries the labels and applied hash of [`crate::desired::ca_secret_labels`], so its apply
/// right after finds nothing to change; a replace keeps the metadata as it is.
async fn write_ca(
    secrets: &Api<Secret>,
    validated: &Validated,
    existing: Option<&Secret>,
    ca: &CaSet,
    ca_labels: &Secret,
) -> Result<Secret> {
    let names = &validated.names;
    let labelled = ssa::with_hash(ca_labels).map_err(|e| Error::Serialize("Secret".into(), e))?;
    let kept = existing.map(|e| &e.metadata);
    let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(names.ca_secret()),
        namespace: Some(names.namespace.clone()),
        labels: kept.map_or_else(|| labelled.metadata.labels.clone(), |m| m.labels.clone()),
        annotations: kept.map_or_else(
            || labelled.metadata.annotations.clone(),
            |m| m.annotations.clone(),
        ),
        resource_version: kept.and_then(|m| m.resource_version.clone()),
        owner_references: validated.owner.clone().map(|r| vec![r]),
        ..Default::default()
    };
    let secret = Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(ca.to_secret_data()),
        ..Secret::default()
    };
    let params = PostParams {
        field_manager: Some(crate::names::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let result = match existing {
        None => secrets.create(&params, &secret).await,
        Some(_) => secrets.replace(&names.ca_secret(), &params, &secret).await,
    };
    result.map_err(|source| Error::Apply {
        kind: "Secret".into(),
        name: names.ca_secret(),
        source,
    })
}
