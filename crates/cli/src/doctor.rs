//! `plugd doctor`: what this machine gives plugd — each isolation layer of the
//! sandbox, active or not and why, and the interpreters plugins can use.

use std::process::ExitCode;

use plugd_host::Host;
use plugd_runtime::Interpreters;
use serde_json::json;

use crate::output::{emit_json, say, table};

/// Prints the report. Missing layers are not an error (plugd degrades and says
/// so at run time), so this exits 0 unless the sandbox cannot run at all.
pub fn doctor(host: &Host, json: bool) -> anyhow::Result<ExitCode> {
    let layers = host.isolation_layers();
    let interpreters = Interpreters::discover();
    let found = |p: &std::path::Path| Interpreters::is_found(p).then(|| p.display().to_string());
    let interps = [
        ("python", found(&interpreters.python)),
        ("Rscript", found(&interpreters.rscript)),
        ("node", found(&interpreters.node)),
        ("bash", found(&interpreters.bash)),
    ];
    if json {
        let (sandbox, layer_list) = match &layers {
            Ok(l) => (json!({"available": true}), json!(l)),
            Err(e) => (
                json!({"available": false, "reason": e.to_string()}),
                json!([]),
            ),
        };
        emit_json(&json!({
            "home": host.home(),
            "sandbox": sandbox,
            "layers": layer_list,
            "interpreters": interps.iter().map(|(n, p)| json!({"name": n, "path": p})).collect::<Vec<_>>(),
        }))?;
    } else {
        match &layers {
            Ok(layers) => {
                let active = layers.iter().filter(|l| l.active).count();
                say(format!(
                    "sandbox: {active} of {} isolation layers active",
                    layers.len()
                ))?;
                say(table(
                    ["LAYER", "STATE", "DETAIL"],
                    layers.iter().map(|l| {
                        [
                            l.layer.to_string(),
                            if l.active { "active" } else { "unavailable" }.to_string(),
                            l.detail.clone(),
                        ]
                    }),
                ))?;
            }
            Err(e) => say(format!("sandbox: NOT AVAILABLE — {e}"))?,
        }
        say("")?;
        say(table(
            ["INTERPRETER", "PATH"],
            interps.iter().map(|(n, p)| {
                [
                    n.to_string(),
                    p.clone()
                        .unwrap_or_else(|| "not found (plugins that need it will not run)".into()),
                ]
            }),
        ))?;
    }
    Ok(if layers.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
