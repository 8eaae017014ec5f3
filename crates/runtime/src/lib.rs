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
//! * [`ndjson_launch`] → [`LaunchSpec`] → [`command`] / [`spawn`] — what to run for an
//!   `ndjson` plugin, and the single place a plugin process is started (the sandbox
//!   will wrap it).
//! * [`call_once`] — `plugd exec`: spawn, `health`, `exec`, `shutdown`, with every
//!   failure turned into an error [`protocol::Response`] carrying the right code.
//!
//! Errors: [`RuntimeError`] when a plugin cannot be prepared or started (the call
//! was not attempted), [`CallError`] when a call on a running plugin fails (it
//! becomes an error response). Both say what went wrong, where, and what to do.
//!
//! Processes are killed by process group (each plugin leads its own), so whatever
//! a plugin starts dies with it. Warm worker pools and the runtimes other than
//! `ndjson` come in later steps, on top of [`Worker`].

#![deny(missing_docs)]

mod call;
pub mod codec;
mod error;
mod isolation;
mod launch;
pub mod protocol;
mod settings;
mod worker;

pub use call::{CallReport, call_once, call_once_in};
pub use error::RuntimeError;
pub use isolation::{Isolation, Launched, accounting, explain_limit, launch};
pub use launch::{
    Interpreters, LaunchSpec, PluginRef, command, find_program, ndjson_launch, spawn,
};
pub use settings::{
    CallOptions, DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_LINE, DEFAULT_SHUTDOWN_GRACE, ENV_EXEC_TIMEOUT,
    ENV_LOG_JSON, ENV_LOG_LEVEL, ENV_MAX_LINE, Limits, parse_exec_timeout,
};
pub use worker::{CallError, ExitReport, Noise, STDERR_TAIL_BYTES, Worker, WorkerStats};
