//! Release B of the upgrade test: the next version, and a copy of the chart as that release
//! with one change to the desired children (a label from `childLabels`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};

use crate::cmd::run;

/// The label release B's chart adds to every child.
pub const LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "aggregated-apis");

/// The next release's version: the next patch, as a pre-release (`0.1.0` gives
/// `0.1.1-next.1`).
pub fn version(version: &str) -> Result<String> {
    let mut parts = version.splitn(3, '.');
    let (Some(major), Some(minor), Some(patch)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("{version} is not MAJOR.MINOR.PATCH");
    };
    let patch: u64 = patch.parse().context("the patch version")?;
    Ok(format!("{major}.{minor}.{}-next.1", patch + 1))
}

/// A copy of `source` (the chart) under `dir` as the next release: its version and
/// appVersion, and `childLabels` adding [`LABEL`] to every child.
pub fn chart(source: &Path, dir: &Path, version: &str) -> Result<PathBuf> {
    let chart = dir.join("next").join("extension-server-operator");
    std::fs::create_dir_all(dir.join("next"))?;
    run(Command::new("cp").arg("-r").arg(source).arg(&chart))?;
    let manifest = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&manifest)?;
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("version:") {
                format!("version: {version}")
            } else if line.starts_with("appVersion:") {
                format!("appVersion: \"{version}\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&manifest, text.join("\n") + "\n")?;
    let values = chart.join("values.yaml");
    let text = std::fs::read_to_string(&values)?;
    let (key, value) = LABEL;
    ensure!(
        text.contains("\nchildLabels: {}\n"),
        "the chart's values.yaml has no `childLabels: {{}}`"
    );
    std::fs::write(
        &values,
        text.replace(
            "\nchildLabels: {}\n",
            &format!("\nchildLabels:\n  {key}: {value}\n"),
        ),
    )?;
    Ok(chart)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_next_version_is_a_pre_release_of_the_next_patch() {
        assert_eq!(super::version("0.1.0").unwrap(), "0.1.1-next.1");
        assert!(super::version("1.2").is_err());
    }
}
