//! Invalid changes: one bound of the schema stepped over (a number past its minimum or maximum,
//! a value outside an enum, a string or list one too long, a list too short, a wrong type, a
//! required field left out) or one CEL rule broken, every site found by walking the schema.
//! Then specs that pass admission but cannot work, which status must report.

use serde_json::{Value, json};

use extension_server_operator::crd::schema::POD_FIELDS;

use super::generator::{
    Generator, MISSING_SECRET, NOT_GENERATED, Setting, at, properties, put, version_name,
};

/// One invalid change.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Schema path and what was broken, such as `spec.port maximum`.
    pub what: String,
    pub spec: Value,
    /// Admission may let it through; then a False condition's message must contain this.
    pub admitted_hint: Option<String>,
}

/// A place in the schema with a bound that can be broken.
#[derive(Debug, Clone)]
pub enum Site {
    Minimum(String, i64),
    Maximum(String, i64),
    Enum(String),
    MaxLength(String, u64),
    MinItems(String),
    MaxItems(String, u64),
    MaxProperties(String, u64),
    Type(String),
    Required(String, String),
    Rule(String, String),
}

/// Every breakable bound under `spec` (the affinity's core/v1 types are not walked).
pub fn sites(root: &Value) -> Vec<Site> {
    let mut sites = Vec::new();
    walk(root, "spec", &mut sites);
    sites
}

fn walk(root: &Value, path: &str, sites: &mut Vec<Site>) {
    // The generator never sets these (see `NOT_GENERATED`); their rules are broken by their
    // own tests, and external's from the spec itself.
    if path.starts_with("spec.affinity") || NOT_GENERATED.iter().any(|f| path.starts_with(f)) {
        return;
    }
    let schema = at(root, path);
    let p = || path.to_string();
    if let Some(min) = schema["minimum"].as_f64() {
        sites.push(Site::Minimum(p(), min as i64));
    }
    if let Some(max) = schema["maximum"].as_f64() {
        sites.push(Site::Maximum(p(), max as i64));
    }
    if schema["enum"].is_array() {
        sites.push(Site::Enum(p()));
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        sites.push(Site::MaxLength(p(), max));
    }
    if schema["minItems"].as_u64().is_some_and(|m| m > 0) {
        sites.push(Site::MinItems(p()));
    }
    if let Some(max) = schema["maxItems"].as_u64() {
        sites.push(Site::MaxItems(p(), max));
    }
    if let Some(max) = schema["maxProperties"].as_u64() {
        sites.push(Site::MaxProperties(p(), max));
    }
    if schema["type"].is_string() && path != "spec" {
        sites.push(Site::Type(p()));
    }
    for field in schema["required"].as_array().into_iter().flatten() {
        sites.push(Site::Required(p(), field.as_str().unwrap().to_string()));
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        sites.push(Site::Rule(
            p(),
            rule["message"].as_str().unwrap().to_string(),
        ));
    }
    for (name, _) in properties(schema) {
        walk(root, &format!("{path}.{name}"), sites);
    }
    if schema["items"].is_object() {
        walk(root, &format!("{path}[]"), sites);
    }
    if schema["additionalProperties"].is_object() {
        walk(root, &format!("{path}{{}}"), sites);
    }
}

/// `path` with `bad` in place in a copy of `spec`: inside a list, in its first item (made if
/// needed); inside a map, as the value of a key `k`.
pub fn place(g: &mut Generator<'_>, spec: &Value, path: &str, bad: Value) -> Value {
    let mut next = spec.clone();
    let segments: Vec<&str> = path.split('.').skip(1).collect();
    let mut node = &mut next;
    let mut walked = String::from("spec");
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let Some(name) = segment.strip_suffix("[]") {
            walked = format!("{walked}.{name}");
            if node[name].as_array().is_none_or(|a| a.is_empty()) {
                node[name] = json!([g.value(&format!("{walked}[]"))]);
            }
            walked.push_str("[]");
            node = &mut node[name][0];
            if last {
                *node = bad;
                return next;
            }
        } else if let Some(name) = segment.strip_suffix("{}") {
            node[name] = json!({"k": bad});
            return next;
        } else {
            walked = format!("{walked}.{segment}");
            if last {
                node[*segment] = bad;
                return next;
            }
            if !node[*segment].is_object() {
                node[*segment] = json!({});
            }
            node = &mut node[*segment];
        }
    }
    bad
}

/// Breaks `site` in `spec`.
pub fn violate(g: &mut Generator<'_>, spec: &Value, site: &Site) -> Violation {
    let (what, next) = match site {
        Site::Minimum(path, min) => (
            format!("{path} minimum"),
            place(g, spec, path, json!(min - 1)),
        ),
        Site::Maximum(path, max) => (
            format!("{path} maximum"),
            place(g, spec, path, json!(max + 1)),
        ),
        Site::Enum(path) => (
            format!("{path} enum"),
            place(g, spec, path, json!("Sometimes")),
        ),
        Site::MaxLength(path, max) => {
            let long = format!("v1{}", "1".repeat(*max as usize - 1));
            (
                format!("{path} maxLength"),
                place(g, spec, path, json!(long)),
            )
        }
        Site::MinItems(path) => (format!("{path} minItems"), place(g, spec, path, json!([]))),
        Site::MaxItems(path, max) => {
            let items: Vec<Value> = (0..=*max).map(|_| g.value(&format!("{path}[]"))).collect();
            let mut items = json!(items);
            if path == "spec.versions" {
                for (i, item) in items.as_array_mut().unwrap().iter_mut().enumerate() {
                    item["name"] = json!(format!("v{}", i + 1));
                }
            }
            (format!("{path} maxItems"), place(g, spec, path, items))
        }
        Site::MaxProperties(path, max) => {
            let map: serde_json::Map<String, Value> = (0..=*max)
                .map(|i| (format!("example.com/k{i}"), json!("1")))
                .collect();
            (
                format!("{path} maxProperties"),
                place(g, spec, path, json!(map)),
            )
        }
        Site::Type(path) => {
            let wrong = match at(g.root, path)["type"].as_str() {
                Some("integer") => json!("three"),
                Some("string") => json!(42),
                Some("boolean") => json!("yes"),
                Some("array") => json!("not-a-list"),
                _ => json!(["not", "an", "object"]),
            };
            (format!("{path} type"), place(g, spec, path, wrong))
        }
        Site::Required(path, field) => {
            let next = if path == "spec" {
                let mut next = spec.clone();
                put(&mut next, &format!("spec.{field}"), None);
                next
            } else {
                let mut item = g.value(path);
                item.as_object_mut().unwrap().remove(field);
                place(g, spec, path, item)
            };
            (format!("{path}.{field} required"), next)
        }
        Site::Rule(path, message) => {
            let bad = rule_breaker(g, path, message, spec)
                .unwrap_or_else(|| panic!("no value breaks the rule on {path}: {message}"));
            (format!("{path} rule: {message}"), place(g, spec, path, bad))
        }
    };
    Violation {
        what,
        spec: next,
        admitted_hint: None,
    }
}

/// A value at `path` that breaks the CEL rule with `message` and nothing else.
fn rule_breaker(g: &mut Generator<'_>, path: &str, message: &str, spec: &Value) -> Option<Value> {
    let rng = &mut *g.rng;
    let durations = ["5s", "87601h", "90 minutes", "1d", "-1h", "0s"];
    let pick = |rng: &mut crate::support::chaos::Rng, options: &[&str]| json!(rng.pick(options));
    Some(match (path, message) {
        ("spec", m) if m.starts_with("additionalGroups") || m.starts_with("at most") => {
            groups_rule_breaker(spec, m)?
        }
        ("spec", m) => external_rule_breaker(g.setting, spec, m)?,
        ("spec.group", m) if m.contains("immutable") => {
            json!(format!("other.{}", spec["group"].as_str()?))
        }
        ("spec.group", _) => pick(rng, &["Not_A_Group", "nodots", "a..b"]),
        ("spec.versions", _) => {
            let name = version_name(rng);
            json!([{"name": name}, {"name": name}])
        }
        ("spec.versions[].name", _) => pick(rng, &["1v", "v0", "V1", "v1gamma1", "v1beta"]),
        ("spec.image", m) if m.contains("empty") => json!(""),
        ("spec.image", _) => pick(rng, &["my image:latest", "tab\there", "new\nline"]),
        ("spec.env", m) if m.contains("printable") => json!([{"name": "A=B", "value": "x"}]),
        ("spec.env", m) if m.contains("not both") => {
            json!([{"name": "X", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
        }
        ("spec.env", _) => json!([{"name": "X", "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.name"}, "resourceFieldRef": {"resource": "limits.cpu"}}}]),
        ("spec.resources", m) if m.contains("exceed") => {
            json!({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}})
        }
        ("spec.resources", _) => json!({"requests": {"cpu": rng.pick(&["lots", "1.5.5", "5x"])}}),
        ("spec.nodeSelector", _) => {
            json!(rng.pick(&[json!({"-bad-key-": "x"}), json!({"disk": "has space"})]))
        }
        ("spec.serviceAccountName" | "spec.tls.secretName", _) => {
            pick(rng, &["Bad_Name", "-x", "a..b"])
        }
        ("spec.tls", m) if m.contains("required") => json!({"mode": "Secret"}),
        ("spec.tls", m) if m.contains("only used") => {
            json!({"mode": "Managed", "secretName": g.setting.byo_secret})
        }
        ("spec.tls", _) => json!({"certificateDuration": "8760h", "caDuration": "720h"}),
        ("spec.tls.certificateDuration" | "spec.tls.caDuration", _) => pick(rng, &durations),
        ("spec.registration.unregisterAfter", _) => {
            pick(rng, &["0s", "forever", "87601h", "500ms"])
        }
        _ => return None,
    })
}

/// A whole spec that breaks one of the spec's rules about `additionalGroups`.
fn groups_rule_breaker(spec: &Value, message: &str) -> Option<Value> {
    let mut next = spec.clone();
    let group = |name: &str, count: usize| {
        let versions: Vec<Value> = (1..=count)
            .map(|v| json!({"name": format!("v{v}")}))
            .collect();
        json!({"group": name, "versions": versions})
    };
    let groups = if message.contains("must not repeat") {
        json!([group(spec["group"].as_str()?, 1)])
    } else {
        // One group within its own bound of 16, one version over the total.
        let over = 17 - spec["versions"].as_array()?.len();
        json!([group("extra.example.com", over)])
    };
    next.as_object_mut()?
        .insert("additionalGroups".into(), groups);
    Some(next)
}

/// A whole spec that breaks one of the spec's rules about `external`.
fn external_rule_breaker(setting: &Setting, spec: &Value, message: &str) -> Option<Value> {
    let mut next = spec.clone();
    let object = next.as_object_mut()?;
    let external = json!({"host": "api.example.com", "port": 8443});
    let own_ca = json!({"mode": "Secret", "secretName": setting.byo_secret});
    let without_pods = |object: &mut serde_json::Map<String, Value>| {
        for field in POD_FIELDS {
            object.remove(field);
        }
    };
    if message.contains("image must not be empty") {
        object.remove("image");
    } else if message.contains("mutually exclusive") {
        without_pods(object);
        object.insert("external".into(), external);
        object.insert("tls".into(), own_ca);
    } else if message.contains("has no pods") {
        object.remove("image");
        object.insert("external".into(), external);
        object.insert("tls".into(), own_ca);
        object.insert("args".into(), json!(["--verbose"]));
    } else if message.contains("its own CA") {
        object.remove("image");
        without_pods(object);
        object.insert("external".into(), external);
        object.insert("tls".into(), json!({"mode": "Managed"}));
    } else if message.contains("cannot be added or removed") {
        // Valid as a new object; refused as a change to a server that runs pods.
        object.remove("image");
        without_pods(object);
        object.insert("external".into(), external);
        object.insert("tls".into(), own_ca);
    } else {
        return None;
    }
    Some(next)
}

/// Whether the API server validates resource claims: before 1.34 (dynamic resource allocation
/// off by default) it drops `resources.claims` silently, so such a spec works.
fn claims_validated() -> bool {
    let minor = testenv::tools::selected_kubernetes().unwrap_or_default();
    minor.as_str() >= "1.34"
}

/// Specs admission lets through that cannot work; status must say why, naming the hint.
pub fn unworkable(g: &mut Generator<'_>, spec: &Value) -> Violation {
    let mut pick = g.rng.below(3);
    if pick == 1 && !claims_validated() {
        pick = 2;
    }
    let (what, path, value, hint) = match pick {
        0 => (
            "toleration operator the Deployment refuses",
            "spec.tolerations",
            json!([{"key": "k", "operator": "Sometimes"}]),
            "tolerations",
        ),
        1 => (
            "resource claim the pod does not have",
            "spec.resources",
            json!({"claims": [{"name": "gpu"}]}),
            "claims",
        ),
        _ => (
            "mode Secret with a Secret that does not exist",
            "spec.tls",
            json!({"mode": "Secret", "secretName": MISSING_SECRET}),
            MISSING_SECRET,
        ),
    };
    g.touched.insert(format!("{path} (unworkable)"));
    let mut next = spec.clone();
    put(&mut next, path, Some(value));
    Violation {
        what: what.into(),
        spec: next,
        admitted_hint: Some(hint.into()),
    }
}
