//! The chaos report: the parts' results gathered under the fields the suite promises.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::bugs;

fn part(parts: &Path, name: &str) -> Value {
    std::fs::read(parts.join(format!("{name}.json")))
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or(Value::Null)
}

fn number(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or(0)
}

/// Builds the report from `target/chaos/parts/*.json`.
pub fn gather(parts: &Path, took: Duration, passed: bool) -> Result<Value> {
    let crash = part(parts, "crash");
    let faults = part(parts, "faults");
    let restarts = part(parts, "restarts");
    let mutations = part(parts, "mutations");
    let churn = part(parts, "churn");
    let property_cases: u64 = ["properties-properties", "properties-properties_status"]
        .iter()
        .map(|name| number(&part(parts, name), "property_cases"))
        .sum();
    let bugs: Vec<Value> = bugs::found()?
        .iter()
        .map(|b| json!({"found_by": b.found_by, "what": b.what, "regression_test": b.regression_test}))
        .collect();
    let mut report = Map::new();
    report.insert("passed".into(), passed.into());
    report.insert("seconds".into(), took.as_secs().into());
    report.insert("crash_points".into(), crash["crash_points"].clone());
    report.insert(
        "crash_points_converged".into(),
        crash["crash_points_converged"].clone(),
    );
    report.insert(
        "ca_reminted".into(),
        (number(&crash, "ca_reminted") + number(&faults, "ca_reminted")).into(),
    );
    report.insert("fault_rates".into(), faults["fault_rates"].clone());
    report.insert(
        "restarts_survived".into(),
        restarts["restarts_survived"].clone(),
    );
    for field in [
        "mutations",
        "mutations_converged",
        "mutations_reported",
        "invalid_specs",
        "invalid_specs_refused",
        "invalid_specs_reported",
    ] {
        report.insert(field.into(), mutations[field].clone());
    }
    report.insert("property_cases".into(), property_cases.into());
    report.insert("panics".into(), mutations["panics"].clone());
    report.insert("churn_cycles".into(), churn["churn_cycles"].clone());
    report.insert("orphans".into(), churn["orphans"].clone());
    report.insert("bugs_found".into(), bugs.len().into());
    report.insert("bugs".into(), bugs.into());
    report.insert(
        "parts".into(),
        json!({"crash": crash, "faults": faults, "restarts": restarts,
               "mutations": mutations, "churn": churn}),
    );
    Ok(Value::Object(report))
}

pub fn write(dir: &Path, report: &Value) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(report)?)?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    Ok(())
}

fn markdown(r: &Value) -> String {
    let mut out = String::from("# Fault suite report\n\n| check | result |\n|---|---|\n");
    let mut row = |check: &str, value: String| out.push_str(&format!("| {check} | {value} |\n"));
    row("passed", r["passed"].to_string());
    row(
        "crash points converged",
        format!("{} of {}", r["crash_points_converged"], r["crash_points"]),
    );
    row("CAs re-minted", r["ca_reminted"].to_string());
    for (rate, outcome) in r["fault_rates"].as_object().into_iter().flatten() {
        row(
            &format!("fault rate {rate}"),
            format!(
                "{} of {} servers converged, {} writes (bound {}), {} faults injected",
                outcome["converged"],
                outcome["servers"],
                outcome["writes"],
                outcome["write_bound"],
                outcome["faults_injected"]
            ),
        );
    }
    row(
        "control-plane restarts survived",
        r["restarts_survived"].to_string(),
    );
    row(
        "spec mutations",
        format!(
            "{} ({} converged, {} reported)",
            r["mutations"], r["mutations_converged"], r["mutations_reported"]
        ),
    );
    row(
        "invalid specs",
        format!(
            "{} ({} refused by admission, {} reported in status)",
            r["invalid_specs"], r["invalid_specs_refused"], r["invalid_specs_reported"]
        ),
    );
    row("property cases", r["property_cases"].to_string());
    row("panics", r["panics"].to_string());
    row(
        "churn cycles",
        format!("{} ({} orphans)", r["churn_cycles"], r["orphans"]),
    );
    row("bugs found", r["bugs_found"].to_string());
    out.push_str("\n## Bugs found and fixed\n\n");
    for bug in r["bugs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "- ({}) {}; regression test: {}\n",
            bug["found_by"].as_str().unwrap_or_default(),
            bug["what"].as_str().unwrap_or_default(),
            bug["regression_test"].as_str().unwrap_or_default()
        ));
    }
    out
}

/// The promises: every crash point converged, nothing re-minted, at least 300 mutations and
/// 1,000,000 property cases, 100 churn cycles without orphans, no panic.
pub fn check(r: &Value) -> Result<()> {
    let n = |field: &str| r[field].as_u64().unwrap_or(0);
    let mut broken = Vec::new();
    if n("crash_points") == 0 || n("crash_points") != n("crash_points_converged") {
        broken.push("crash points");
    }
    if n("ca_reminted") != 0 {
        broken.push("CA re-minted");
    }
    if n("mutations") < 300 || n("mutations_converged") + n("mutations_reported") != n("mutations")
    {
        broken.push("mutations");
    }
    if n("property_cases") < 1_000_000 {
        broken.push("property cases");
    }
    if n("churn_cycles") < 100 || n("orphans") != 0 {
        broken.push("churn");
    }
    if n("panics") != 0 {
        broken.push("panics");
    }
    if n("restarts_survived") < 2 {
        broken.push("restarts");
    }
    if !broken.is_empty() {
        bail!(
            "the chaos report misses its promises: {}",
            broken.join(", ")
        );
    }
    Ok(())
}
