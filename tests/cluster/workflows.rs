//! The GitHub workflows pass actionlint (built from its pinned module), and call no
//! `cargo xtask` command but the one the tests run: `cargo xtask test`, which is also what
//! `.ci/run` runs.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn workflows() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(ROOT).join(".github/workflows");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_workflows_pass_actionlint() {
    let actionlint = testenv::tools::on_demand_tool("actionlint").unwrap();
    let files = workflows();
    assert!(files.len() >= 2, "{files:?}");
    let output = Command::new(actionlint)
        .arg("-no-color")
        .args(&files)
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "actionlint findings:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_workflows_call_only_the_tested_xtask_command() {
    for file in workflows() {
        let text = std::fs::read_to_string(&file).unwrap();
        let commands = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.find("cargo xtask").map(|i| l[i..].trim()));
        for command in commands {
            assert_eq!(command, "cargo xtask test", "{}", file.display());
        }
    }
    let ci = std::fs::read_to_string(format!("{ROOT}/.github/workflows/ci.yml")).unwrap();
    assert!(ci.contains("- run: cargo xtask test\n"));
    let ci_run = std::fs::read_to_string(format!("{ROOT}/.ci/run")).unwrap();
    assert!(ci_run.contains("cargo xtask test"));
}
