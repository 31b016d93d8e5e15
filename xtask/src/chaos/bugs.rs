//! The bugs the fault suite found, each fixed with a regression test: a list kept in
//! `docs/fault-suite-findings.yaml`, read when the report is written.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
pub struct Bug {
    pub found_by: String,
    pub what: String,
    pub regression_test: String,
}

pub fn path() -> std::path::PathBuf {
    testenv::paths::workspace_root().join("docs/fault-suite-findings.yaml")
}

pub fn found() -> Result<Vec<Bug>> {
    let text = std::fs::read_to_string(path()).context("reading the fault suite's findings")?;
    serde_yaml::from_str(&text).context("parsing docs/fault-suite-findings.yaml")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_findings_file_parses_and_names_a_regression_test_for_each() {
        let bugs = super::found().expect("the findings");
        assert!(!bugs.is_empty());
        for bug in bugs {
            assert!(!bug.regression_test.is_empty(), "{bug:?}");
            assert!(
                [
                    "crash",
                    "faults",
                    "restarts",
                    "mutations",
                    "properties",
                    "churn"
                ]
                .contains(&bug.found_by.as_str()),
                "{bug:?}"
            );
        }
    }
}
