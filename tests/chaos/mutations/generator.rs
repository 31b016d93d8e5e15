//! Valid random specs and changes, from the CRD's OpenAPI schema (`ExtensionServer::crd()`): a
//! walk over the spec's properties that honours `type`, `enum`, `minimum`/`maximum`,
//! `maxLength`, `minItems`/`maxItems`, `maxProperties`, `required`, and sets or unsets every
//! optional field. A small table takes over only where a pattern or CEL rule makes a generic
//! value useless (group, version names, images, durations, quantities, label keys, names).

use std::collections::BTreeSet;

use extension_server_operator::crd::ExtensionServer;
use kube::CustomResourceExt;
use serde_json::{Map, Value, json};

use crate::support::chaos::Rng;

/// A Secret name that does not exist (mode Secret then cannot work).
pub const MISSING_SECRET: &str = "missing-cert";
/// A ServiceAccount that does not exist (its pods are never created).
pub const MISSING_ACCOUNT: &str = "missing-account";
/// An existing ServiceAccount, created by the test.
pub const RUNNER_ACCOUNT: &str = "mutation-runner";
/// Live replicas are capped: the fake node's pods are shared with other tests. Bound 0 is
/// exercised live; bounds 100 and 101 through admission only.
const LIVE_REPLICAS_MAX: u64 = 3;
/// Lifetimes, shortest first (10s is the minimum; it renews every ~7 s, so it is drawn rarely).
const LIFETIMES: &[&str] = &[
    "10s", "45s", "600s", "90m", "1h30m", "1.5h", "720h", "2160h", "8760h", "43800h", "87600h",
];
const UNREGISTER_AFTER: &[&str] = &["", "1s", "10m", "2h45m", "87600h"];
const IMAGES: &[&str] = &[
    "my-extension-server-image:latest",
    "registry.example.com/ext/server:1.2.3",
    "ghcr.io/org/srv@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "localhost:5000/a/b/c:v0",
];
/// Generic strings (args, env values): spaces, quotes, `=`, non-ASCII.
const TEXT: &[char] = &[
    'a', 'b', 'z', '0', '9', '-', '_', '.', '/', '=', ':', ' ', '"', '\'', '$', 'é', '漢',
];

/// The suite drives servers the operator runs: `external` (fixed at creation, and with no
/// pods to check) is never generated, and `image` is always set. External servers have their
/// own test (`tests/cluster/external.rs`). `additionalGroups` (groups the sample server does not
/// serve), `clusterRoles` (bindings the oracle does not read) and `podTemplate` (a free-form
/// PodSpec the schema does not describe) have theirs too (`groups.rs`, `grants.rs`,
/// `pod_template.rs`).
pub const NOT_GENERATED: [&str; 4] = [
    "spec.external",
    "spec.additionalGroups",
    "spec.clusterRoles",
    "spec.podTemplate",
];
const ALWAYS_SET: &str = "spec.image";

/// What values depend on: the server's fixed group, and its own certificate Secret.
#[derive(Debug, Clone)]
pub struct Setting {
    pub group: String,
    pub byo_secret: String,
}

/// The spec's schema, as the API server enforces it.
pub fn spec_schema() -> Value {
    let crd = serde_json::to_value(ExtensionServer::crd()).unwrap();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .unwrap()
}

/// The sub-schema at a path such as `spec.tls.mode`, `spec.env[].name` or `spec.nodeSelector{}`.
pub fn at<'a>(root: &'a Value, path: &str) -> &'a Value {
    let mut schema = root;
    for segment in path.split('.') {
        let (name, suffix) = split_suffix(segment);
        schema = &schema["properties"][name];
        match suffix {
            "[]" => schema = &schema["items"],
            "{}" => schema = &schema["additionalProperties"],
            _ => {}
        }
    }
    schema
}

fn split_suffix(segment: &str) -> (&str, &str) {
    for suffix in ["[]", "{}"] {
        if let Some(name) = segment.strip_suffix(suffix) {
            return (name, suffix);
        }
    }
    (segment, "")
}

/// The fields a change may touch: every property of the spec but the immutable group, and the
/// fields of the spec's objects whose fields are all scalars (tls, registration).
pub fn mutable_paths(root: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    for (name, schema) in properties(at(root, "spec")) {
        if name == "group" || NOT_GENERATED.contains(&format!("spec.{name}").as_str()) {
            continue;
        }
        paths.push(format!("spec.{name}"));
        let nested = properties(schema);
        if !nested.is_empty() && nested.iter().all(|(_, s)| is_scalar(s)) {
            paths.extend(nested.iter().map(|(n, _)| format!("spec.{name}.{n}")));
        }
    }
    paths
}

pub fn properties(schema: &Value) -> Vec<(String, &Value)> {
    schema["properties"]
        .as_object()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn is_scalar(schema: &Value) -> bool {
    !matches!(schema["type"].as_str(), Some("object" | "array"))
}

pub fn is_required(root: &Value, path: &str) -> bool {
    if path == ALWAYS_SET {
        return true;
    }
    let (parent, field) = path.rsplit_once('.').unwrap();
    at(root, parent)["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|f| f == field))
}

/// Sets (or with `None` removes) the object field at a dotted path, creating parents.
pub fn put(spec: &mut Value, path: &str, value: Option<Value>) {
    let mut segments: Vec<&str> = path.split('.').skip(1).collect();
    let last = segments.pop().unwrap();
    let mut object = spec;
    for segment in segments {
        if !object[segment].is_object() {
            object[segment] = json!({});
        }
        object = &mut object[segment];
    }
    let map = object.as_object_mut().unwrap();
    match value {
        Some(value) => map.insert(last.to_string(), value),
        None => map.remove(last),
    };
}

/// Draws values; records every schema path it generated.
pub struct Generator<'a> {
    pub rng: &'a mut Rng,
    pub setting: &'a Setting,
    pub root: &'a Value,
    pub touched: BTreeSet<String>,
}

impl Generator<'_> {
    /// A whole valid spec.
    pub fn spec(&mut self) -> Value {
        let mut spec = self.value("spec");
        repair_tls(&mut spec, self.setting);
        spec
    }

    /// Changes one to three fields of `spec`: each regenerated, or removed when optional.
    pub fn mutate(&mut self, spec: &Value) -> Value {
        let mut next = spec.clone();
        let paths = mutable_paths(self.root);
        for _ in 0..=self.rng.below(3) {
            let path = self.rng.pick(&paths).clone();
            if !is_required(self.root, &path) && self.rng.chance(0.3) {
                self.touched.insert(format!("{path} (unset)"));
                put(&mut next, &path, None);
            } else {
                let value = self.value(&path);
                put(&mut next, &path, Some(value));
            }
        }
        repair_tls(&mut next, self.setting);
        next
    }

    /// A valid value for the field at `path`.
    pub fn value(&mut self, path: &str) -> Value {
        self.touched.insert(path.to_string());
        let schema = at(self.root, path);
        if let Some(value) = self.tabled(path) {
            return value;
        }
        if let Some(options) = schema["enum"].as_array() {
            let options: Vec<&Value> = options.iter().filter(|v| !v.is_null()).collect();
            return (*self.rng.pick(&options)).clone();
        }
        match schema["type"].as_str() {
            Some("integer") => json!(self.integer(schema)),
            Some("boolean") => json!(self.rng.chance(0.5)),
            Some("string") => json!(self.text(schema)),
            Some("array") => self.array(path, schema),
            Some("object") => self.object(path, schema),
            _ => json!({}),
        }
    }

    /// A bound a fifth of the time each, else uniform in between.
    fn integer(&mut self, schema: &Value) -> i64 {
        let min = schema["minimum"].as_f64().unwrap_or(0.0) as i64;
        let max = schema["maximum"].as_f64().unwrap_or(3600.0) as i64;
        match self.rng.below(5) {
            0 => min,
            1 => max,
            _ => min + self.rng.below((max - min + 1) as u64) as i64,
        }
    }

    /// One to twelve characters of [`TEXT`], or exactly `maxLength` now and then.
    fn text(&mut self, schema: &Value) -> String {
        let max = schema["maxLength"].as_u64().unwrap_or(64);
        let len = if self.rng.chance(0.1) && max <= 512 {
            max
        } else {
            1 + self.rng.below(max.min(12))
        };
        (0..len).map(|_| *self.rng.pick(TEXT)).collect()
    }

    fn array(&mut self, path: &str, schema: &Value) -> Value {
        let min = schema["minItems"].as_u64().unwrap_or(0);
        let max = schema["maxItems"].as_u64().unwrap_or(4).min(256);
        let len = if self.rng.chance(0.05) {
            max
        } else {
            min + self.rng.below(max.min(3) + 1 - min)
        };
        let mut items: Vec<Value> = (0..len).map(|_| self.value(&format!("{path}[]"))).collect();
        if has_unique_names_rule(schema) {
            self.unique_names(&mut items);
        }
        json!(items)
    }

    /// Required fields always; optional ones half of the time; maps of up to three entries.
    fn object(&mut self, path: &str, schema: &Value) -> Value {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut object = Map::new();
        for (name, _) in properties(schema) {
            let field = format!("{path}.{name}");
            if NOT_GENERATED.contains(&field.as_str()) {
                continue;
            }
            if required.contains(&name.as_str()) || field == ALWAYS_SET || self.rng.chance(0.5) {
                object.insert(name.clone(), self.value(&format!("{path}.{name}")));
            }
        }
        json!(object)
    }

    /// Distinct names (version names fit every list with a uniqueness rule: versions, env).
    fn unique_names(&mut self, items: &mut [Value]) {
        let mut used = BTreeSet::new();
        for (index, item) in items.iter_mut().enumerate() {
            // A few draws, then a name no draw makes (the lists can outnumber the draws).
            let name = (0..8)
                .map(|_| version_name(self.rng))
                .find(|name| !used.contains(name))
                .unwrap_or_else(|| format!("v{}", 100_000 + index));
            used.insert(name.clone());
            item["name"] = json!(name);
        }
    }

    /// Values where the schema's pattern or CEL rule makes a generic one useless.
    fn tabled(&mut self, path: &str) -> Option<Value> {
        let rng = &mut *self.rng;
        Some(match path {
            "spec.group" => json!(self.setting.group),
            "spec.versions[].name" => json!(version_name(rng)),
            "spec.image" if rng.chance(0.05) => json!(format!("r.example.com/{}", "a".repeat(497))),
            "spec.image" => json!(rng.pick(IMAGES)),
            "spec.replicas" => json!(rng.below(LIVE_REPLICAS_MAX + 1)),
            "spec.env[]" => self.env_var(),
            "spec.resources" => resources(rng),
            "spec.nodeSelector" => node_selector(rng),
            "spec.tolerations[]" => toleration(rng),
            // A core/v1 Affinity is huge: one required node term, on or off the fake node.
            "spec.affinity" => affinity(rng),
            "spec.serviceAccountName" => {
                json!(rng.pick(&["", RUNNER_ACCOUNT, RUNNER_ACCOUNT, MISSING_ACCOUNT]))
            }
            "spec.tls.secretName" => json!(self.setting.byo_secret),
            "spec.tls.certificateDuration" | "spec.tls.caDuration" => json!(lifetime(rng)),
            "spec.registration.unregisterAfter" => json!(rng.pick(UNREGISTER_AFTER)),
            _ => return None,
        })
    }

    fn env_var(&mut self) -> Value {
        self.touched.insert("spec.env[].name".into());
        let rng = &mut *self.rng;
        // Edge cases now and then; names are made unique afterwards (a CEL rule requires it).
        let name = match rng.below(12) {
            0 => "A".repeat(256),
            1 => "my.var-1 x".to_string(), // printable, not a C identifier
            _ => format!("VAR_{}", rng.below(1_000_000)),
        };
        let (field, value) = match rng.below(3) {
            0 => ("value", json!(rng.pick(&["", "plain", "a b=c", "é漢"]))),
            1 => ("valueFrom", value_from(rng)),
            _ => return json!({"name": name}),
        };
        self.touched.insert(format!("spec.env[].{field}"));
        json!({"name": name, field: value})
    }
}

fn has_unique_names_rule(schema: &Value) -> bool {
    schema["x-kubernetes-validations"]
        .as_array()
        .is_some_and(|rules| {
            rules
                .iter()
                .any(|r| r["rule"].as_str().is_some_and(|r| r.contains("exists_one")))
        })
}

/// `v1`, `v12`, `v2beta1`, `v1alpha3`...
pub fn version_name(rng: &mut Rng) -> String {
    let major = 1 + rng.below(12);
    match rng.below(3) {
        0 => format!("v{major}"),
        1 => format!("v{major}beta{}", 1 + rng.below(9)),
        _ => format!("v{major}alpha{}", 1 + rng.below(9)),
    }
}

fn lifetime(rng: &mut Rng) -> &'static str {
    if rng.chance(0.9) {
        LIFETIMES[1 + rng.below(LIFETIMES.len() as u64 - 1) as usize]
    } else {
        LIFETIMES[0]
    }
}

fn value_from(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!({"secretKeyRef": {"name": "app-secret", "key": "token", "optional": true}}),
        1 => json!({"configMapKeyRef": {"name": "app-config", "key": "mode", "optional": true}}),
        2 => json!({"fieldRef": {"fieldPath": "metadata.name"}}),
        _ => json!({"resourceFieldRef": {"resource": "limits.memory"}}),
    }
}

/// Canonical quantities (the API server would rewrite `1000m` as `1`), requests within limits.
/// No `claims`: a claim must name a pod resourceClaim, and the pods have none (see `invalid`).
fn resources(rng: &mut Rng) -> Value {
    let cpu = ["100m", "250m", "1", "2"];
    let memory = ["64Mi", "128Mi", "1Gi"];
    let (c, m) = (rng.below(4) as usize, rng.below(3) as usize);
    let mut resources = Map::new();
    if rng.chance(0.7) {
        resources.insert(
            "requests".into(),
            json!({"cpu": cpu[c], "memory": memory[m]}),
        );
    }
    if rng.chance(0.5) {
        let limit_cpu = cpu[c + rng.below((4 - c) as u64) as usize];
        resources.insert(
            "limits".into(),
            json!({"cpu": limit_cpu, "memory": memory[2]}),
        );
    }
    json!(resources)
}

/// Mostly labels the fake node has; sometimes one it lacks (the pods then stay Pending).
fn node_selector(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => json!({}),
        1 => json!({"disktype": "ssd"}),
        2 => json!({"kubernetes.io/os": "linux", "environment": "production"}),
        _ => json!({"type": "kwok"}),
    }
}

fn toleration(rng: &mut Rng) -> Value {
    match rng.below(3) {
        0 => json!({"key": "dedicated", "operator": "Exists"}),
        1 => json!({"key": "team", "operator": "Equal", "value": "ext", "effect": "NoSchedule"}),
        _ => json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": rng.below(3600)}),
    }
}

fn affinity(rng: &mut Rng) -> Value {
    let os = if rng.chance(0.7) { "linux" } else { "plan9" };
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": [os]}]}
    ]}}})
}

/// Seconds in a Go duration made of `h`, `m` and `s` parts (those [`LIFETIMES`] uses).
pub fn seconds(duration: &str) -> f64 {
    let (mut total, mut number) = (0.0, String::new());
    for c in duration.chars() {
        match c {
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                total += number.parse::<f64>().unwrap_or(0.0) * unit;
                number.clear();
            }
            _ => number.push(c),
        }
    }
    total
}

/// The tls object's CEL rules: `secretName` exactly in mode Secret; the CA outlives the
/// certificate (absent fields count as their defaults).
pub fn repair_tls(spec: &mut Value, setting: &Setting) {
    let Some(tls) = spec.get_mut("tls").and_then(Value::as_object_mut) else {
        return;
    };
    if tls.get("mode").and_then(Value::as_str) == Some("Secret") {
        tls.insert("secretName".into(), json!(setting.byo_secret));
    } else {
        tls.remove("secretName");
    }
    let lifetime = |tls: &Map<String, Value>, key: &str, default: &str| {
        seconds(tls.get(key).and_then(Value::as_str).unwrap_or(default))
    };
    if lifetime(tls, "caDuration", "43800h") <= lifetime(tls, "certificateDuration", "2160h") {
        tls.insert("caDuration".into(), json!("87600h"));
        if lifetime(tls, "certificateDuration", "2160h") >= seconds("87600h") {
            tls.remove("certificateDuration");
        }
    }
}
