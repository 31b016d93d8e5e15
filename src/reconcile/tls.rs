//! The TLS step: plan the CA and serving certificate from the cached Secrets (or read the
//! user's Secret), and persist a changed CA with create-only / optimistic-concurrency writes.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::apiservice::APIService;
use crate::context::Context;
use crate::crd::TlsMode;
use crate::desired::TlsInput;
use crate::error::{Error, Result};
use crate::names::{ApiServiceName, CERT_HASH_ANNOTATION, ServerNames};
use crate::observe::Observed;
use crate::outcome::CertificateOutcome;
use crate::ownership::{self, Owner};
use crate::reconcile::registration::{Holder, holder};
use crate::ssa::{self, get_opt};
use crate::tls::{self, CaRead, CaSet, TlsEvent, TlsObserved, certs};
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
        TlsMode::Secret => user_secret(&secrets, &validated.tls_secret_name, names, observed).await,
        TlsMode::Managed | TlsMode::Insecure => {
            let cached = (observed.ca_secret.clone(), observed.tls_secret.clone());
            let labels = crate::desired::ca_secret_labels(names, &ctx.settings.child_labels);
            let step = managed(&secrets, validated, observed, cached, &labels, false).await?;
            match step {
                Managed::Done(step) => Ok(*step),
                // Minting is a create and a CA change a replace at a resourceVersion: both
                // need the Secrets as they are now, since the cache may not have seen this
                // server's last write. Read them live and plan again.
                Managed::NeedsFreshSecrets => {
                    let live = (
                        get_opt(&secrets, &names.ca_secret()).await?.map(Arc::new),
                        get_opt(&secrets, &names.tls_secret()).await?.map(Arc::new),
                    );
                    match managed(&secrets, validated, observed, live, &labels, true).await? {
                        Managed::Done(step) => Ok(*step),
                        Managed::NeedsFreshSecrets => Err(Error::ReadCertificate(
                            "the CA and serving Secrets changed while planning".into(),
                        )),
                    }
                }
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

async fn user_secret(
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
    let wanted = format!("{}.{}.svc", names.name, names.namespace);
    if !info.dns_names.contains(&wanted) {
        return Ok(invalid(format!(
            "tls.crt in Secret {secret_name} is not valid for {wanted} (it has {:?}); reissue it with that DNS name",
            info.dns_names
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
            secret_name: secret_name.to_string(),
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
    // match).
    if plan.ca_changed {
        let written = write_ca(secrets, validated, ca_secret.as_deref(), &plan.ca).await?;
        ssa::apply(secrets, ca_labels, Some(&written)).await?;
    } else if let Some(live) = ca_secret.as_deref() {
        ssa::apply(secrets, ca_labels, Some(live)).await?;
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
            secret_name: names.tls_secret(),
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

/// The CAs our APIServices trust now (PEM), if any carries a caBundle.
fn trusted_now(api_services: &ObservedApiServices, names: &ServerNames) -> Option<String> {
    ours(api_services, names)
        .find_map(|a| a.spec.ca_bundle.as_ref())
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// Every registered APIService is Available, or none is (then there is no traffic to protect).
fn availability_settled(api_services: &ObservedApiServices, names: &ServerNames) -> bool {
    let available: Vec<bool> = ours(api_services, names)
        .map(|a| a.available().is_some_and(|c| c.status == "True"))
        .collect();
    available.iter().all(|a| *a) || available.iter().all(|a| !*a)
}

fn ours<'a>(
    api_services: &'a ObservedApiServices,
    names: &'a ServerNames,
) -> impl Iterator<Item = &'a APIService> {
    api_services
        .iter()
        .filter_map(|(_, a)| a.as_deref())
        .filter(move |a| holder(a, names) == Holder::Us)
}

/// The serving certificate's hash in the Deployment's pod template.
fn template_cert_hash(deployment: &Deployment) -> Option<&String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CERT_HASH_ANNOTATION)
}

fn rollout_complete(deployment: Option<&Deployment>, serving: Option<&tls::KeyedCert>) -> bool {
    let Some(deployment) = deployment else {
        return true;
    };
    let Some(serving) = serving else { return false };
    let hash = certs::sha256_hex(serving.cert_pem.as_bytes())[..16].to_string();
    let template_hash = template_cert_hash(deployment);
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    let want = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    template_hash == Some(&hash)
        && status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.ready_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
}

/// Creates the CA Secret (create-only: on 409 the next pass adopts what is there) or replaces
/// it at the observed resourceVersion, so two operator replicas never mint two CAs. The
/// labels and annotations stay as they are: the apply of [`crate::desired::ca_secret_labels`]
/// owns them, so that a child label dropped later is removed.
async fn write_ca(
    secrets: &Api<Secret>,
    validated: &Validated,
    existing: Option<&Secret>,
    ca: &CaSet,
) -> Result<Secret> {
    let names = &validated.names;
    // A new CA carries the operator's own labels; a replaced one keeps its metadata.
    let kept = existing.map(|e| &e.metadata);
    let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(names.ca_secret()),
        namespace: Some(names.namespace.clone()),
        labels: kept.map_or_else(|| Some(names.labels()), |m| m.labels.clone()),
        annotations: kept.and_then(|m| m.annotations.clone()),
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
