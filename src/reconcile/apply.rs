//! Apply: consumes what [`prepare`](super::prepare) decided, writes the children in the
//! documented order ([`children`](super::children)), then makes the handshake, and returns
//! [`Applied`]: everything status needs.

use crate::context::Context;
use crate::error::Result;
use crate::outcome::{Applied, Registration, Workload};
use crate::probe::Handshake;
use crate::reconcile::children::{self, Children, Stop};
use crate::reconcile::prepare::Prepared;
use crate::reconcile::probe;
use crate::validated::{ClaimDecision, Validated};

pub async fn apply(ctx: &Context, validated: &Validated, prepared: Prepared) -> Result<Applied> {
    let Prepared {
        observed,
        tls,
        workload,
        gate,
        desired,
    } = prepared;
    let (adoptable, refusal) = match &validated.decision {
        ClaimDecision::Allowed { adoptable } => (adoptable.as_slice(), None),
        ClaimDecision::Frozen(refusal) | ClaimDecision::Refused(refusal) => {
            (&[][..], Some(refusal.clone()))
        }
    };
    let children = match (desired, &tls.in_the_way) {
        (Some(desired), _) => {
            match children::write(ctx, validated, desired, &observed, gate, adoptable).await {
                Ok(children) => children,
                Err(Stop::Blocked(why)) => Children::in_the_way(&observed, &why),
                Err(Stop::Failed(error)) => return Err(error),
            }
        }
        (None, Some(why)) => Children::in_the_way(&observed, why),
        (None, None) => Children::as_observed(&observed, |name| {
            Registration::WaitingForCertificate(name.clone())
        }),
    };
    let workload = match workload {
        Workload::Pods { .. } => Workload::Pods {
            deployment: children.deployment.clone(),
        },
        external => external,
    };
    let handshake = match &workload {
        Workload::External { probe } => probe
            .as_ref()
            .map_or(Handshake::Inconclusive, |p| p.handshake()),
        Workload::Pods { .. } => probe::verify(
            ctx,
            validated,
            children.service.as_ref(),
            children
                .api_services
                .iter()
                .filter_map(|(_, live)| live.as_ref()),
        ),
    };
    Ok(Applied {
        subject: validated.subject(),
        refusal,
        workload,
        service: children.service,
        certificate: tls.outcome,
        registrations: children.registrations,
        api_services: children.api_services,
        handshake,
        restored: children.restored,
        tls_events: tls.events,
        tls_due: tls.next_due,
        rotating: tls.rotating,
    })
}
