//! The Dockerfile passes hadolint, places a binary built outside it in an empty base, runs
//! non-root, and the chart's default image is the image it builds.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = testenv::hadolint::ensure().unwrap();
    let output = Command::new(hadolint)
        .arg(format!("{ROOT}/Dockerfile"))
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "hadolint findings:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn dockerfile_copies_a_prebuilt_binary_into_scratch_and_runs_non_root() {
    let dockerfile = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM scratch\n"));
    assert!(
        !dockerfile.contains("RUN "),
        "nothing runs in the image build"
    );
    assert!(
        dockerfile
            .contains("COPY ${TARGETARCH}/extension-server-operator /extension-server-operator")
    );
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/extension-server-operator"]"#));
    let values = std::fs::read_to_string(format!(
        "{ROOT}/charts/extension-server-operator/values.yaml"
    ))
    .unwrap();
    let deployment = std::fs::read_to_string(format!(
        "{ROOT}/charts/extension-server-operator/templates/deployment.yaml"
    ))
    .unwrap();
    // The chart runs the image's entrypoint with the `run` subcommand, as the image's CMD does.
    assert!(dockerfile.contains(r#"CMD ["run"]"#));
    assert!(deployment.contains("- run\n"));
    assert!(deployment.contains("runAsUser: 65532"));
    assert!(values.contains("repository: ghcr.io/aggregation-dev/extension-server-operator"));
}
