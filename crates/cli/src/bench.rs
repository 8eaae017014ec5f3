//! `plugd bench`: latency and throughput of warm calls to an installed plugin,
//! through the same pool (and sandbox) a long-running host uses.

use std::process::ExitCode;

use anyhow::{Context, bail};
use plugd_host::Host;
use plugd_runtime::protocol::ExecCall;
use serde_json::{Map, Value};

use crate::args::BenchArgs;
use crate::commands::read_json_arg;
use crate::output::{emit_json, say};

/// Runs the benchmark and prints p50, p99 and calls/s.
pub fn bench(host: &Host, args: BenchArgs, json: bool) -> anyhow::Result<ExitCode> {
    if args.calls == 0 {
        bail!("--calls must be at least 1");
    }
    let call_args = match &args.args {
        Some(text) => match read_json_arg("--args", text)? {
            Value::Object(map) => map,
            _ => bail!("--args must be a JSON object"),
        },
        None => Map::new(),
    };
    let call = ExecCall::new(args.action.clone().unwrap_or_default(), call_args);
    let call = ExecCall {
        action: args.action.clone(),
        ..call
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(host.bench(&args.id, call, args.calls, args.concurrency))?;
    if json {
        emit_json(&report)?;
    } else {
        say(format!(
            "{}@{} {}: {} calls, concurrency {}, {} workers",
            report.plugin_id,
            report.version,
            report.action.as_deref().unwrap_or("(no action)"),
            report.calls,
            report.concurrency,
            report.workers
        ))?;
        say(format!(
            "  p50 {:.1} µs   p99 {:.1} µs   min {:.1} µs   {:.0} calls/s",
            report.p50_us, report.p99_us, report.min_us, report.calls_per_sec
        ))?;
        if report.errors > 0 {
            say(format!(
                "  {} calls failed; first: {}",
                report.errors,
                report.first_error.as_deref().unwrap_or("?")
            ))?;
        }
    }
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
