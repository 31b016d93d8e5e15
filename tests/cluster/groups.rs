//! Several groups from one server, against the control plane: every (group, version) is an
//! APIService to the same Service, all answer through the aggregator, and deleting the server
//! removes all of them before anything else.

use extension_server_operator::apiservice::APIService;
use extension_server_operator::crd::ExtensionServer;
use kube::api::Api;

use crate::support::fixture::Server;
use crate::support::{Harness, wait_for};

#[tokio::test]
async fn one_server_registers_three_apiservices_across_two_groups() {
    let h = Harness::start("es-groups").await;
    let ns = h.ns.name.clone();
    let (a, b) = (format!("a.{ns}.custom.api"), format!("b.{ns}.custom.api"));
    let server = Server::new("adapter")
        .group(&a)
        .versions(&["v2", "v1"])
        .extra(&format!(
            "{{additionalGroups: [{{group: {b}, versions: [{{name: v1}}]}}]}}"
        ))
        .port(443)
        .args(&[
            "--secure-port=443".to_string(),
            "--tls-cert-file=/var/run/extension-server/tls/tls.crt".to_string(),
            "--tls-private-key-file=/var/run/extension-server/tls/tls.key".to_string(),
            format!("--group={a},{b}"),
            "--versions=v2,v1".to_string(),
        ]);
    h.create(&server).await;
    let _pod = testenv::runtime::start(&h.ns.cluster, &ns, "adapter")
        .await
        .unwrap();
    let ready = h.wait_condition("adapter", "Ready", "True", None).await;
    let names = [format!("v2.{a}"), format!("v1.{a}"), format!("v1.{b}")];
    let listed: Vec<&str> = ready
        .status
        .as_ref()
        .unwrap()
        .api_services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(listed, names, "status lists every APIService");
    let apis: Api<APIService> = Api::all(h.ns.client.clone());
    for name in &names {
        let live = apis.get(name).await.unwrap();
        let service = live.spec.service.clone().unwrap();
        assert_eq!(
            (service.namespace.as_str(), service.name.as_str()),
            (ns.as_str(), "adapter")
        );
        assert_eq!(
            live.available().map(|c| c.status.as_str()),
            Some("True"),
            "{name}"
        );
    }
    for group_version in [format!("{a}/v2"), format!("{b}/v1")] {
        let out =
            h.ns.kubectl(&["get", "--raw", &format!("/apis/{group_version}")]);
        assert!(out.status.success(), "{group_version}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&group_version));
    }

    // Deleted: the finalizer removes all three before the server goes.
    let servers = h.servers();
    servers
        .delete("adapter", &Default::default())
        .await
        .unwrap();
    wait_for(servers, "adapter", |s: Option<&ExtensionServer>| {
        s.is_none()
    })
    .await;
    for name in &names {
        assert!(
            apis.get_opt(name).await.unwrap().is_none(),
            "{name} left behind"
        );
    }
}
