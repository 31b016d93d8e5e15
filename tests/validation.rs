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

/// What is wrong, how to break a valid spec that way, and the message the user must see.
type Case = (&'static str, fn(&mut Value), &'static str);

async fn rejection(api: &Api<ExtensionServer>, spec_change: fn(&mut Value)) -> String {
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

    let cases: Vec<Case> = vec![
        (
            "group without a dot",
            |s| s["group"] = json!("myapi"),
            "group must be a DNS subdomain with at least one dot",
        ),
        (
            "bad version name",
            |s| s["versions"] = json!([{"name": "version1"}]),
            "version name must look like v1, v2beta1 or v1alpha1",
        ),
        (
            "duplicate versions",
            |s| s["versions"] = json!([{"name": "v1"}, {"name": "v1"}]),
            "version names must be unique",
        ),
        (
            "group priority too high",
            |s| s["versions"] = json!([{"name": "v1", "groupPriorityMinimum": 20001}]),
            "groupPriorityMinimum: Invalid value: 20001: spec.versions[0].groupPriorityMinimum in body should be less than or equal to 20000",
        ),
        (
            "version priority zero",
            |s| s["versions"] = json!([{"name": "v1", "versionPriority": 0}]),
            "should be greater than or equal to 1",
        ),
        (
            "no versions",
            |s| s["versions"] = json!([]),
            "should have at least 1 items",
        ),
        (
            "Secret mode without secretName",
            |s| s["tls"] = json!({"mode": "Secret"}),
            "tls.secretName is required when tls.mode is Secret",
        ),
        (
            "empty image",
            |s| s["image"] = json!(""),
            "image must not be empty",
        ),
        (
            "bad duration",
            |s| s["tls"] = json!({"certificateDuration": "90 days"}),
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
