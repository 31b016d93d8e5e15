//! An in-memory API server behind a tower-test mock: enough of GET, LIST (by name), POST,
//! server-side apply, merge patch, PUT and DELETE for the reconcile to run against, with a log
//! of every write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Where an object lives: its collection (`/apis/<g>/<v>[/namespaces/<ns>]/<plural>`) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    prefix: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<String> = path.trim_matches('/').split('/').map(decode).collect();
        let (prefix, rest) = match segments.first().map(String::as_str) {
            Some("api") => (segments[..2].join("/"), &segments[2..]),
            Some("apis") => (segments[..3].join("/"), &segments[3..]),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            [ns, namespace, rest @ ..] if ns == "namespaces" && !rest.is_empty() => {
                (Some(namespace.clone()), rest)
            }
            rest => (None, rest),
        };
        let (plural, name, status) = match rest {
            [plural] => (plural.clone(), None, false),
            [plural, name] => (plural.clone(), Some(name.clone()), false),
            [plural, name, sub] if sub == "status" => (plural.clone(), Some(name.clone()), true),
            _ => return None,
        };
        Some(Self {
            prefix: format!("/{prefix}"),
            namespace,
            plural,
            name,
            status,
        })
    }

    fn collection(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/namespaces/{ns}/{}", self.prefix, self.plural),
            None => format!("{}/{}", self.prefix, self.plural),
        }
    }
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The stored objects, by collection and name, and every write made.
#[derive(Default)]
pub struct State {
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    version: u64,
    /// Each write: "METHOD <plural>/<name>" (`<plural>` for a create).
    pub writes: Vec<String>,
}

/// The fake API server; clone freely, every clone sees the same state.
#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<State>>);

impl FakeApi {
    /// A client whose every request this fake answers.
    pub fn client(&self) -> kube::Client {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(self.clone().serve(handle));
        kube::Client::new(service, "default")
    }

    async fn serve(self, mut handle: Handle) {
        while let Some((request, reply)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let query = parts.uri.query().unwrap_or("").to_string();
            let (code, answer) = self.answer(&parts.method, parts.uri.path(), &query, body);
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(answer.to_string().into_bytes()))
                .expect("a response");
            reply.send_response(response);
        }
    }

    /// Stores `object` in the collection at `collection` (as a create would).
    pub fn put(&self, collection: &str, mut object: Value) -> Value {
        let mut state = self.0.lock().expect("fake state");
        stamp(&mut state, &mut object, None);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let slot = state.objects.entry(collection.to_string()).or_default();
        slot.insert(name, object.clone());
        object
    }

    /// Changes a stored object in place.
    pub fn edit(&self, collection: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let mut state = self.0.lock().expect("fake state");
        if let Some(object) = state
            .objects
            .get_mut(collection)
            .and_then(|c| c.get_mut(name))
        {
            change(object);
        }
    }

    /// Every stored object of a kind, in every namespace (`prefix` as `/apis/apps/v1`).
    pub fn all(&self, prefix: &str, plural: &str) -> Vec<Value> {
        let state = self.0.lock().expect("fake state");
        state
            .objects
            .iter()
            .filter(|(collection, _)| {
                Target::parse(collection).is_some_and(|t| t.prefix == prefix && t.plural == plural)
            })
            .flat_map(|(_, objects)| objects.values().cloned())
            .collect()
    }

    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        let state = self.0.lock().expect("fake state");
        state.objects.get(collection)?.get(name).cloned()
    }

    /// The writes made since the last call.
    pub fn take_writes(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().expect("fake state").writes)
    }

    fn answer(&self, method: &Method, path: &str, query: &str, body: Value) -> (StatusCode, Value) {
        let Some(target) = Target::parse(path) else {
            return status(StatusCode::NOT_FOUND, "NotFound", path);
        };
        let mut state = self.0.lock().expect("fake state");
        let collection = target.collection();
        if *method != Method::GET {
            let what = match &target.name {
                Some(name) => format!("{method} {}/{name}", target.plural),
                None => format!("{method} {}", target.plural),
            };
            state
                .writes
                .push(what + if target.status { "/status" } else { "" });
        }
        let stored = |state: &State, name: &str| {
            state
                .objects
                .get(&collection)
                .and_then(|c| c.get(name))
                .cloned()
        };
        match (method, target.name.as_deref()) {
            (&Method::GET, None) => (StatusCode::OK, list(&state, &collection, query)),
            (&Method::GET, Some(name)) => match stored(&state, name) {
                Some(object) => (StatusCode::OK, object),
                None => status(StatusCode::NOT_FOUND, "NotFound", name),
            },
            (&Method::POST, _) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if stored(&state, &name).is_some() {
                    return status(StatusCode::CONFLICT, "AlreadyExists", &name);
                }
                let mut object = body;
                stamp(&mut state, &mut object, target.namespace.as_deref());
                let slot = state.objects.entry(collection).or_default();
                slot.insert(name, object.clone());
                (StatusCode::CREATED, object)
            }
            (&Method::PATCH | &Method::PUT, Some(name)) => {
                let mut object = match (stored(&state, name), method) {
                    (Some(mut existing), &Method::PATCH) if target.status => {
                        existing["status"] = body["status"].clone();
                        existing
                    }
                    (Some(mut existing), &Method::PATCH) => {
                        merge(&mut existing, &body);
                        existing
                    }
                    (_, _) => body,
                };
                stamp(&mut state, &mut object, target.namespace.as_deref());
                let slot = state.objects.entry(collection).or_default();
                slot.insert(name.to_string(), object.clone());
                (StatusCode::OK, object)
            }
            (&Method::DELETE, Some(name)) => {
                let gone = state
                    .objects
                    .get_mut(&collection)
                    .and_then(|c| c.remove(name));
                match gone {
                    Some(object) => (StatusCode::OK, object),
                    None => status(StatusCode::NOT_FOUND, "NotFound", name),
                }
            }
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", path),
        }
    }
}

/// Gives an object what the API server would: a uid, a resourceVersion, its namespace.
fn stamp(state: &mut State, object: &mut Value, namespace: Option<&str>) {
    state.version += 1;
    let meta = &mut object["metadata"];
    if meta["uid"].is_null() {
        meta["uid"] = json!(format!("uid-{}", state.version));
        meta["generation"] = json!(1);
    }
    if let Some(namespace) = namespace {
        meta["namespace"] = json!(namespace);
    }
    meta["resourceVersion"] = json!(state.version.to_string());
}

/// Objects merge key by key; anything else is replaced.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn list(state: &State, collection: &str, query: &str) -> Value {
    let by_name = query.split('&').map(decode).find_map(|p| {
        p.strip_prefix("fieldSelector=metadata.name=")
            .map(str::to_string)
    });
    let items: Vec<Value> = state
        .objects
        .get(collection)
        .into_iter()
        .flat_map(|c| c.values())
        .filter(|o| {
            by_name
                .as_deref()
                .is_none_or(|n| o["metadata"]["name"] == n)
        })
        .cloned()
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": state.version.to_string()},
        "items": items,
    })
}

fn status(code: StatusCode, reason: &str, what: &str) -> (StatusCode, Value) {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "reason": reason,
        "message": format!("{what}: {reason}"),
        "code": code.as_u16(),
    });
    (code, body)
}
