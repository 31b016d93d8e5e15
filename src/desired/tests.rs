use super::*;
use crate::crd::{ExtensionServer, TlsMode};
use crate::fixtures::{server, validated};
use crate::names::{
    CERT_HASH_ANNOTATION, FRONT_PROXY_HASH_ANNOTATION, OWNER_ANNOTATION, ServerNames,
};

/// The children of `server`, validated as the pipeline would.
fn desired(server: &ExtensionServer, tls: &TlsInput) -> Desired {
    super::desired(&validated(server), tls)
}

fn deployment(server: &ExtensionServer, tls: &TlsInput) -> Deployment {
    desired(server, tls).deployment.expect("a Deployment")
}

const BASIC: &str = r#"
apiVersion: aggregation.dev/v1alpha1
kind: ExtensionServer
metadata: {name: my-extension-server, namespace: default}
spec:
  group: my.custom.api
  versions: [{name: v1, groupPriorityMinimum: 1000, versionPriority: 15}]
  image: my-extension-server-image:latest
  port: 443
"#;

fn tls() -> TlsInput {
    TlsInput {
        managed_serving: Some(KeyedCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        }),
        ca_bundle: Some("BUNDLE".into()),
        cert_hash: "abc".into(),
        front_proxy_hash: Some("f00d".into()),
    }
}

#[test]
fn basic_example_builds_every_child() {
    let desired = desired(&server(BASIC), &tls());
    assert_eq!(
        desired.service_account.unwrap().metadata.name.as_deref(),
        Some("my-extension-server")
    );
    assert_eq!(
        desired
            .auth_delegator
            .as_ref()
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("aggregation.dev:default:my-extension-server:auth-delegator")
    );
    assert_eq!(
        desired.auth_delegator.as_ref().unwrap().role_ref.name,
        "system:auth-delegator"
    );
    assert_eq!(
        desired
            .auth_reader
            .as_ref()
            .unwrap()
            .metadata
            .namespace
            .as_deref(),
        Some("kube-system")
    );
    assert_eq!(
        desired.auth_reader.as_ref().unwrap().role_ref.name,
        "extension-apiserver-authentication-reader"
    );
    assert!(desired.pdb.is_none(), "no PDB for one replica");

    let service = desired.service.spec.unwrap();
    let port = &service.ports.unwrap()[0];
    assert_eq!((port.port, port.name.as_deref()), (443, Some("https")));

    let deployment = desired.deployment.unwrap().spec.unwrap();
    assert_eq!(deployment.replicas, Some(1));
    let template = deployment.template;
    let annotations = template.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations[CERT_HASH_ANNOTATION], "abc");
    assert_eq!(annotations[FRONT_PROXY_HASH_ANNOTATION], "f00d");
    let pod = template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 443);
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security
            .capabilities
            .as_ref()
            .unwrap()
            .drop
            .as_ref()
            .unwrap(),
        &vec!["ALL".to_string()]
    );
    assert_eq!(
        container.volume_mounts.as_ref().unwrap()[0].mount_path,
        "/var/run/extension-server/tls"
    );
    assert!(container.readiness_probe.is_some() && container.liveness_probe.is_some());
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("my-extension-server")
    );

    let [api_service] = desired.api_services.as_slice() else {
        panic!("one APIService expected");
    };
    assert_eq!(
        api_service.metadata.name.as_deref(),
        Some("v1.my.custom.api")
    );
    assert_eq!(
        api_service.metadata.annotations.as_ref().unwrap()[OWNER_ANNOTATION],
        "default/my-extension-server"
    );
    assert_eq!(api_service.spec.insecure_skip_tls_verify, Some(false));
    assert_eq!(api_service.spec.ca_bundle.as_ref().unwrap().0, b"BUNDLE");
    assert_eq!(api_service.spec.group_priority_minimum, 1000);
    assert_eq!(api_service.spec.version_priority, 15);
    let svc = api_service.spec.service.as_ref().unwrap();
    assert_eq!(
        (svc.name.as_str(), svc.port),
        ("my-extension-server", Some(443))
    );
}

#[test]
fn without_a_front_proxy_hash_the_template_carries_none() {
    let s = server(BASIC);
    let input = TlsInput {
        front_proxy_hash: None,
        ..tls()
    };
    let template = desired(&s, &input)
        .deployment
        .unwrap()
        .spec
        .unwrap()
        .template;
    let annotations = template.metadata.unwrap().annotations.unwrap();
    assert!(!annotations.contains_key(FRONT_PROXY_HASH_ANNOTATION));
}

#[test]
fn apiservice_serializes_insecure_false_explicitly() {
    let desired = desired(&server(BASIC), &tls());
    let json = serde_json::to_value(&desired.api_services[0]).unwrap();
    assert_eq!(
        json["spec"]["insecureSkipTLSVerify"],
        serde_json::json!(false)
    );
}

#[test]
fn insecure_mode_skips_verification_and_drops_the_bundle() {
    let mut server = server(BASIC);
    server.spec.tls.mode = TlsMode::Insecure;
    let desired = desired(&server, &tls());
    assert_eq!(
        desired.api_services[0].spec.insecure_skip_tls_verify,
        Some(true)
    );
    assert!(desired.api_services[0].spec.ca_bundle.is_none());
}

#[test]
fn production_example_gets_pdb_spread_and_node_selector() {
    let server = server(
        r#"
apiVersion: aggregation.dev/v1alpha1
kind: ExtensionServer
metadata: {name: prod, namespace: prod}
spec:
  group: my.custom.api
  versions: [{name: v1}, {name: v2beta1, versionPriority: 10}]
  image: img
  replicas: 3
  nodeSelector: {environment: production}
"#,
    );
    let desired = desired(&server, &tls());
    let pdb = desired.pdb.as_ref().and_then(|p| p.spec.as_ref());
    assert_eq!(
        pdb.and_then(|p| p.unhealthy_pod_eviction_policy.as_deref()),
        Some("AlwaysAllow"),
        "pods that never become ready do not block node drains"
    );
    let pod = desired
        .deployment
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(pod.node_selector.unwrap()["environment"], "production");
    assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
    let names: Vec<_> = desired
        .api_services
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["v1.my.custom.api", "v2beta1.my.custom.api"]);
    assert_eq!(desired.api_services[0].spec.group_priority_minimum, 1000);
}

#[test]
fn own_service_account_is_not_managed() {
    let mut server = server(BASIC);
    server.spec.service_account_name = Some("custom".into());
    let desired = desired(&server, &tls());
    assert!(desired.service_account.is_none());
    assert_eq!(
        desired
            .auth_delegator
            .as_ref()
            .unwrap()
            .subjects
            .as_ref()
            .unwrap()[0]
            .name,
        "custom"
    );
}

#[test]
fn namespaced_children_are_owned_by_the_server() {
    let desired = desired(&server(BASIC), &tls());
    let owner = &desired
        .deployment
        .as_ref()
        .unwrap()
        .metadata
        .owner_references
        .clone()
        .unwrap()[0];
    assert_eq!(owner.kind, "ExtensionServer");
    assert_eq!(owner.controller, Some(true));
}

/// Kubernetes' rule for names of RBAC objects: a path segment.
fn is_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}

#[test]
fn the_longest_accepted_name_gives_valid_children() {
    use crate::names::{
        MAX_SERVER_NAME_LEN, check_server_name, is_dns_name, is_dns1035_label,
        is_dns1123_subdomain, is_label_value,
    };
    let name = format!("a{}", "b".repeat(MAX_SERVER_NAME_LEN - 1));
    let namespace = format!("n{}", "s".repeat(62)); // the longest namespace
    check_server_name(&name).unwrap();
    let yaml = BASIC
        .replace("name: my-extension-server, namespace: default", "")
        .replace("port: 443", "port: 443\n  replicas: 2");
    let mut server = server(&yaml);
    server.metadata.name = Some(name.clone());
    server.metadata.namespace = Some(namespace.clone());
    let desired = desired(&server, &tls());

    let labels_valid = |meta: &ObjectMeta| {
        meta.labels.iter().flatten().all(|(key, value)| {
            let (prefix, key_name) = key.rsplit_once('/').unwrap_or(("", key));
            is_label_value(value)
                && (prefix.is_empty() || is_dns1123_subdomain(prefix))
                && !key_name.is_empty()
                && is_label_value(key_name)
        })
    };
    let service = &desired.service.metadata;
    assert!(is_dns1035_label(service.name.as_deref().unwrap()));
    let pdb = desired.pdb.as_ref().unwrap();
    let namespaced = [
        &desired.service_account.as_ref().unwrap().metadata,
        &desired.tls_secret.as_ref().unwrap().metadata,
        &desired.deployment.as_ref().unwrap().metadata,
        service,
        &pdb.metadata,
    ];
    for meta in namespaced {
        assert!(
            is_dns1123_subdomain(meta.name.as_deref().unwrap()),
            "{meta:?}"
        );
        assert!(labels_valid(meta), "{meta:?}");
    }
    let names = ServerNames::of(&server);
    for child in [names.ca_secret(), names.tls_secret()] {
        assert!(is_dns1123_subdomain(&child), "{child}");
    }
    for meta in [
        &desired.auth_delegator.as_ref().unwrap().metadata,
        &desired.auth_reader.as_ref().unwrap().metadata,
    ] {
        let binding = meta.name.as_deref().unwrap();
        assert!(
            binding.len() <= 253 && is_path_segment(binding),
            "{binding}"
        );
        assert!(labels_valid(meta), "{meta:?}");
    }
    for api_service in &desired.api_services {
        assert!(labels_valid(&api_service.metadata));
    }
    let template = desired.deployment.unwrap().spec.unwrap().template;
    assert!(labels_valid(template.metadata.as_ref().unwrap()));
    for dns_name in names.service_dns_names() {
        assert!(is_dns_name(&dns_name), "{dns_name}");
    }

    // One character more is refused.
    assert!(check_server_name(&format!("{name}b")).is_err());
}

#[test]
fn every_version_of_every_group_gets_an_apiservice_to_the_same_service() {
    let adapter = server(
        r#"
apiVersion: aggregation.dev/v1alpha1
kind: ExtensionServer
metadata: {name: adapter, namespace: monitoring}
spec:
  group: custom.metrics.k8s.io
  versions: [{name: v1beta2, versionPriority: 200}, {name: v1beta1, versionPriority: 100}]
  additionalGroups:
    - group: external.metrics.k8s.io
      versions: [{name: v1beta1}]
  image: adapter:latest
"#,
    );
    let desired = desired(&adapter, &tls());
    let registered: Vec<(String, String, String, i32)> = desired
        .api_services
        .iter()
        .map(|a| {
            let service = a.spec.service.clone().unwrap_or_default();
            (
                a.metadata.name.clone().unwrap_or_default(),
                a.spec.group.clone().unwrap_or_default(),
                format!("{}/{}", service.namespace, service.name),
                a.spec.version_priority,
            )
        })
        .collect();
    assert_eq!(
        registered,
        [
            (
                "v1beta2.custom.metrics.k8s.io",
                "custom.metrics.k8s.io",
                "monitoring/adapter",
                200
            ),
            (
                "v1beta1.custom.metrics.k8s.io",
                "custom.metrics.k8s.io",
                "monitoring/adapter",
                100
            ),
            (
                "v1beta1.external.metrics.k8s.io",
                "external.metrics.k8s.io",
                "monitoring/adapter",
                15
            ),
        ]
        .map(|(n, g, s, p)| (n.to_string(), g.to_string(), s.to_string(), p))
    );
    let requested: Vec<String> = validated(&adapter)
        .requested()
        .iter()
        .map(|n| format!("{n} in {}", n.group()))
        .collect();
    assert_eq!(
        requested,
        [
            "v1beta2.custom.metrics.k8s.io in custom.metrics.k8s.io",
            "v1beta1.custom.metrics.k8s.io in custom.metrics.k8s.io",
            "v1beta1.external.metrics.k8s.io in external.metrics.k8s.io",
        ]
    );
}

#[test]
fn the_certificate_is_also_where_k8s_io_apiserver_looks_by_default() {
    let deployment = deployment(&server(BASIC), &tls());
    let pod = deployment.spec.expect("spec").template.spec.expect("pod");
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/apiserver.local.config/certificates")
        .expect("mounted at the default cert dir");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("its volume");
    let secret = volume.secret.as_ref().expect("from the serving Secret");
    assert_eq!(
        secret.secret_name.as_deref(),
        Some("my-extension-server-tls")
    );
    let files: Vec<(&str, &str)> = secret
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(
        files,
        [("tls.crt", "apiserver.crt"), ("tls.key", "apiserver.key")]
    );
}

#[test]
fn a_pod_template_reaches_the_deployment() {
    let yaml = format!(
        "{BASIC}  podTemplate:\n    metadata: {{annotations: {{prometheus.io/scrape: 'true'}}}}\n    spec:\n      priorityClassName: system-cluster-critical\n      containers: [{{name: server, ports: [{{name: custom-metrics, containerPort: 8080}}]}}]\n"
    );
    let server = server(&yaml);
    let deployment = deployment(&server, &tls());
    let template = deployment.spec.expect("spec").template;
    let pod = template.spec.expect("pod");
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let ports: Vec<i32> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [443, 8080]);
    let annotations = template
        .metadata
        .and_then(|m| m.annotations)
        .expect("annotations");
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert!(
        annotations.contains_key(CERT_HASH_ANNOTATION),
        "the operator's stay"
    );
}

#[test]
fn each_granted_cluster_role_is_bound_to_the_servers_account() {
    let yaml = format!("{BASIC}  clusterRoles: ['system:metrics-server']\n");
    let server = server(&yaml);
    let bindings = desired(&server, &tls()).role_bindings;
    assert_eq!(bindings.len(), 1);
    let binding = &bindings[0];
    assert_eq!(
        binding.metadata.name.as_deref(),
        Some("aggregation.dev:default:my-extension-server:role:system:metrics-server")
    );
    assert_eq!(binding.role_ref.name, "system:metrics-server");
    let subject = &binding.subjects.as_ref().expect("subjects")[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("my-extension-server", Some("default"))
    );
    assert_eq!(
        binding
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION))
            .map(String::as_str),
        Some("default/my-extension-server")
    );
}

#[test]
fn child_labels_go_on_every_object_but_not_on_the_pod_template() {
    let labels = ChildLabels::parse(["team=platform"]).unwrap();
    let plain = desired(&server(BASIC), &tls());
    let labelled = plain.clone().with_child_labels(&labels);
    let has_team = |meta: &ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str)
            == Some("platform")
    };
    let metas: Vec<&ObjectMeta> = labelled
        .service_account
        .iter()
        .map(|o| &o.metadata)
        .chain(labelled.auth_delegator.iter().map(|o| &o.metadata))
        .chain(labelled.auth_reader.iter().map(|o| &o.metadata))
        .chain(labelled.tls_secret.iter().map(|o| &o.metadata))
        .chain(labelled.deployment.iter().map(|o| &o.metadata))
        .chain(std::iter::once(&labelled.service.metadata))
        .chain(labelled.api_services.iter().map(|o| &o.metadata))
        .collect();
    assert_eq!(metas.len(), 7);
    assert!(metas.into_iter().all(has_team));
    let template = |d: &Desired| {
        d.deployment
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .map(|s| s.template.clone())
    };
    assert_eq!(template(&labelled), template(&plain));
    assert_eq!(
        labelled
            .deployment
            .as_ref()
            .unwrap()
            .metadata
            .labels
            .as_ref()
            .unwrap()[crate::names::MANAGED_BY_LABEL],
        crate::names::MANAGED_BY
    );
}

#[test]
fn the_labels_carry_the_child_labels_and_nothing_of_the_key_material() {
    let names = ServerNames {
        name: "s".into(),
        namespace: "ns".into(),
    };
    let child = ChildLabels::parse(["team=platform"]).unwrap();
    let secret = ca_secret_labels(&names, &child);
    let labels = secret.metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "platform");
    assert_eq!(labels[crate::names::SERVER_LABEL], "s");
    assert!(secret.data.is_none() && secret.type_.is_none());
    let hash = |s: &Secret| crate::ssa::with_hash(s).unwrap().metadata.annotations;
    assert_ne!(
        hash(&secret),
        hash(&ca_secret_labels(&names, &ChildLabels::default())),
        "a label change changes the applied hash"
    );
}
