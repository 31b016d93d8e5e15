//! The API server refuses invalid specs with messages a user understands.

use extension_server_operator::crd::ExtensionServer;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::TestNamespace;

use crate::support;
use crate::support::fixture::Server;

fn valid() -> Value {
    Server::new("candidate").group("my.custom.api").json()
}

/// What is wrong, how to break a valid spec that way, and the message the user must see.
type Case = (&'static str, fn(&mut Value), &'static str);

/// Creates `object` (dry run); the API server's message if it refuses it with a 422.
async fn create(api: &Api<ExtensionServer>, object: Value) -> Result<(), String> {
    let server: ExtensionServer = serde_json::from_value(object).unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&dry_run, &server).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 422 => Err(status.message),
        Err(other) => panic!("expected a 422, got {other:?}"),
    }
}

/// Every case the API server does not refuse with its message, described.
async fn not_refused(
    api: &Api<ExtensionServer>,
    cases: impl IntoIterator<Item = (String, Value, &'static str)>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (what, object, expected) in cases {
        match create(api, object).await {
            Err(message) if message.contains(expected) => {}
            Err(message) => failures.push(format!("{what}: refused with {message:?}")),
            Ok(()) => failures.push(format!("{what}: accepted")),
        }
    }
    failures
}

fn named(name: &str) -> Value {
    let mut object = valid();
    object["metadata"]["name"] = json!(name);
    object
}

#[tokio::test]
async fn invalid_specs_are_refused_with_readable_messages() {
    let ns = TestNamespace::create("es-invalid").await.unwrap();
    support::install_crd(&ns.client).await;
    let api: Api<ExtensionServer> = ns.api();

    let cases: Vec<Case> = vec![
        (
            "too many args",
            |s| s["args"] = json!(vec!["--v=2"; 129]),
            "spec.args: Too many: 129: must have at most 128 items",
        ),
        (
            "an arg too long",
            |s| s["args"] = json!(["x".repeat(4097)]),
            "spec.args[0]: Too long: may not be more than 4096 bytes",
        ),
        (
            "too many tolerations",
            |s| s["tolerations"] = json!(vec![json!({"operator": "Exists"}); 33]),
            "spec.tolerations: Too many: 33: must have at most 32 items",
        ),
        (
            "an env value too long",
            |s| s["env"] = json!([{"name": "BIG", "value": "x".repeat(32 * 1024 + 1)}]),
            "spec.env[0].value: Too long: may not be more than 32768 bytes",
        ),
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
            "certificateDuration must be a duration from 10s to 87600h",
        ),
        (
            "certificateDuration past Go's range",
            |s| s["tls"] = json!({"certificateDuration": "99999999999999999999h"}),
            "certificateDuration must be a duration from 10s to 87600h (10 years)",
        ),
        (
            "certificateDuration of 1ns",
            |s| s["tls"] = json!({"certificateDuration": "1ns"}),
            "certificateDuration must be a duration from 10s to 87600h",
        ),
        (
            "caDuration over ten years",
            |s| s["tls"] = json!({"caDuration": "87601h"}),
            "caDuration must be a duration from 10s to 87600h",
        ),
        (
            "caDuration shorter than certificateDuration",
            |s| s["tls"] = json!({"certificateDuration": "20s", "caDuration": "10s"}),
            "tls.caDuration must be longer than tls.certificateDuration",
        ),
        (
            "an additional group repeating spec.group",
            |s| {
                s["additionalGroups"] =
                    json!([{"group": "my.custom.api", "versions": [{"name": "v2"}]}])
            },
            "additionalGroups must not repeat spec.group",
        ),
        (
            "an additional group named twice",
            |s| {
                s["additionalGroups"] = json!([
                    {"group": "b.custom.api", "versions": [{"name": "v1"}]},
                    {"group": "b.custom.api", "versions": [{"name": "v2"}]}
                ])
            },
            "additionalGroups must not name a group twice",
        ),
        (
            "more than 16 versions in all",
            |s| {
                let versions: Vec<Value> =
                    (1..=9).map(|v| json!({"name": format!("v{v}")})).collect();
                s["versions"] = json!(versions);
                s["additionalGroups"] = json!([{"group": "b.custom.api", "versions": versions}]);
            },
            "at most 16 versions in all",
        ),
        (
            "a ClusterRole name with capitals",
            |s| s["clusterRoles"] = json!(["Admin"]),
            "clusterRoles must name ClusterRoles",
        ),
        (
            "a ClusterRole named twice",
            |s| s["clusterRoles"] = json!(["view", "view"]),
            "clusterRoles must not repeat a name",
        ),
        (
            "caDuration shorter than the default certificateDuration",
            |s| s["tls"] = json!({"caDuration": "1h"}),
            "tls.caDuration must be longer than tls.certificateDuration",
        ),
        (
            "unregisterAfter of 0s",
            |s| s["registration"] = json!({"unregisterAfter": "0s"}),
            "unregisterAfter must be a duration from 1s to 87600h",
        ),
        (
            "image with a space",
            |s| s["image"] = json!("my image"),
            "image must not contain whitespace",
        ),
        (
            "env name with '='",
            |s| s["env"] = json!([{"name": "A=B", "value": "x"}]),
            "env names must be printable ASCII characters other than '='",
        ),
        (
            "duplicate env names",
            |s| s["env"] = json!([{"name": "A", "value": "x"}, {"name": "A", "value": "y"}]),
            "env names must be unique",
        ),
        (
            "env with value and valueFrom",
            |s| {
                s["env"] = json!([{"name": "A", "value": "x",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
            },
            "an env entry sets value or valueFrom, not both",
        ),
        (
            "env valueFrom without a source",
            |s| s["env"] = json!([{"name": "A", "valueFrom": {}}]),
            "env[].valueFrom must set exactly one of",
        ),
        (
            "nodeSelector value that is no label value",
            |s| s["nodeSelector"] = json!({"environment": "-production"}),
            "nodeSelector keys and values must be valid label keys and values",
        ),
        (
            "resources that are no quantity",
            |s| s["resources"] = json!({"requests": {"cpu": "lots"}}),
            "every request and limit must be a quantity such as 500m or 1Gi",
        ),
        (
            "request over its limit",
            |s| s["resources"] = json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
            "a request must not exceed its limit",
        ),
        (
            "serviceAccountName with capitals",
            |s| s["serviceAccountName"] = json!("Builder"),
            "serviceAccountName must be a lowercase DNS subdomain",
        ),
        (
            "secretName with an underscore",
            |s| s["tls"] = json!({"mode": "Secret", "secretName": "my_secret"}),
            "tls.secretName must be a lowercase DNS subdomain",
        ),
    ];
    let spec_cases = cases.into_iter().map(|(what, change, expected)| {
        let mut object = valid();
        change(&mut object["spec"]);
        (what.to_string(), object, expected)
    });
    let too_long =
        "metadata.name must be at most 63 characters: it is used in the names and labels";
    let shape =
        "metadata.name must consist of lowercase letters, digits and '-', start with a letter";
    let name_cases = [
        ("a".repeat(64), too_long),
        (format!("a{}", "-b".repeat(50)), too_long),
        ("a.b".to_string(), shape),
        ("1abc".to_string(), shape),
    ]
    .map(|(name, expected)| (format!("name {name}"), named(&name), expected));
    let failures = not_refused(&api, spec_cases.chain(name_cases)).await;
    assert!(
        failures.is_empty(),
        "not refused as expected:\n{}",
        failures.join("\n")
    );

    // The bounds themselves are accepted.
    let mut bounds = named(&format!("a{}", "b".repeat(62)));
    bounds["spec"]["tls"] = json!({"certificateDuration": "10s", "caDuration": "87600h"});
    bounds["spec"]["registration"] = json!({"unregisterAfter": "1s"});
    bounds["spec"]["resources"] = json!({"requests": {"cpu": "500m"}, "limits": {"cpu": 1}});
    bounds["spec"]["env"] = json!([{"name": "A B", "value": "x"}]);
    create(&api, bounds).await.unwrap();

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
