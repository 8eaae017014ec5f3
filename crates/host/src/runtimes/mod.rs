//! One module per runtime of DESIGN §4: how the host prepares a call of that
//! kind (launch spec, isolation, environment) and hands it to `plugd_runtime`.
//! Every runner returns a [`CallReport`], so recording and printing an
//! execution is the same whatever the runtime.

use std::path::{Path, PathBuf};
use std::time::Duration;

use plugd_manifest::{Manifest, Runtime};
use plugd_runtime::protocol::ExecCall;
use plugd_runtime::{CallOptions, CallReport, Interpreters, Isolation, PluginRef};

use crate::confine::ProcessShape;
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

impl Host {
    /// The interpreters a plugin runs with: its own virtualenv's Python when it
    /// has one (built at install), else the host's; and the paths that
    /// environment needs to be visible in the sandbox.
    pub(crate) fn interpreters_for(&self, manifest: &Manifest) -> (Interpreters, Vec<PathBuf>) {
        let mut interp = self.interpreters().clone();
        match self.plugin_env(&manifest.id, &manifest.version.to_string()) {
            Some(env) => {
                interp.python = env.python;
                (interp, env.paths)
            }
            None => (interp, Vec::new()),
        }
    }

    /// The isolation of one call's process when it sees the installed plugin
    /// files (every runtime but `file`, which shows a per-call copy).
    fn call_isolation(
        &self,
        cx: &RunContext<'_>,
        program: &Path,
        extra_paths: &[PathBuf],
        timeout: Duration,
    ) -> Result<Isolation, HostError> {
        self.isolation_for(
            cx.manifest,
            &ProcessShape {
                plugin_dir: cx.plugin_dir,
                work_dir: cx.work_dir,
                program,
                extra_paths,
                timeout,
                http_server: false,
            },
        )
    }
}

/// What the runtime needs to know of the manifest to launch it.
pub(crate) fn plugin_ref(manifest: &Manifest) -> PluginRef {
    PluginRef {
        id: manifest.id.clone(),
        version: manifest.version.to_string(),
        entry_point: manifest.entry_point.to_string(),
        language: manifest.language.map(|l| l.to_string()),
    }
}
