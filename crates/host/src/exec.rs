//! Executing an action of an installed plugin, and recording it in the history.

use std::time::Duration;

use plugd_manifest::Manifest;
use plugd_runtime::protocol::{ExecCall, Response, Status};
use plugd_runtime::{CallOptions, WorkerStats};
use plugd_store::ExecutionRecord;
use serde::Serialize;

use crate::{Host, HostError};

/// Options of [`Host::exec`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// How long the call may take (default: `OMNIFLOW_EXEC_TIMEOUT`, else 10 s).
    pub timeout: Option<Duration>,
    /// A trace id to pass to the plugin (default: the execution id).
    pub trace_id: Option<String>,
}

/// The result of one execution: the plugin's response (or the error response plugd
/// made for it) plus what was recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ExecOutcome {
    /// The id of the history record.
    pub execution_id: String,
    /// The plugin called.
    pub plugin_id: String,
    /// The version that answered.
    pub version: String,
    /// The action called.
    pub action: Option<String>,
    /// The plugin's runtime (`ndjson`, `command`, …), for callers that show
    /// results differently per runtime.
    pub runtime: String,
    /// The response envelope.
    pub response: Response,
    /// Wall-clock time of the whole call, start to exit.
    pub duration_us: u64,
    /// The end of what the plugin wrote to stderr.
    pub stderr_tail: String,
    /// Protocol violations seen on the plugin's stdout.
    pub protocol: WorkerStats,
}

impl ExecOutcome {
    /// Whether the plugin answered `ok`.
    pub fn is_ok(&self) -> bool {
        self.response.status == Status::Ok
    }
}

impl Host {
    /// Calls one action of the active version of an enabled plugin.
    ///
    /// A plugin that misbehaves (crashes, times out, writes garbage) is not an
    /// `Err`: it is an `Ok` outcome whose response has `status: error` and a code,
    /// and it is recorded. `Err` means the call could not be attempted.
    pub async fn exec(
        &self,
        id: &str,
        mut call: ExecCall,
        options: &ExecOptions,
    ) -> Result<ExecOutcome, HostError> {
        let plugin = self.require_plugin(id)?;
        if !plugin.enabled {
            return Err(HostError::Disabled { id: id.to_string() });
        }
        let version = plugin.active_version;
        let manifest = self.stored_manifest(id, &version)?;
        call.action = resolve_action(&manifest, call.action.take())?;
        let execution_id = uuid::Uuid::new_v4().to_string();
        let trace_id = options
            .trace_id
            .clone()
            .unwrap_or_else(|| execution_id.clone());
        call.context = Some(call_context(&manifest, &version, Some(&trace_id)));

        let plugin_dir = self.store.version_dir(id, &version);
        let work_dir = self.work_dir(&execution_id)?;
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut call_options = CallOptions::from_env();
        if let Some(timeout) = options.timeout {
            call_options.timeout = timeout;
        }
        let cx = crate::runtimes::RunContext {
            manifest: &manifest,
            plugin_dir: &plugin_dir,
            work_dir: work_dir.path(),
            call: &call,
            call_options: &call_options,
            execution_id: &execution_id,
        };
        let report = self.run(&cx).await?;

        let response = report.response;
        let accounting = report.accounting;
        let outcome = ExecOutcome {
            execution_id: execution_id.clone(),
            plugin_id: id.to_string(),
            version: version.clone(),
            action: call.action.clone(),
            runtime: manifest.runtime.to_string(),
            duration_us: u64::try_from(report.duration.as_micros()).unwrap_or(u64::MAX),
            stderr_tail: report.stderr_tail,
            protocol: report.stats,
            response,
        };
        self.store.record_execution(&ExecutionRecord {
            id: execution_id,
            plugin_id: id.to_string(),
            version,
            action: outcome.action.clone(),
            status: status_name(outcome.response.status).to_string(),
            code: outcome.response.code,
            started_at,
            duration_us: outcome.duration_us,
            error_message: if outcome.is_ok() {
                None
            } else {
                outcome.response.message.clone()
            },
            cpu_time_us: accounting
                .as_ref()
                .map(|a| u64::try_from(a.cpu_time.as_micros()).unwrap_or(u64::MAX)),
            peak_memory_bytes: accounting.as_ref().and_then(|a| a.peak_memory_bytes),
            end_reason: end_reason(&outcome.response, accounting.as_ref()),
        })?;
        Ok(outcome)
    }

    /// Recent executions, newest first, of one plugin or of all.
    pub fn history(
        &self,
        id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, HostError> {
        if let Some(id) = id {
            self.require_plugin(id)?;
        }
        Ok(self.store.executions(id, limit)?)
    }

    /// A private, writable directory for one execution, removed when dropped.
    pub(crate) fn work_dir(&self, execution_id: &str) -> Result<tempfile::TempDir, HostError> {
        let parent = self.home().join("work");
        std::fs::create_dir_all(&parent).map_err(|source| HostError::Io {
            context: format!("creating {}", parent.display()),
            source,
        })?;
        tempfile::Builder::new()
            .prefix(&format!("{execution_id}-"))
            .tempdir_in(&parent)
            .map_err(|source| HostError::Io {
                context: format!("creating a work directory in {}", parent.display()),
                source,
            })
    }
}

/// The `context` every call carries (DESIGN §2): plugin id, name and version,
/// the config with the manifest's defaults filled in, and the trace id.
pub(crate) fn call_context(
    manifest: &Manifest,
    version: &str,
    trace_id: Option<&str>,
) -> serde_json::Value {
    let mut context = serde_json::json!({
        "plugin_id": manifest.id,
        "plugin_name": manifest.name,
        "version": version,
        "config": manifest.config_defaults(),
    });
    if let Some(trace_id) = trace_id {
        context["trace_id"] = trace_id.into();
    }
    context
}

/// Picks the action to call: the one named, checked against the manifest, or the
/// only one the manifest declares.
pub(crate) fn resolve_action(
    manifest: &Manifest,
    asked: Option<String>,
) -> Result<Option<String>, HostError> {
    let known: Vec<String> = manifest.actions.iter().map(|a| a.name.clone()).collect();
    match asked {
        Some(action) if known.is_empty() || known.contains(&action) => Ok(Some(action)),
        Some(action) => Err(HostError::UnknownAction {
            id: manifest.id.clone(),
            action,
            known,
        }),
        None if known.len() == 1 => Ok(known.into_iter().next()),
        None if known.is_empty() => Ok(None),
        None => Err(HostError::ActionRequired {
            id: manifest.id.clone(),
            known,
        }),
    }
}

/// Why the plugin process ended, for the history: the sandbox's account when it
/// gave one, else what plugd itself did (a timeout kill).
fn end_reason(response: &Response, accounting: Option<&plugd_sandbox::Outcome>) -> Option<String> {
    match accounting {
        Some(a) => Some(a.reason.to_string()),
        None if response.code == Some(plugd_runtime::protocol::codes::TIMEOUT) => {
            Some("timeout".to_string())
        }
        None => None,
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Error => "error",
        Status::Busy => "busy",
    }
}
