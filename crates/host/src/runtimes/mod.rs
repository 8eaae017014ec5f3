//! One module per runtime of DESIGN §4: how the host prepares a call of that
//! kind (launch spec, isolation, environment) and hands it to `plugd_runtime`.
//! Every runner returns a [`CallReport`], so recording and printing an
//! execution is the same whatever the runtime.

use std::path::Path;

use plugd_manifest::{Manifest, Runtime};
use plugd_runtime::protocol::ExecCall;
use plugd_runtime::{CallOptions, CallReport};

use crate::{Host, HostError};

mod command;
mod file;
mod http;
mod ndjson;
mod python_function;
mod stdio_batch;

/// Everything a runner needs for one call.
pub(crate) struct RunContext<'a> {
    /// The active version's manifest.
    pub manifest: &'a Manifest,
    /// The installed (read-only) plugin files.
    pub plugin_dir: &'a Path,
    /// The call's private, writable work directory (removed after the call).
    pub work_dir: &'a Path,
    /// The call, with its action resolved and its context filled in.
    pub call: &'a ExecCall,
    /// Timeouts and limits.
    pub call_options: &'a CallOptions,
    /// The history record's id (also the default trace id).
    pub execution_id: &'a str,
}

impl Host {
    /// Runs one call through the plugin's runtime.
    pub(crate) async fn run(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        match cx.manifest.runtime {
            Runtime::Ndjson => self.run_ndjson(cx).await,
            Runtime::PythonFunction => self.run_python_function(cx).await,
            Runtime::File => self.run_file(cx).await,
            Runtime::StdioBatch => self.run_stdio_batch(cx).await,
            Runtime::Http => self.run_http(cx).await,
            Runtime::Command => self.run_command(cx).await,
        }
    }
}
