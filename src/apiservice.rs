//! The `apiregistration.k8s.io/v1` APIService, which k8s-openapi does not include.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Spec of an APIService.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "apiregistration.k8s.io",
    version = "v1",
    kind = "APIService",
    status = "APIServiceStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct APIServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// None means the API is served locally by kube-apiserver (a built-in group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<ByteString>,
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    pub group_priority_minimum: i32,
    pub version_priority: i32,
}

/// Where the aggregator sends requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServiceReference {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// Status of an APIService, written by the aggregator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct APIServiceStatus {
    #[serde(default)]
    pub conditions: Vec<APIServiceCondition>,
}

/// One APIService condition (only `Available` is defined).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct APIServiceCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub last_transition_time: Option<Time>,
}

impl APIService {
    /// The aggregator's `Available` condition, if it has reported one.
    pub fn available(&self) -> Option<&APIServiceCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Available")
    }

    /// True for built-in groups served by kube-apiserver itself.
    pub fn is_local(&self) -> bool {
        self.spec.service.is_none()
    }
}
