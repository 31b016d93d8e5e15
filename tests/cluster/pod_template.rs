//! `spec.podTemplate` against the control plane: the API server judges the merged pod, and what
//! it refuses reaches status with its own words.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use crate::support::fixture::Server;
use crate::support::{Harness, condition, wait_for};

#[tokio::test]
async fn a_pod_template_reaches_the_pods_and_a_refused_one_reaches_status() {
    let h = Harness::start("es-podtemplate").await;
    let template = "{metadata: {annotations: {team: metrics}}, spec: {priorityClassName: system-cluster-critical, containers: [{name: server, ports: [{name: custom-metrics, containerPort: 8080}], volumeMounts: [{name: tmp, mountPath: /tmp}]}], volumes: [{name: tmp, emptyDir: {}}]}}";
    h.create(&Server::own_group("merged").pod_template(template))
        .await;
    let deployments: Api<Deployment> = h.ns.api();
    let deployment = wait_for(deployments, "merged", |d: Option<&Deployment>| d.is_some())
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template;
    let annotations = pod.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations["team"], "metrics");
    let spec = pod.spec.unwrap();
    assert_eq!(
        spec.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let container = &spec.containers[0];
    let ports: Vec<i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(
        ports,
        [8443, 8080],
        "the default https port, then the extra one"
    );
    let mounts: Vec<&str> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(mounts.contains(&"/tmp"), "{mounts:?}");
    assert!(
        mounts.contains(&"/apiserver.local.config/certificates"),
        "{mounts:?}"
    );
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(
        security.read_only_root_filesystem,
        Some(true),
        "restricted default kept"
    );

    // A volume name the API server refuses: status carries its message.
    let refused = "{spec: {volumes: [{name: Not_A_Name, emptyDir: {}}]}}";
    h.create(&Server::own_group("refused").pod_template(refused))
        .await;
    let s = h
        .wait_condition("refused", "Ready", "False", Some("DeploymentApplyFailed"))
        .await;
    let message = &condition(&s, "Ready").message;
    assert!(message.contains("Not_A_Name"), "{message}");
    assert!(message.contains("Invalid value"), "{message}");
}
