//! One version and one license across the release: the crate, the chart's `version` and
//! `appVersion` (the image tag the chart deploys by default), the install lines of the READMEs,
//! the changelog, and the image's license label.

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap()
}

/// The value of `key: value` (or `key = "value"`) on the first line that starts with `key`.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?.trim_start();
            let value = rest.strip_prefix(':').or_else(|| rest.strip_prefix('='))?;
            Some(value.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn crate_chart_image_and_changelog_agree_on_the_version() {
    let version = env!("CARGO_PKG_VERSION");
    let chart = read("charts/extension-server-operator/Chart.yaml");
    assert_eq!(field(&chart, "version"), version, "Chart.yaml version");
    assert_eq!(
        field(&chart, "appVersion"),
        version,
        "Chart.yaml appVersion"
    );
    // The chart deploys appVersion unless a tag is set, and `cargo xtask image` tags the image
    // with the crate's version.
    let values = read("charts/extension-server-operator/values.yaml");
    assert!(values.contains("  tag: \"\""), "values.yaml pins image.tag");
    // The install lines name the current release.
    for readme in ["README.md", "charts/extension-server-operator/README.md"] {
        let text = read(readme);
        let install = text
            .lines()
            .find(|l| l.starts_with("helm install eso oci://"))
            .unwrap_or_else(|| panic!("{readme} has no `helm install eso oci://` line"));
        assert!(
            install.contains(&format!("--version {version}")),
            "{readme}: {install}"
        );
    }
    let changelog = read("CHANGELOG.md");
    assert!(changelog.contains("## [Unreleased]"));
    assert!(
        changelog.contains(&format!("## [{version}]")),
        "CHANGELOG.md has no section for {version}"
    );
}

#[test]
fn the_license_file_cargo_and_the_image_label_agree() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    let license = read("LICENSE");
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains(r#"org.opencontainers.image.licenses="Apache-2.0""#),
        "the image's license label"
    );
}
