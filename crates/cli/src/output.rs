//! How results and errors reach the reader: JSON documents for scripts, plain
//! tables for people, a spinner only on a terminal outside CI.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Table, presets};
use serde::Serialize;
use serde_json::json;

/// Writes one pretty JSON document and a newline to stdout.
pub fn emit_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Writes a line of text to stdout.
pub fn say(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// A borderless table with a header row: aligned for people, easy to grep.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table
}

/// Whether the error is stdout having been closed by the reader.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints an error with its causes on stderr, and with `--json` as a document on stdout.
pub fn print_error(err: &anyhow::Error, json: bool) {
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    let problems = manifest_problems(err);
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    for cause in &causes {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    for problem in &problems {
        let _ = writeln!(stderr, "  - {problem}");
    }
    if json {
        let problems: Vec<_> = problems
            .iter()
            .map(|p| json!({"path": p.path, "reason": p.reason}))
            .collect();
        let _ = emit_json(&json!({
            "error": { "message": err.to_string(), "causes": causes, "problems": problems }
        }));
    }
}

/// The manifest problems somewhere in an error's chain, so they can be listed one per line.
fn manifest_problems(err: &anyhow::Error) -> Vec<plugd_manifest::Problem> {
    err.chain()
        .find_map(
            |cause| match cause.downcast_ref::<plugd_manifest::LoadError>() {
                Some(plugd_manifest::LoadError::Invalid { problems, .. }) => Some(problems.clone()),
                _ => None,
            },
        )
        .unwrap_or_default()
}

/// A spinner on stderr when a person is watching, nothing otherwise.
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    /// Shows a spinner only when stderr is a terminal, outside CI, and not in `--json` mode.
    pub fn new(json: bool) -> Self {
        let visible = !json && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self(visible.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(80));
            bar
        }))
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl plugd_host::Progress for Spinner {
    fn step(&self, message: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.to_string());
        }
    }
}
