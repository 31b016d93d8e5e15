//! KEDA under the operator (examples/keda.yaml) on a dedicated instance: keda-operator runs
//! as a Deployment and issues its own certificates (`kedaorg-certs`), its metrics server is an
//! ExtensionServer serving external.metrics.k8s.io with `tls.mode: Secret` on them, and a
//! ScaledObject with a `prometheus` trigger (examples/keda-scaledobject.yaml) scales the sample
//! workload through the aggregator.

use std::path::PathBuf;
use std::time::Duration;

use testenv::{manifest, upstream};

use crate::support::grants::GrantsFile;
use crate::support::{Harness, eventually};

const METRICS_SERVER: &str = "keda-metrics-apiserver";

fn example(file: &str) -> String {
    let path: PathBuf = testenv::paths::workspace_root().join("examples").join(file);
    std::fs::read_to_string(path).unwrap()
}

/// An example with the namespaces it names (`keda`, `monitoring`, `sample-workload`) replaced
/// by the test's, in its objects, its grants, its addresses and its queries.
fn moved(file: &str, namespace: &str) -> String {
    let mut text = example(file);
    for from in ["keda", "monitoring"] {
        text = text
            .replace(
                &format!("namespaces: [{from}]"),
                &format!("namespaces: [{namespace}]"),
            )
            .replace(&format!(".{from}.svc"), &format!(".{namespace}.svc"));
    }
    text.replace(
        r#"namespace="sample-workload""#,
        &format!(r#"namespace="{namespace}""#),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn keda_scales_the_workload_through_its_metrics_server_under_the_operator() {
    // Built before any timeout starts (about 11 minutes on 2 cores when cold).
    tokio::task::spawn_blocking(|| testenv::tools::upstream_server("keda"))
        .await
        .unwrap()
        .unwrap();
    let grants = GrantsFile::new("keda", "grants: []\n");
    let (_instance, h) = Harness::on_instance("keda", "keda", grants.settings()).await;
    let (ns, client) = (h.ns.name.clone(), h.ns.client.clone());
    grants.write(&moved("grants/examples.yaml", &ns));

    manifest::apply(&client, &upstream::keda_crds().unwrap(), &ns)
        .await
        .unwrap();
    for file in [
        "prometheus.yaml",
        "sample-workload.yaml",
        "keda.yaml",
        "keda-scaledobject.yaml",
    ] {
        let objects = manifest::parse(&moved(file, &ns)).unwrap();
        manifest::apply(&client, &objects, &ns).await.unwrap();
    }
    let _kubelet = testenv::kubelet::start(&h.ns.cluster, &[&ns])
        .await
        .unwrap();
    h.wait_condition(METRICS_SERVER, "Ready", "True", None)
        .await;

    // The trigger's value, through the aggregator, as KEDA's HPA asks for it.
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/s0-prometheus?labelSelector=scaledobject.keda.sh%2Fname%3Dsample-workload"
    );
    eventually(Duration::from_secs(120), &path, || async {
        let Ok(list) = upstream::get_raw(&client, &path).await else {
            return false;
        };
        list["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;

    // 8 requests per second at a threshold of 2: 4 pods.
    upstream::wait_scaled(&client, &ns, "sample-workload", 4)
        .await
        .unwrap();
}
