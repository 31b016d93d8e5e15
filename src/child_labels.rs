//! Labels an admin adds to every child object (`--child-label team=platform`), such as a team,
//! a cost centre or a backup class. They go on the metadata of the children, not on the pod
//! template: changing them relabels objects without rolling any server's pods. Keys the
//! operator sets itself are refused, so ownership and cleanup cannot be steered with them.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::names::{MANAGED_BY_LABEL, is_dns1123_subdomain, is_label_value};

/// The prefix of the operator's own labels and annotations.
const RESERVED_PREFIX: &str = "aggregation.dev/";

/// Extra labels for every child, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildLabels(BTreeMap<String, String>);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChildLabelError {
    #[error("{0:?} is not KEY=VALUE")]
    NotAPair(String),
    #[error(
        "label key {0:?} is invalid: an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    )]
    Key(String),
    #[error(
        "label value {0:?} is invalid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    )]
    Value(String),
    #[error(
        "label key {0:?} is the operator's own ({MANAGED_BY_LABEL} and the {RESERVED_PREFIX} prefix mark ownership)"
    )]
    Reserved(String),
    #[error("label key {0:?} is given twice")]
    Repeated(String),
}

impl ChildLabels {
    /// Parses `KEY=VALUE` pairs.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, ChildLabelError> {
        let mut labels = BTreeMap::new();
        for pair in pairs {
            let (key, value) = parse_pair(pair)?;
            if labels.insert(key.clone(), value).is_some() {
                return Err(ChildLabelError::Repeated(key));
            }
        }
        Ok(Self(labels))
    }

    /// Adds the labels to `labels`; a key already there keeps its value.
    pub fn add_to(&self, labels: &mut BTreeMap<String, String>) {
        for (key, value) in &self.0 {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

fn parse_pair(pair: &str) -> Result<(String, String), ChildLabelError> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| ChildLabelError::NotAPair(pair.into()))?;
    if !is_label_key(key) {
        return Err(ChildLabelError::Key(key.into()));
    }
    if is_reserved(key) {
        return Err(ChildLabelError::Reserved(key.into()));
    }
    if !is_label_value(value) {
        return Err(ChildLabelError::Value(value.into()));
    }
    Ok((key.into(), value.into()))
}

/// `labels` without any child label: only the operator's own keys. Objects are created with
/// these and then server-side applied whole, so the apply owns the child labels and removes
/// one the operator no longer sets (a label written by the create would belong to it forever).
pub fn operator_labels_only(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| is_reserved(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn is_reserved(key: &str) -> bool {
    key == MANAGED_BY_LABEL || key.starts_with(RESERVED_PREFIX)
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name a non-empty label value.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests;
