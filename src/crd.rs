//! The `ExtensionServer` custom resource (`aggregation.dev/v1alpha1`).

pub mod schema;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern for a DNS subdomain with at least one dot (an API group).
pub const GROUP_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)+$";
/// Pattern for a Kubernetes API version name.
pub const VERSION_PATTERN: &str = r"^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$";
use schema::DURATION_MAX_LEN;
pub use schema::DURATION_PATTERN;

/// Desired state of an extension API server and its registration with the aggregator.
// Each printcolumn(...) repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = schema::image_or_external_rule(),
    validation = schema::not_both_image_and_external_rule(),
    validation = schema::external_has_no_pods_rule(),
    validation = schema::external_trust_rule(),
    validation = schema::external_fixed_rule(),
    validation = schema::additional_groups_distinct_rule(),
    validation = schema::total_versions_rule()
)]
#[kube(
    group = "aggregation.dev",
    version = "v1alpha1",
    kind = "ExtensionServer",
    plural = "extensionservers",
    shortname = "es",
    category = "aggregation",
    namespaced,
    status = "ExtensionServerStatus",
    validation = schema::name_length_rule(),
    validation = schema::name_shape_rule(),
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.group"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionServerSpec {
    /// API group served, for example `my.custom.api`. Immutable.
    #[x_kube(
        validation = Rule::new(format!("self.matches('{GROUP_PATTERN}')"))
            .message("group must be a DNS subdomain with at least one dot, such as my.custom.api"),
        validation = Rule::new("self == oldSelf")
            .message("group is immutable: create a new ExtensionServer to serve another group")
    )]
    #[schemars(length(max = 253))]
    pub group: String,

    /// Versions served; one APIService `<name>.<group>` each.
    #[x_kube(validation = Rule::new("self.all(v, self.exists_one(w, w.name == v.name))")
        .message("version names must be unique"))]
    #[schemars(length(min = 1, max = 16))]
    pub versions: Vec<ServedVersion>,

    /// More API groups served by the same server, such as a metrics adapter's
    /// `external.metrics.k8s.io` next to `custom.metrics.k8s.io`; one APIService per version
    /// of each, all to the same Service. Each group needs its own grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h.group == g.group))")
        .message("additionalGroups must not name a group twice"))]
    #[schemars(length(max = 4))]
    pub additional_groups: Vec<AdditionalGroup>,

    /// Container image of the extension API server. Required unless `external` is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = schema::image_rule())]
    #[schemars(length(max = 512))]
    pub image: String,

    /// A server that runs outside the cluster (a VM, another cluster, a managed service). The
    /// operator registers it through a Service pointing at the host, with no workload. Instead of
    /// `image` and the pod fields; cannot be added or removed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalBackend>,

    /// Image pull policy: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Number of pods. 0 unregisters the APIServices.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// HTTPS port the container serves on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Container arguments (at most 128, each at most 4096 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::args_schema")]
    pub args: Vec<String>,

    /// Container environment; secrets come in through `valueFrom.secretKeyRef`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::env_schema")]
    #[x_kube(
        validation = schema::env_name_rule(),
        validation = schema::env_unique_rule(),
        validation = schema::env_value_rule(),
        validation = schema::env_source_rule()
    )]
    pub env: Vec<EnvVar>,

    /// Container resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::resources_schema")]
    #[x_kube(
        validation = schema::quantities_rule(),
        validation = schema::requests_within_limits_rule()
    )]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::node_selector_schema")]
    #[x_kube(validation = schema::node_selector_rule())]
    pub node_selector: BTreeMap<String, String>,

    /// Pod tolerations (at most 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::tolerations_schema")]
    pub tolerations: Vec<Toleration>,

    /// Pod affinity. Without it, pods of a multi-replica server prefer distinct nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Pod fields beyond image, args and env, merged over the pod the operator builds (as
    /// ECK's podTemplate): volumes, extra ports, probes, command, priorityClassName,
    /// topologySpreadConstraints, imagePullSecrets, sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,

    /// Existing ClusterRoles bound to the server's ServiceAccount, such as the read access to
    /// nodes and pods metrics-server needs. Each must be listed in a grant for this namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(
        validation = Rule::new("self.all(r, self.exists_one(s, s == r))")
            .message("clusterRoles must not repeat a name"),
        validation = schema::cluster_roles_rule()
    )]
    #[schemars(schema_with = "schema::cluster_roles_schema")]
    pub cluster_roles: Vec<String>,

    /// ServiceAccount for the pods. Empty: the operator manages one named after the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = schema::subdomain_rule("serviceAccountName"))]
    #[schemars(length(max = 253))]
    pub service_account_name: Option<String>,

    /// Roll the pods when the cluster's front-proxy CA or allowed names change (for servers
    /// that read `kube-system/extension-apiserver-authentication` only at start). Set false
    /// for servers that reload it themselves.
    #[serde(default = "default_true")]
    pub rollout_on_front_proxy_change: bool,

    /// Serving certificate management.
    #[serde(default)]
    pub tls: TlsSpec,

    /// How and when the APIServices are registered.
    #[serde(default)]
    pub registration: RegistrationSpec,
}

fn default_true() -> bool {
    true
}
fn default_replicas() -> i32 {
    1
}
fn default_port() -> i32 {
    8443
}

/// Where an external server listens. The aggregator dials `host:port` and verifies a
/// certificate for `<name>.<namespace>.svc` against `ca.crt` of the Secret in `tls.secretName`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalBackend {
    /// DNS name or IPv4 address, such as `api.example.com` or `10.0.0.7`.
    #[x_kube(validation = schema::external_host_rule())]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,

    /// HTTPS port.
    #[serde(default = "default_external_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_external_port() -> i32 {
    443
}

/// Labels, annotations and pod spec fields merged over the pod the operator builds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Pod labels and annotations, added to the operator's (whose own keys win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,

    /// A Kubernetes PodSpec, merged over the operator's: a field it does not set is taken as
    /// given; the container named `server` is merged into the operator's container (ports,
    /// env and volumeMounts by name or mountPath, other fields replaced where given, the
    /// restricted securityContext kept unless overridden); other containers, volumes and
    /// imagePullSecrets are added by name. The API server validates the result when the
    /// Deployment is applied; a refusal shows in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::pod_spec_schema")]
    pub spec: Option<serde_json::Value>,
}

/// Pod labels and annotations.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::string_map_schema")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::string_map_schema")]
    pub annotations: BTreeMap<String, String>,
}

/// Another group the server serves, with the same version shape as `spec.versions`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalGroup {
    /// API group, such as `external.metrics.k8s.io`.
    #[x_kube(validation = Rule::new(format!("self.matches('{GROUP_PATTERN}')"))
        .message("additionalGroups[].group must be a DNS subdomain with at least one dot, such as my.custom.api"))]
    #[schemars(length(max = 253))]
    pub group: String,

    /// Versions served; one APIService `<name>.<group>` each.
    #[x_kube(validation = Rule::new("self.all(v, self.exists_one(w, w.name == v.name))")
        .message("version names must be unique within a group"))]
    #[schemars(length(min = 1, max = 16))]
    pub versions: Vec<ServedVersion>,
}

impl ExtensionServerSpec {
    /// Every served group with its versions: `spec.group` first, then `additionalGroups`.
    pub fn served_groups(&self) -> impl Iterator<Item = (&str, &[ServedVersion])> {
        std::iter::once((self.group.as_str(), self.versions.as_slice())).chain(
            self.additional_groups
                .iter()
                .map(|g| (g.group.as_str(), g.versions.as_slice())),
        )
    }
}

/// One served API version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServedVersion {
    /// Version name, such as `v1` or `v2beta1`.
    #[x_kube(validation = Rule::new(format!("self.matches('{VERSION_PATTERN}')"))
        .message("version name must look like v1, v2beta1 or v1alpha1"))]
    #[schemars(length(max = 63))]
    pub name: String,

    /// Priority of the group among all groups (APIService `groupPriorityMinimum`). Registered
    /// at most at 1000, a CRD group's, unless a grant's `maxGroupPriorityMinimum` raises it.
    #[serde(default = "default_group_priority")]
    #[schemars(range(min = 1, max = 20000))]
    pub group_priority_minimum: i32,

    /// Priority of this version within the group (APIService `versionPriority`).
    #[serde(default = "default_version_priority")]
    #[schemars(range(min = 1, max = 1000))]
    pub version_priority: i32,
}

fn default_group_priority() -> i32 {
    1000
}
fn default_version_priority() -> i32 {
    15
}

/// Container image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Serving certificate settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mode != 'Secret' || (has(self.secretName) && self.secretName != '')")
        .message("tls.secretName is required when tls.mode is Secret"),
    validation = Rule::new("self.mode == 'Secret' || !has(self.secretName) || self.secretName == ''")
        .message("tls.secretName is only used when tls.mode is Secret"),
    validation = schema::ca_outlives_certificate_rule()
)]
pub struct TlsSpec {
    /// Managed (the operator runs a CA), Secret (bring your own) or Insecure.
    #[serde(default)]
    pub mode: TlsMode,

    /// Mode Secret: an existing Secret with `ca.crt`, `tls.crt` and `tls.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = schema::subdomain_rule("tls.secretName"))]
    #[schemars(length(max = 253))]
    pub secret_name: Option<String>,

    /// Mode Managed: serving certificate lifetime (renewed at 2/3 of it), 10s to 87600h,
    /// shorter than caDuration. Default 2160h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = schema::lifetime_rule("certificateDuration", "2160h or 90m"))]
    #[schemars(length(max = DURATION_MAX_LEN))]
    pub certificate_duration: Option<String>,

    /// Mode Managed: CA lifetime (rotated with overlap at 2/3 of it), 10s to 87600h, longer
    /// than certificateDuration. Default 43800h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = schema::lifetime_rule("caDuration", "43800h"))]
    #[schemars(length(max = DURATION_MAX_LEN))]
    pub ca_duration: Option<String>,
}

/// How the aggregator is told to trust the server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// The operator issues a CA and a serving certificate, and rotates both.
    #[default]
    Managed,
    /// The user provides a Secret with ca.crt, tls.crt and tls.key.
    Secret,
    /// No verification: the APIService sets `insecureSkipTLSVerify: true`. Not for production.
    Insecure,
}

/// Registration settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSpec {
    /// WhenReady (register once a replica is ready) or Always.
    #[serde(default)]
    pub policy: RegistrationPolicy,

    /// Unregister an APIService that has been unavailable this long (1s to 87600h), so
    /// discovery keeps working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = schema::unregister_after_rule())]
    #[schemars(length(max = DURATION_MAX_LEN))]
    pub unregister_after: Option<String>,

    /// Take over a matching APIService that is not Local and has no owner.
    #[serde(default)]
    pub adopt_existing: bool,
}

/// When the APIServices are registered.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RegistrationPolicy {
    /// Register only once at least one replica is ready.
    #[default]
    WhenReady,
    /// Register immediately.
    Always,
}

/// Observed state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionServerStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Desired pods.
    #[serde(default)]
    pub replicas: i32,
    /// Ready pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Ready, DeploymentAvailable, CertificateReady, Registered and Available.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// One entry per version, as the aggregator reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_services: Vec<ApiServiceState>,
    /// Serving certificate times (modes Managed and Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateState>,
}

/// The aggregator's view of one APIService.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiServiceState {
    pub name: String,
    /// True, False or Unknown.
    pub available: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

/// Serving certificate times.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateState {
    pub not_after: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<Time>,
}

fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    if let Some(object) = schema.as_object_mut() {
        object.insert("x-kubernetes-list-type".into(), "map".into());
        object.insert("x-kubernetes-list-map-keys".into(), vec!["type"].into());
    }
    schema
}
