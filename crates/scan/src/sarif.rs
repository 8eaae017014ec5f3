//! SARIF 2.1.0 output, so CI systems (GitHub code scanning, GitLab, Azure) can show findings.

use serde_json::{Value, json};

use crate::{RULES, ScanReport, Severity};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// Renders a report as one SARIF 2.1.0 log with a single run.
pub fn to_sarif(report: &ScanReport) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.description },
                "defaultConfiguration": { "level": level(r.severity) },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut loc = json!({ "artifactLocation": { "uri": f.file } });
            // SARIF regions are 1-based; whole-file findings carry no region at all.
            if f.line > 0 {
                let mut region = json!({ "startLine": f.line });
                if f.column > 0 {
                    region["startColumn"] = json!(f.column);
                }
                if !f.snippet.is_empty() {
                    region["snippet"] = json!({ "text": f.snippet });
                }
                loc["region"] = region;
            }
            let mut r = json!({
                "ruleId": f.rule_id,
                "level": level(f.severity),
                "message": { "text": f.message },
                "locations": [ { "physicalLocation": loc } ],
                "properties": { "severity": f.severity, "confidence": f.confidence },
            });
            if let Some(i) = RULES.iter().position(|x| x.id == f.rule_id) {
                r["ruleIndex"] = json!(i);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "plugd-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/plugd",
                "rules": rules,
            }},
            "results": results,
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": report.skipped.iter().map(|s| json!({
                    "level": "warning",
                    "message": { "text": format!("{}: {}", s.file, s.reason) },
                })).collect::<Vec<_>>(),
            }],
        }],
    })
}
