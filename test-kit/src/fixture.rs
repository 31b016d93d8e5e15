//! ExtensionServer specs for tests, built field by field instead of written as YAML:
//!
//! ```text
//! h.create(&Server::in_group("tenant", &group).replicas(2).tls("{mode: Insecure}")).await;
//! ```
//!
//! Unset fields stay unset (the API server's defaults apply), except `versions` (`[v1]`) and
//! `image` ([`IMAGE`]), which every in-cluster server needs. The presets name the shapes the
//! tests share: [`Server::in_group`], [`Server::own_group`], [`Server::sample`] and
//! [`Server::sample_serving`]. [`Server::build`] gives the typed object, [`Server::yaml`] the
//! manifest for `kubectl apply`.

use extension_server_operator::crd::ExtensionServer;
use serde_json::{Map, Value, json};

/// The image of every test server; the pod-runtime stand-in runs the sample server for it.
pub const IMAGE: &str = "my-extension-server-image:latest";

/// The flags the sample server needs to serve on `port` with the mounted certificate.
pub fn sample_args(port: u16) -> [String; 3] {
    [
        format!("--secure-port={port}"),
        "--tls-cert-file=/var/run/extension-server/tls/tls.crt".into(),
        "--tls-private-key-file=/var/run/extension-server/tls/tls.key".into(),
    ]
}

/// An ExtensionServer under construction.
#[derive(Debug, Clone)]
pub struct Server {
    metadata: Map<String, Value>,
    spec: Map<String, Value>,
}

impl Server {
    pub fn new(name: &str) -> Self {
        let mut metadata = Map::new();
        metadata.insert("name".into(), name.into());
        let mut spec = Map::new();
        spec.insert("versions".into(), json!([{"name": "v1"}]));
        spec.insert("image".into(), IMAGE.into());
        Self { metadata, spec }
    }

    /// A server for API group `group`, otherwise as [`Server::new`].
    pub fn in_group(name: &str, group: &str) -> Self {
        Self::new(name).group(group)
    }

    /// A server in a group of its own, named after it: `<name>.custom.api`.
    pub fn own_group(name: &str) -> Self {
        Self::in_group(name, &format!("{name}.custom.api"))
    }

    /// A server the pod-runtime stand-in can run for real: the sample server's group
    /// (`my.custom.api/v1`, with priorities) on port 443 with the mounted certificate.
    pub fn sample(name: &str) -> Self {
        Self::in_group(name, "my.custom.api")
            .priorities(1000, 15)
            .replicas(1)
            .sample_port(443)
    }

    /// The sample server on port 443 (flags as [`Server::secure_port`]) serving `group`
    /// instead of its own (`--group`).
    pub fn sample_serving(name: &str, group: &str) -> Self {
        Self::in_group(name, group)
            .port(443)
            .args(&["--secure-port=443".to_string(), format!("--group={group}")])
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.metadata.insert("namespace".into(), namespace.into());
        self
    }

    pub fn group(self, group: &str) -> Self {
        self.set("group", group)
    }

    /// Serves these versions, in this order (replaces the default `[v1]`).
    pub fn versions(self, versions: &[&str]) -> Self {
        let versions: Vec<Value> = versions.iter().map(|v| json!({"name": v})).collect();
        self.set("versions", versions)
    }

    /// Sets `groupPriorityMinimum` and `versionPriority` on every version.
    pub fn priorities(mut self, group_minimum: u32, version: u32) -> Self {
        if let Some(Value::Array(versions)) = self.spec.get_mut("versions") {
            for v in versions {
                v["groupPriorityMinimum"] = group_minimum.into();
                v["versionPriority"] = version.into();
            }
        }
        self
    }

    pub fn replicas(self, replicas: i32) -> Self {
        self.set("replicas", replicas)
    }

    pub fn port(self, port: u16) -> Self {
        self.set("port", port)
    }

    pub fn args<S: AsRef<str>>(self, args: &[S]) -> Self {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        self.set("args", args)
    }

    /// Port `port` with the sample server's flags for it ([`sample_args`]).
    pub fn sample_port(self, port: u16) -> Self {
        self.port(port).args(&sample_args(port))
    }

    /// Port `port`, told to the sample server as `--secure-port` and no TLS flags (the
    /// pod-runtime stand-in passes it the mounted certificate).
    pub fn secure_port(self, port: u16) -> Self {
        self.port(port).args(&[format!("--secure-port={port}")])
    }

    /// `spec.tls` from a YAML fragment, such as `{mode: Secret, secretName: byo}`.
    pub fn tls(self, tls: &str) -> Self {
        let tls = parse(tls);
        self.set("tls", tls)
    }

    /// A server outside the cluster at `host:port` instead of a Deployment (no image).
    pub fn external(mut self, host: &str, port: u16) -> Self {
        self.spec.remove("image");
        self.set("external", json!({"host": host, "port": port}))
    }

    /// `registration.unregisterAfter`: how long an unavailable APIService may stay.
    pub fn unregister_after(self, after: &str) -> Self {
        self.registration("unregisterAfter", after.into())
    }

    /// `registration.adoptExisting: true`.
    pub fn adopt_existing(self) -> Self {
        self.registration("adoptExisting", true.into())
    }

    fn registration(mut self, field: &str, value: Value) -> Self {
        let registration = self.spec.entry("registration").or_insert_with(|| json!({}));
        registration[field] = value;
        self
    }

    /// `podTemplate` from a YAML fragment, such as `{metadata: {annotations: {team: a}}}`.
    pub fn pod_template(self, template: &str) -> Self {
        let template = parse(template);
        self.set("podTemplate", template)
    }

    /// Any other spec fields, from a YAML mapping such as `{serviceAccountName: mine}`.
    pub fn extra(mut self, fields: &str) -> Self {
        match parse(fields) {
            Value::Object(fields) => self.spec.extend(fields),
            other => panic!("extra spec fields must be a mapping, not {other}"),
        }
        self
    }

    /// As the API server stores it: with a uid (`u`) and generation 1, for pure tests of the
    /// builders that read them.
    pub fn stored(mut self) -> Self {
        self.metadata.insert("uid".into(), "u".into());
        self.metadata.insert("generation".into(), 1.into());
        self
    }

    fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.spec.insert(field.into(), value.into());
        self
    }

    pub fn json(&self) -> Value {
        json!({
            "apiVersion": "aggregation.dev/v1alpha1",
            "kind": "ExtensionServer",
            "metadata": self.metadata,
            "spec": self.spec,
        })
    }

    /// The manifest, for `kubectl apply`.
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.json()).unwrap()
    }

    pub fn build(&self) -> ExtensionServer {
        serde_json::from_value(self.json()).unwrap()
    }
}

fn parse(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml:?} is not YAML: {e}"))
}
