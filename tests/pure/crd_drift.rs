//! The committed CRD in `crds/` is exactly what the Rust types generate.

use extension_server_operator::crd::ExtensionServer;
use kube::CustomResourceExt;

#[test]
fn committed_crd_matches_the_rust_types() {
    let generated = serde_yaml::to_string(&ExtensionServer::crd()).expect("serialize CRD");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/extensionservers.aggregation.dev.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("read committed CRD");
    assert!(
        committed == generated,
        "crds/ is stale: run `cargo run --bin crdgen > crds/extensionservers.aggregation.dev.yaml`"
    );
}
