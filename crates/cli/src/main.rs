//! The `plugd` binary: glue between the command line and [`plugd_host`].
//!
//! `main` parses the arguments, runs one command and decides the exit status in
//! one place: 0 success, 1 the operation failed (or the plugin answered an error),
//! 2 bad usage (clap's own). An error is printed once, with its chain of causes;
//! with `--json` it is also one JSON document on stdout so scripts never have to
//! parse stderr. A closed stdout (`plugd list | head -1`) is not an error.

mod args;
mod bench;
mod commands;
mod doctor;
mod output;
mod plugin_test;
mod trust;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The sandbox re-executes this binary as its in-namespace helper; that mode
    // must take over before clap parses (the helper's argv is not ours) and
    // before any thread exists (unshare/setns need a single-threaded process).
    plugd_sandbox::run_helper_if_requested();
    let cli = args::Cli::parse();
    init_tracing();
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err, json);
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `PLUGD_LOG` (default: warnings and errors), so
/// that stdout stays clean for results and `--json`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLUGD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
