//! `plugd test DIR`: the protocol conformance table.

use std::path::Path;
use std::process::ExitCode;

use plugd_host::Host;

use crate::output::{emit_json, say, table};

/// Runs the checks; exit 0 when all pass, 1 otherwise.
pub fn plugin_test(host: &Host, dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(host.conformance(dir))?;
    let passed = report.passed();
    if json {
        emit_json(&serde_json::json!({
            "plugin_id": report.plugin_id,
            "version": report.version,
            "runtime": report.runtime,
            "passed": passed,
            "checks": report.checks,
        }))?;
    } else {
        say(table(
            ["CHECK", "RESULT", "DETAIL"],
            report.checks.iter().map(|c| {
                [
                    c.name.clone(),
                    match (c.passed, c.skipped) {
                        (_, true) => "n/a",
                        (true, false) => "pass",
                        (false, false) => "FAIL",
                    }
                    .to_string(),
                    c.detail.clone(),
                ]
            }),
        ))?;
        let failed = report.checks.iter().filter(|c| !c.passed).count();
        say(format!(
            "{}@{} ({}): {} of {} checks passed{}",
            report.plugin_id,
            report.version,
            report.runtime,
            report.checks.len() - failed,
            report.checks.len(),
            if failed == 0 {
                ""
            } else {
                " — see DESIGN.md §2 for the protocol"
            }
        ))?;
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
