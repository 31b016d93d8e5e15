//! The chart's ValidatingAdmissionPolicy as tests install it (removed however the test ends),
//! and `kubectl` calls it judges.

use std::time::Duration;

use testenv::TestNamespace;

use crate::chart::{kubectl_stdin, template};

/// A policy and its binding, both named `name`; deleted on drop.
pub struct Installed<'a> {
    pub ns: &'a TestNamespace,
    pub name: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = self
                .ns
                .kubectl(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
    }
}

/// `kubectl apply` of `yaml` in `ns`: Ok, or the refusal's text.
pub fn apply(ns: &TestNamespace, yaml: &str) -> Result<(), String> {
    let out = kubectl_stdin(ns, &["apply", "-n", &ns.name, "-f", "-"], yaml.as_bytes());
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Waits until the policy (which takes effect a moment after it is written) refuses to create
/// `yaml`. A dry run, so that an early success creates nothing a later try would only update.
pub async fn wait_refused(ns: &TestNamespace, yaml: &str) {
    crate::eventually(Duration::from_secs(30), "the policy to refuse", || {
        let out = kubectl_stdin(
            ns,
            &["create", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            yaml.as_bytes(),
        );
        async move { !out.status.success() }
    })
    .await;
}

/// Renders the chart's policy for `grants` (JSON), bound to `namespaces` only so that no other
/// test meets it, and applies it (again, for new grants); removed when dropped.
pub fn install_policy<'a>(
    ns: &'a TestNamespace,
    grants: &str,
    namespaces: &[&str],
) -> Installed<'a> {
    let rendered = template(
        &ns.cluster.tools.helm,
        &ns.name,
        &[
            "--show-only",
            "templates/admission-policy.yaml",
            "--set-json",
            &format!("grants={grants}"),
        ],
    );
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let mut value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if value["kind"] == "ValidatingAdmissionPolicyBinding" {
            value["spec"]["matchResources"] = serde_json::json!({"namespaceSelector": {
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                      "values": namespaces}]}});
        }
        documents.push(serde_json::to_string(&value).unwrap());
    }
    let out = kubectl_stdin(ns, &["apply", "-f", "-"], documents.join("\n").as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Installed {
        ns,
        name: format!("{}-claims", ns.name),
    }
}
