//! The chart's ValidatingAdmissionPolicy, rendered from the same `grants` value the operator
//! reads, refuses at `kubectl apply` what the operator would refuse, with the same messages.

use std::time::Duration;

use testenv::TestNamespace;

use crate::support;
use crate::support::chart::{kubectl_stdin, template};
use crate::support::fixture::Server;
use crate::support::policy::Installed;

fn server(name: &str, group: &str) -> Server {
    Server::new(name).group(group)
}

/// `kubectl apply` of `yaml` in `ns`: Ok, or the refusal's text.
fn apply(ns: &TestNamespace, yaml: &str) -> Result<(), String> {
    let out = kubectl_stdin(ns, &["apply", "-n", &ns.name, "-f", "-"], yaml.as_bytes());
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[tokio::test]
async fn the_policy_refuses_what_the_grants_refuse() {
    let granted = TestNamespace::create("vap-granted").await.unwrap();
    let other = TestNamespace::create("vap-other").await.unwrap();
    support::install_crd(&granted.client).await;
    let grants = format!(
        r#"grants=[{{"namespaces":["{}"],"groups":["*.custom.api"]}}]"#,
        granted.name
    );
    let rendered = template(
        &granted.cluster.tools.helm,
        &granted.name,
        &[
            "--show-only",
            "templates/admission-policy.yaml",
            "--set-json",
            &grants,
        ],
    );
    // Bind it to this test's two namespaces only, so no other test meets it.
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let mut value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if value["kind"] == "ValidatingAdmissionPolicyBinding" {
            value["spec"]["matchResources"] = serde_json::json!({"namespaceSelector": {
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                      "values": [granted.name, other.name]}]}});
        }
        documents.push(serde_json::to_string(&value).unwrap());
    }
    let installed = Installed {
        ns: &granted,
        name: format!("{}-claims", granted.name),
    };
    let out = kubectl_stdin(
        &granted,
        &["apply", "-f", "-"],
        documents.join("\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The policy takes effect a moment after it is created.
    let refused = server("tenant", "x.custom.api").yaml();
    support::eventually(Duration::from_secs(30), "the policy to refuse", || {
        let outcome = apply(&other, &refused);
        async move { outcome.is_err() }
    })
    .await;
    let message = apply(&other, &refused).unwrap_err();
    assert!(
        message.contains(&format!(
            "namespace {} has no grant for group x.custom.api",
            other.name
        )),
        "{message}"
    );
    let reserved = apply(&granted, &server("kube", "x.k8s.io").yaml()).unwrap_err();
    assert!(
        reserved.contains("reserved for Kubernetes itself"),
        "{reserved}"
    );
    let adopt = apply(
        &granted,
        &server("adopt", "y.custom.api").adopt_existing().yaml(),
    )
    .unwrap_err();
    assert!(adopt.contains("no grant lets namespace"), "{adopt}");
    apply(&granted, &server("tenant", "x.custom.api").yaml()).unwrap();
    assert!(
        granted
            .kubectl(&["delete", "extensionserver", "tenant", "-n", &granted.name])
            .status
            .success()
    );
    drop(installed);
}
