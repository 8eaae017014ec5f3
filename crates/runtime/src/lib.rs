//! plugd-runtime: how plugd talks to plugins (DESIGN §2 and §4).
//!
//! This crate owns the one request/response envelope and everything between it and a
//! plugin process. It is layered the way nushell splits its plugin crates, so each
//! layer can be used and tested without the ones above it:
//!
//! * [`protocol`] — serde types only, no I/O: [`protocol::Request`],
//!   [`protocol::Response`], the error [`protocol::codes`], and
//!   [`protocol::ExecCall`], one call of one action whatever the runtime.
//! * [`codec`] — NDJSON framing with the `OMNIFLOW_PLUGIN_MAX_LINE` guard, enforced
//!   before parsing in both directions. Hand-written on tokio-util's `Decoder`
//!   because `LinesCodec` ends the stream on the first over-long line (see the
//!   module doc).
//! * [`Worker`] — one plugin process (or any pair of async streams) with many
//!   requests in flight, answers matched by id; bad output is counted in
//!   [`WorkerStats`] and quoted in the failing call's [`CallError`], never fatal to
//!   the host.
//! * [`Pool`] — warm [`Worker`]s for one plugin version, made by a host-supplied
//!   [`WorkerFactory`] (so the pool knows nothing of sandboxes): least-loaded
//!   pick, growth up to a maximum, bounded waiting, `busy` retries, timeouts that
//!   kill only the stuck worker, idle reaping, graceful shutdown; see its module.
//! * [`ndjson_launch`] → [`LaunchSpec`] → [`launch`] with an [`Isolation`] — what
//!   to run for an `ndjson` plugin, and the single place a plugin process is
//!   started, directly ([`command`](fn@command) / [`spawn`]) or through the sandbox.
//! * [`python_function_launch`] — the `python-function` runtime: plugd's own Python
//!   shim ([`SHIM_SOURCE`], embedded, run with `-c`) imports a Migraine function, a
//!   Wingman `ExecutionPlugin` or an OmniScope SDK class once and serves the same
//!   NDJSON envelope, so a [`Worker`] drives it like any `ndjson` plugin.
//! * [`call_once`] — `plugd exec`: spawn, `health`, `exec`, `shutdown`, with every
//!   failure turned into an error [`protocol::Response`] carrying the right code.
//! * [`oneshot`] → [`run_oneshot`] — one process per call (stdin written and
//!   closed, capped stdout, stderr tail, wall-clock kill), under the runtimes
//!   whose plugins are not servers: [`file`](mod@file) (OmniScope `input.json` /
//!   `output.json` in a per-call copy shown at `/plugin`), [`stdio_batch`]
//!   (Stage7 input pairs on stdin, result array on stdout) and [`command`](mod@command)
//!   (Migraine executables with argv). Each module turns its contract into one
//!   [`protocol::Response`] with pure, separately tested functions.
//!
//! Errors: [`RuntimeError`] when a plugin cannot be prepared or started (the call
//! was not attempted), [`CallError`] when a call on a running plugin fails (it
//! becomes an error response). Both say what went wrong, where, and what to do.
//!
//! Processes are killed by process group (each plugin leads its own), so whatever
//! a plugin starts dies with it.

#![deny(missing_docs)]

mod call;
pub mod codec;
pub mod command;
pub mod conformance;
mod error;
pub mod file;
mod http;
mod isolation;
mod launch;
pub mod oneshot;
mod pool;
pub mod protocol;
mod python_function;
mod settings;
pub mod stdio_batch;
mod worker;

pub use call::{CallReport, call_once, call_once_in};
pub use error::RuntimeError;
pub use http::{
    DockerCommand, Healthy, HttpError, HttpInstance, HttpPlugin, HttpSettings, HttpTarget,
    InputSpec, MAX_DOCKERFILE_BYTES, StopReport, check_inputs, dockerfile_command, http_call_once,
    http_launch, parse_dockerfile, request_body,
};
pub use isolation::{Isolation, Launched, accounting, explain_limit, launch};
pub use launch::{
    Interpreters, LaunchSpec, PluginRef, command, find_program, ndjson_launch, spawn,
};
pub use oneshot::{OneshotEnd, OneshotOptions, OneshotOutput, run_oneshot};
pub use pool::{
    ENV_POOL_IDLE_SECS, ENV_POOL_IN_FLIGHT, ENV_POOL_MAX, ENV_POOL_MIN, Pool, PoolConfig,
    PoolConfigError, PoolError, PoolStats, WorkerFactory,
};
pub use python_function::{SHIM_SOURCE, python_function_launch};
pub use settings::{
    CallOptions, DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_LINE, DEFAULT_SHUTDOWN_GRACE, ENV_EXEC_TIMEOUT,
    ENV_LOG_JSON, ENV_LOG_LEVEL, ENV_MAX_LINE, Limits, parse_exec_timeout,
};
pub use worker::{CallError, ExitReport, Noise, STDERR_TAIL_BYTES, Worker, WorkerStats};
