//! Prints the ExtensionServer CRD as YAML.
use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    print!(
        "{}",
        serde_yaml::to_string(&extension_server_operator::crd::ExtensionServer::crd())?
    );
    Ok(())
}
