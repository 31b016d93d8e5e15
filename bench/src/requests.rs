//! The operator's API requests by verb and resource, from
//! `extension_server_operator_api_requests_total`, and differences between two scrapes.

use std::collections::BTreeMap;

use anyhow::Result;
use testenv::operator::OperatorProcess;

const SERIES: &str = "extension_server_operator_api_requests_total";

/// Request counts keyed by (verb, resource).
#[derive(Debug, Clone, Default)]
pub struct Requests(BTreeMap<(String, String), f64>);

/// Verbs that change something.
pub fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "patch" | "update" | "delete")
}

/// Verbs that read without watching.
pub fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list")
}

impl Requests {
    pub async fn scrape(operator: &OperatorProcess) -> Result<Self> {
        let samples = operator.samples(SERIES).await?;
        Ok(Self(
            samples
                .into_iter()
                .map(|(labels, value)| {
                    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                    ((label("verb"), label("resource")), value)
                })
                .collect(),
        ))
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(key, value)| (key.clone(), value - earlier.0.get(key).unwrap_or(&0.0)))
                .filter(|(_, value)| *value != 0.0)
                .collect(),
        )
    }

    /// The sum over the (verb, resource) pairs that pass `keep`.
    pub fn sum(&self, keep: impl Fn(&str, &str) -> bool) -> f64 {
        self.0
            .iter()
            .filter(|((verb, resource), _)| keep(verb, resource))
            .map(|(_, value)| value)
            // A fold from +0.0: an empty f64 sum is -0.0.
            .fold(0.0, |total, value| total + value)
    }

    /// Writes to the children and the finalizer patch: everything but status and Events.
    pub fn object_writes(&self) -> f64 {
        self.sum(|verb, resource| {
            is_write(verb) && resource != "extensionservers/status" && resource != "events"
        })
    }

    pub fn status_writes(&self) -> f64 {
        self.sum(|verb, resource| is_write(verb) && resource == "extensionservers/status")
    }

    pub fn events(&self) -> f64 {
        self.sum(|verb, resource| is_write(verb) && resource == "events")
    }

    pub fn writes(&self) -> f64 {
        self.sum(|verb, _| is_write(verb))
    }

    /// Gets and lists; watches are excluded.
    pub fn reads(&self) -> f64 {
        self.sum(|verb, _| is_read(verb))
    }

    /// `verb resource` -> count divided by `per`, for the report.
    pub fn table(&self, per: f64) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .map(|((verb, resource), value)| (format!("{verb} {resource}"), value / per))
            .collect()
    }
}
