//! One ExtensionServer the operator cannot decode never stops it: stored under an older CRD
//! whose `podTemplate.spec` was free-form, nested deeper than serde_json reads, it is reported
//! and skipped while every other server is reconciled; the typed CRD prunes it on read.

use extension_server_operator::crd::ExtensionServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::support::chart::kubectl_stdin;
use crate::support::fixture::Server;
use crate::support::{self, Harness, wait_for};

/// The CRD as releases before the typed pod template published it.
fn free_form_crd() -> serde_json::Value {
    let mut crd = serde_json::to_value(ExtensionServer::crd()).unwrap();
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["podTemplate"]["properties"]["spec"];
    *spec = serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    crd
}

async fn apply_crd(h: &Harness, crd: &serde_json::Value) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(h.ns.client.clone());
    let name = crd["metadata"]["name"].as_str().unwrap();
    crds.patch(
        name,
        &PatchParams::apply("undecodable-test").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_the_operator_cannot_decode_stops_no_other_server() {
    let (_instance, mut h) =
        Harness::on_instance("undecodable", "undecodable", Default::default()).await;
    h.stop_operator().await;
    apply_crd(&h, &free_form_crd()).await;
    let depth = 140;
    let nested = format!("{}1{}", "{\"x\":".repeat(depth), "}".repeat(depth));
    let deep = format!(
        r#"{{"apiVersion":"aggregation.dev/v1alpha1","kind":"ExtensionServer","metadata":{{"name":"deep"}},"spec":{{"group":"deep.custom.api","versions":[{{"name":"v1"}}],"image":"img","podTemplate":{{"spec":{{"deep":{nested}}}}}}}}}"#
    );
    let out = kubectl_stdin(
        &h.ns,
        &["apply", "--server-side", "-n", &h.ns.name, "-f", "-"],
        deep.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A fresh operator lists the deep object first; it reports it and serves the others.
    h.start_operator().await;
    h.create(&Server::own_group("good")).await;
    h.wait_condition("good", "DeploymentAvailable", "True", None)
        .await;
    let deployments: Api<Deployment> = h.ns.api();
    assert!(deployments.get_opt("deep").await.unwrap().is_none());
    assert!(h.ctx.metrics.undecodable_count() > 0);
    support::eventually(
        std::time::Duration::from_secs(30),
        "the Undecodable Event",
        || async {
            let warnings = support::warnings(&h.ns, "Undecodable").await;
            !warnings.is_empty()
        },
    )
    .await;

    // The typed CRD prunes the unknown field when the object is read: it is served again.
    apply_crd(&h, &serde_json::to_value(ExtensionServer::crd()).unwrap()).await;
    h.stop_operator().await;
    h.start_operator().await;
    wait_for(deployments, "deep", |d: Option<&Deployment>| d.is_some()).await;
    // Its managedFields still nest too deep for a typed client: kubectl deletes it.
    let deleted = h.ns.kubectl(&[
        "delete",
        "extensionserver",
        "deep",
        "-n",
        &h.ns.name,
        "--timeout=60s",
    ]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    h.delete_and_wait("good").await;
}
