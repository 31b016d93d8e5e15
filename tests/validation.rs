//! The API server refuses invalid specs with messages a user understands.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

mod support;

use extension_server_operator::crd::ExtensionServer;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::TestNamespace;

fn valid() -> Value {
    json!({
        "apiVersion": "aggregation.dev/v1alpha1",
        "kind": "ExtensionServer",
        "metadata": {"name": "candidate"},
        "spec": {
            "group": "my.custom.api",
            "versions": [{"name": "v1"}],
            "image": "my-extension-server-image:latest"
        }
    })
}

async fn rejection(api: &Api<ExtensionServer>, spec_change: impl FnOnce(&mut Value)) -> String {
    let mut object = valid();
    spec_change(&mut object["spec"]);
    let server: ExtensionServer = serde_json::from_value(object).unwrap();
    match api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &server,
        )
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_specs_are_refused_with_readable_messages() {
    let ns = TestNamespace::create("es-invalid").await.unwrap();
    support::install_crd(&ns.client).await;
    let api: Api<ExtensionServer> = ns.api();

    let cases: Vec<(&str, Box<dyn FnOnce(&mut Value)>, &str)> = vec![
        (
            "group without a dot",
            Box::new(|s| s["group"] = json!("myapi")),
            "group must be a DNS subdomain with at least one dot",
        ),
        (
            "bad version name",
            Box::new(|s| s["versions"] = json!([{"name": "version1"}])),
            "version name must look like v1, v2beta1 or v1alpha1",
        ),
        (
            "duplicate versions",
            Box::new(|s| s["versions"] = json!([{"name": "v1"}, {"name": "v1"}])),
            "version names must be unique",
        ),
        (
            "group priority too high",
            Box::new(|s| s["versions"] = json!([{"name": "v1", "groupPriorityMinimum": 20001}])),
            "groupPriorityMinimum: Invalid value: 20001: spec.versions[0].groupPriorityMinimum in body should be less than or equal to 20000",
        ),
        (
            "version priority zero",
            Box::new(|s| s["versions"] = json!([{"name": "v1", "versionPriority": 0}])),
            "should be greater than or equal to 1",
        ),
        (
            "no versions",
            Box::new(|s| s["versions"] = json!([])),
            "should have at least 1 items",
        ),
        (
            "Secret mode without secretName",
            Box::new(|s| s["tls"] = json!({"mode": "Secret"})),
            "tls.secretName is required when tls.mode is Secret",
        ),
        (
            "empty image",
            Box::new(|s| s["image"] = json!("")),
            "image must not be empty",
        ),
        (
            "bad duration",
            Box::new(|s| s["tls"] = json!({"certificateDuration": "90 days"})),
            "certificateDuration must be a duration such as 2160h",
        ),
    ];
    for (what, change, expected) in cases {
        let message = rejection(&api, change).await;
        assert!(message.contains(expected), "{what}: {message}");
    }

    // The group is immutable.
    let server: ExtensionServer = serde_json::from_value(valid()).unwrap();
    api.create(&PostParams::default(), &server).await.unwrap();
    let patch = json!({"spec": {"group": "other.custom.api"}});
    match api
        .patch("candidate", &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(
                status.message.contains("group is immutable"),
                "{}",
                status.message
            );
        }
        other => panic!("changing the group must fail, got {other:?}"),
    }
}
