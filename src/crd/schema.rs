//! The CRD's bounds: patterns, duration limits, the CEL rules that use them, and the sizes put on
//! the Kubernetes types the spec embeds (the API server refuses a CRD whose rules' estimated
//! cost is too high, and unbounded strings and lists make it so).

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, Toleration};
use kube::core::{Message, Rule};
use schemars::{Schema, SchemaGenerator};
use serde_json::json;

/// Longest ExtensionServer name. The name is a label value (at most 63 characters) on every
/// child, and the Service's name (a DNS-1035 label, at most 63). No child adds a suffix to it in
/// a label value or a Service name; `<name>-tls`, the bindings and the certificate's DNS names
/// allow far more (see the tests).
pub const MAX_SERVER_NAME_LEN: usize = 63;
/// An ExtensionServer name: a DNS-1035 label (the Service is named after it).
pub const SERVER_NAME_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// A Go duration such as `2160h`, `1h30m` or `1.5h`. The integer digits of each part are
/// limited per unit, so that with [`DURATION_MAX_LEN`] no matching string overflows Go's 64-bit
/// nanoseconds (each part stays under 280000h and the sum under 900000h, of the 2562047h Go
/// allows) and CEL's `duration()` never fails on one. Every value up to [`MAX_DURATION`] fits
/// in any unit.
pub const DURATION_PATTERN: &str = concat!(
    "^(",
    "[0-9]{1,5}([.][0-9]+)?h|",
    "[0-9]{1,7}([.][0-9]+)?m|",
    "[0-9]{1,9}([.][0-9]+)?s|",
    "[0-9]{1,12}([.][0-9]+)?ms|",
    "[0-9]{1,15}([.][0-9]+)?us|",
    "[0-9]{1,18}([.][0-9]+)?ns",
    ")+$"
);
/// Longest duration string.
pub const DURATION_MAX_LEN: usize = 32;
/// Shortest certificate or CA lifetime.
pub const MIN_LIFETIME: &str = "10s";
/// Longest duration of any field (10 years).
pub const MAX_DURATION: &str = "87600h";
/// Shortest `registration.unregisterAfter`.
pub const MIN_UNREGISTER_AFTER: &str = "1s";
/// Lifetimes when the spec sets none (the operator's flags default to the same).
pub const DEFAULT_CERTIFICATE_DURATION: &str = "2160h";
pub const DEFAULT_CA_DURATION: &str = "43800h";

/// A lowercase DNS-1123 subdomain (Secret and ServiceAccount names).
pub const SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
const LABEL_KEY_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// A label value (at most 63 characters, checked with maxLength).
const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// An environment variable name: printable ASCII except `=`.
const ENV_NAME_PATTERN: &str = r"^[ -<>-~]+$";

const MAX_ENV: u32 = 256;
const MAX_ENV_NAME_LEN: u32 = 256;
const MAX_ENV_VALUE_LEN: u32 = 32 * 1024;
const MAX_ARGS: u32 = 128;
const MAX_ARG_LEN: u32 = 4096;
const MAX_TOLERATIONS: u32 = 32;
const MAX_NODE_SELECTOR: u32 = 64;
const MAX_RESOURCES: u32 = 6;
const MAX_QUANTITY_LEN: u32 = 64;

fn rule(expression: String, message: String) -> Rule {
    Rule::new(expression).message(Message::Message(message))
}

/// `metadata.name` is short enough for every child name and label value.
pub fn name_length_rule() -> Rule {
    rule(
        format!("self.metadata.name.size() <= {MAX_SERVER_NAME_LEN}"),
        format!(
            "metadata.name must be at most {MAX_SERVER_NAME_LEN} characters: it is used in the \
             names and labels of the objects the operator creates"
        ),
    )
}

/// `metadata.name` is a DNS-1035 label: the Service is named after it.
pub fn name_shape_rule() -> Rule {
    rule(
        format!("self.metadata.name.matches('{SERVER_NAME_PATTERN}')"),
        "metadata.name must consist of lowercase letters, digits and '-', start with a letter \
         and end with a letter or digit: the operator names a Service after it"
            .into(),
    )
}

/// A certificate or CA lifetime, from [`MIN_LIFETIME`] to [`MAX_DURATION`].
pub fn lifetime_rule(field: &str, example: &str) -> Rule {
    duration_rule(field, MIN_LIFETIME, example, false)
}

/// `registration.unregisterAfter`: empty, or from [`MIN_UNREGISTER_AFTER`] to [`MAX_DURATION`].
pub fn unregister_after_rule() -> Rule {
    duration_rule("unregisterAfter", MIN_UNREGISTER_AFTER, "10m", true)
}

fn duration_rule(field: &str, min: &str, example: &str, empty_allowed: bool) -> Rule {
    let empty = if empty_allowed { "self == '' || " } else { "" };
    rule(
        format!(
            "{empty}(self.matches('{DURATION_PATTERN}') && duration(self) >= duration('{min}') \
             && duration(self) <= duration('{MAX_DURATION}'))"
        ),
        format!(
            "{field} must be a duration from {min} to {MAX_DURATION} (10 years), such as {example}"
        ),
    )
}

/// On the tls object: the CA outlives the serving certificate (defaults fill absent fields;
/// a malformed field is reported by its own rule).
pub fn ca_outlives_certificate_rule() -> Rule {
    let cert = format!(
        "(has(self.certificateDuration) ? self.certificateDuration : '{DEFAULT_CERTIFICATE_DURATION}')"
    );
    let ca = format!("(has(self.caDuration) ? self.caDuration : '{DEFAULT_CA_DURATION}')");
    rule(
        format!(
            "!{cert}.matches('{DURATION_PATTERN}') || !{ca}.matches('{DURATION_PATTERN}') \
             || duration({ca}) > duration({cert})"
        ),
        format!(
            "tls.caDuration must be longer than tls.certificateDuration (defaults \
             {DEFAULT_CA_DURATION} and {DEFAULT_CERTIFICATE_DURATION})"
        ),
    )
}

/// A Secret or ServiceAccount name.
pub fn subdomain_rule(field: &str) -> Rule {
    rule(
        format!("self == '' || self.matches('{SUBDOMAIN_PATTERN}')"),
        format!(
            "{field} must be a lowercase DNS subdomain: lowercase letters, digits, '-' and '.'"
        ),
    )
}

/// An in-cluster server needs an image.
pub fn image_or_external_rule() -> Rule {
    rule(
        "has(self.external) || (has(self.image) && self.image.size() > 0)".into(),
        "image must not be empty: set image, or external for a server that runs outside the \
         cluster"
            .into(),
    )
}

pub fn not_both_image_and_external_rule() -> Rule {
    rule(
        "!has(self.external) || !has(self.image) || self.image.size() == 0".into(),
        "image and external are mutually exclusive: the operator runs pods from image, or \
         registers the server at external.host"
            .into(),
    )
}

/// Fields of the pods an external server does not have.
pub const POD_FIELDS: [&str; 10] = [
    "args",
    "clusterRoles",
    "podTemplate",
    "env",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "serviceAccountName",
    "imagePullPolicy",
];

pub fn external_has_no_pods_rule() -> Rule {
    let absent: Vec<String> = POD_FIELDS
        .iter()
        .map(|f| format!("!has(self.{f})"))
        .collect();
    rule(
        format!("!has(self.external) || ({})", absent.join(" && ")),
        format!(
            "an external server has no pods: remove {} (they configure the pods of image)",
            POD_FIELDS.join(", ")
        ),
    )
}

/// An external server brings its own CA (mode Secret), or explicitly none (Insecure).
pub fn external_trust_rule() -> Rule {
    rule(
        "!has(self.external) || (has(self.tls) && has(self.tls.mode) && self.tls.mode != 'Managed')"
            .into(),
        "an external server brings its own CA: set tls.mode Secret and tls.secretName to a \
         Secret whose ca.crt signed the server's certificate (tls.mode Insecure skips \
         verification; not for production)"
            .into(),
    )
}

/// Moving a server in or out of the cluster is a new server.
pub fn external_fixed_rule() -> Rule {
    rule(
        "has(self.external) == has(oldSelf.external)".into(),
        "external cannot be added or removed: create a new ExtensionServer to move a server in \
         or out of the cluster"
            .into(),
    )
}

/// Longest ClusterRole name in `spec.clusterRoles` (it is part of a binding's name).
pub const MAX_CLUSTER_ROLE_LEN: usize = 100;

/// Most ClusterRoles one server binds.
pub const MAX_CLUSTER_ROLES: u32 = 8;

pub fn cluster_roles_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<String>>();
    bound(&mut schema, "", "maxItems", MAX_CLUSTER_ROLES);
    bound(
        &mut schema,
        "/items",
        "maxLength",
        MAX_CLUSTER_ROLE_LEN as u32,
    );
    schema
}

/// ClusterRole names: path-segment names with colons, as Kubernetes' own roles have.
pub fn cluster_roles_rule() -> Rule {
    rule(
        "self.all(r, r.matches('^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$'))".into(),
        format!(
            "clusterRoles must name ClusterRoles (lowercase letters, digits, '-', '.', ':'; at most {MAX_CLUSTER_ROLE_LEN} characters)"
        ),
    )
}

/// No additional group repeats `spec.group`.
pub fn additional_groups_distinct_rule() -> Rule {
    rule(
        "!has(self.additionalGroups) || self.additionalGroups.all(g, g.group != self.group)".into(),
        "additionalGroups must not repeat spec.group".into(),
    )
}

/// Most APIServices one ExtensionServer registers, over every group.
pub const MAX_TOTAL_VERSIONS: usize = 16;

/// Every version of every group is an APIService: bound their number.
pub fn total_versions_rule() -> Rule {
    rule(
        format!(
            "size(self.versions) + (has(self.additionalGroups) ? self.additionalGroups.map(g, size(g.versions)).sum() : 0) <= {MAX_TOTAL_VERSIONS}"
        ),
        format!(
            "at most {MAX_TOTAL_VERSIONS} versions in all (spec.versions and every additionalGroups[].versions): each is an APIService"
        ),
    )
}

/// A DNS name or an IPv4 address (the Service's externalName).
pub fn external_host_rule() -> Rule {
    rule(
        format!("self.matches('{SUBDOMAIN_PATTERN}')"),
        "external.host must be a lowercase DNS name or an IPv4 address, such as \
         api.example.com or 10.0.0.7"
            .into(),
    )
}

/// The image has no whitespace (it could never be pulled).
pub fn image_rule() -> Rule {
    rule(
        r"!self.matches('\\s')".into(),
        "image must not contain whitespace".into(),
    )
}

pub fn env_name_rule() -> Rule {
    rule(
        format!("self.all(e, e.name.matches('{ENV_NAME_PATTERN}'))"),
        "env names must be printable ASCII characters other than '='".into(),
    )
}

/// The Deployment's server-side apply keys env entries by name, so a duplicate could never
/// be applied.
pub fn env_unique_rule() -> Rule {
    rule(
        "self.all(e, self.exists_one(f, f.name == e.name))".into(),
        "env names must be unique".into(),
    )
}

pub fn env_value_rule() -> Rule {
    rule(
        "self.all(e, !has(e.valueFrom) || !has(e.value) || e.value.size() == 0)".into(),
        "an env entry sets value or valueFrom, not both".into(),
    )
}

pub fn env_source_rule() -> Rule {
    let sources = [
        "configMapKeyRef",
        "fieldRef",
        "fileKeyRef",
        "resourceFieldRef",
        "secretKeyRef",
    ];
    let set: Vec<String> = sources
        .iter()
        .map(|s| format!("has(e.valueFrom.{s})"))
        .collect();
    rule(
        format!(
            "self.all(e, !has(e.valueFrom) || [{}].filter(x, x).size() == 1)",
            set.join(", ")
        ),
        format!(
            "env[].valueFrom must set exactly one of {}",
            sources.join(", ")
        ),
    )
}

pub fn node_selector_rule() -> Rule {
    rule(
        format!(
            "self.all(k, k.matches('{LABEL_KEY_PATTERN}') && self[k].matches('{LABEL_VALUE_PATTERN}'))"
        ),
        "nodeSelector keys and values must be valid label keys and values, such as \
         kubernetes.io/os: linux"
            .into(),
    )
}

pub fn quantities_rule() -> Rule {
    let valid = |map: &str| {
        format!("(!has(self.{map}) || self.{map}.all(k, isQuantity(string(self.{map}[k]))))")
    };
    rule(
        format!("{} && {}", valid("requests"), valid("limits")),
        "resources: every request and limit must be a quantity such as 500m or 1Gi".into(),
    )
}

/// The resources whose request admission compares with the limit. Iterating over a fixed list
/// keeps the rule's estimated cost within the budget of Kubernetes 1.33, which estimates a loop
/// over the maps far higher; the Deployment's own validation still catches the others.
pub const COMPARED_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

pub fn requests_within_limits_rule() -> Rule {
    let (request, limit) = ("string(self.requests[k])", "string(self.limits[k])");
    let names: Vec<String> = COMPARED_RESOURCES
        .iter()
        .map(|r| format!("'{r}'"))
        .collect();
    rule(
        format!(
            "!has(self.requests) || !has(self.limits) || [{}].all(k, !(k in self.requests) \
             || !(k in self.limits) || !isQuantity({request}) || !isQuantity({limit}) \
             || quantity({request}).compareTo(quantity({limit})) <= 0)",
            names.join(", ")
        ),
        format!(
            "resources: a request must not exceed its limit ({})",
            COMPARED_RESOURCES.join(", ")
        ),
    )
}

/// Sets `value` at `pointer` (a JSON pointer into an object that exists).
fn bound(schema: &mut Schema, pointer: &str, key: &str, value: u32) {
    if let Some(object) = schema.pointer_mut(pointer).and_then(|v| v.as_object_mut()) {
        object.insert(key.into(), json!(value));
    }
}

pub fn env_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<EnvVar>>();
    bound(&mut schema, "", "maxItems", MAX_ENV);
    bound(
        &mut schema,
        "/items/properties/name",
        "maxLength",
        MAX_ENV_NAME_LEN,
    );
    bound(
        &mut schema,
        "/items/properties/value",
        "maxLength",
        MAX_ENV_VALUE_LEN,
    );
    schema
}

/// Container arguments, bounded: the spec is cached whole by the operator and the API server.
pub fn args_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<String>>();
    bound(&mut schema, "", "maxItems", MAX_ARGS);
    bound(&mut schema, "/items", "maxLength", MAX_ARG_LEN);
    schema
}

pub fn tolerations_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Toleration>>();
    bound(&mut schema, "", "maxItems", MAX_TOLERATIONS);
    schema
}

pub fn node_selector_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<std::collections::BTreeMap<String, String>>();
    bound(&mut schema, "", "maxProperties", MAX_NODE_SELECTOR);
    bound(&mut schema, "/additionalProperties", "maxLength", 63);
    schema
}

pub fn resources_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Option<ResourceRequirements>>();
    for map in ["limits", "requests"] {
        let path = format!("/properties/{map}");
        bound(&mut schema, &path, "maxProperties", MAX_RESOURCES);
        let values = format!("{path}/additionalProperties");
        bound(&mut schema, &values, "maxLength", MAX_QUANTITY_LEN);
    }
    schema
}

/// Most pod labels or annotations a podTemplate adds.
pub const MAX_POD_METADATA: u32 = 32;

pub fn string_map_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<std::collections::BTreeMap<String, String>>();
    bound(&mut schema, "", "maxProperties", MAX_POD_METADATA);
    schema
}

/// The PodSpec schema: unknown fields are pruned and nesting is bounded. `containers` is
/// optional here (the operator's pod has the `server` container). `kubectl explain` documents
/// PodSpec's own fields; the descriptions below them are left out to keep the CRD small (the
/// API server's own PodSpec documents them).
pub fn pod_spec_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<k8s_openapi::api::core::v1::PodSpec>();
    if let Some(object) = schema.as_object_mut() {
        object.remove("required");
    }
    let mut value = serde_json::Value::from(schema);
    let fields = value.get_mut("properties").and_then(|p| p.as_object_mut());
    for field in fields.into_iter().flat_map(|f| f.values_mut()) {
        let nested = field.as_object_mut().into_iter().flat_map(|f| f.iter_mut());
        for (key, child) in nested {
            if key != "description" {
                drop_descriptions(child);
            }
        }
    }
    Schema::try_from(value).unwrap_or_default()
}

/// Removes every `description` at or below `value`.
fn drop_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            object.remove("description");
            object.values_mut().for_each(drop_descriptions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_descriptions),
        _ => {}
    }
}
