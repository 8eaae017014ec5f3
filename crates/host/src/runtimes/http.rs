//! `http` plugins (DESIGN §4): Stage7 container plugins, each call of `plugd
//! exec` starting the server in its own loopback-only network namespace,
//! waiting for it to be healthy, making the one call and stopping it.
//!
//! The start command is the manifest's `container.command`, else the `CMD` of
//! the package's Dockerfile; `python` there is the plugin's virtualenv (built at
//! install from its `requirements.txt`) when it has one.

use std::collections::BTreeMap;

use plugd_manifest::{EntryPoint, HttpSpec, Manifest};
use plugd_runtime::protocol::ExecCall;
use plugd_runtime::{
    CallReport, HttpError, HttpPlugin, HttpSettings, HttpTarget, InputSpec, WorkerStats,
};

use super::RunContext;
use crate::confine::ProcessShape;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_http(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        let manifest = cx.manifest;
        let label = format!("{}@{}", manifest.id, manifest.version);
        let inputs = inputs_of(manifest);
        // Wrong inputs are the caller's mistake: say so before reading the
        // package or starting anything.
        if let Err(err) = plugd_runtime::check_inputs(&label, &inputs, &cx.call.args) {
            return Ok(not_started(err));
        }
        let argv = match start_argv(manifest, cx.plugin_dir) {
            Ok(argv) => argv,
            Err(err) => return Ok(not_started(err)),
        };
        let version = manifest.version.to_string();
        let env = self.plugin_env(&manifest.id, &version);
        let mut interpreters = self.interpreters().clone();
        if let Some(env) = &env {
            interpreters.python = env.python.clone();
        }
        let spec_http = manifest.http.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let environment = manifest
            .container
            .as_ref()
            .map(|c| &c.environment)
            .unwrap_or(&empty);
        let spec = match plugd_runtime::http_launch(
            &HttpTarget {
                plugin_id: &manifest.id,
                version: &version,
                argv: &argv,
                plugin_dir: cx.plugin_dir,
                work_dir: cx.work_dir,
                port: spec_http.port,
                environment,
            },
            &interpreters,
        ) {
            Ok(spec) => spec,
            Err(err) => return Ok(not_started(err)),
        };
        let settings = settings_of(&spec_http, cx.call_options.limits.max_line);
        let plugin = HttpPlugin {
            plugin_id: manifest.id.clone(),
            version,
            settings,
            inputs,
            stop_grace: cx.call_options.shutdown_grace,
            spec,
        };
        let extra_paths = env.map(|e| e.paths).unwrap_or_default();
        let isolation = self.isolation_for(
            manifest,
            &ProcessShape {
                plugin_dir: cx.plugin_dir,
                work_dir: cx.work_dir,
                program: &plugin.spec.program,
                extra_paths: &extra_paths,
                // Start-up, the call and the stop must all fit in the sandbox's
                // own wall-clock limit.
                timeout: plugin.settings.startup_deadline()
                    + plugin.settings.timeout
                    + plugin.stop_grace,
                http_server: true,
            },
        )?;
        let call = with_trace_id(cx.call, cx.execution_id);
        Ok(plugd_runtime::http_call_once(&plugin, &isolation, &call).await)
    }
}

/// The call with a trace id in its context (the execution id when the caller
/// gave none), as Stage7 servers expect one.
fn with_trace_id(call: &ExecCall, execution_id: &str) -> ExecCall {
    let mut call = call.clone();
    let mut context = match call.context.take() {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    context
        .entry("trace_id")
        .or_insert_with(|| serde_json::Value::String(execution_id.to_string()));
    call.context = Some(serde_json::Value::Object(context));
    call
}

/// Stage7 `inputDefinitions` as the runtime checks them.
fn inputs_of(manifest: &Manifest) -> Vec<InputSpec> {
    manifest
        .input_definitions
        .iter()
        .map(|d| InputSpec {
            name: d.name.clone(),
            value_type: d.value_type.clone(),
            required: d.required,
        })
        .collect()
}

/// The manifest's health and call settings for the runtime.
fn settings_of(spec: &HttpSpec, max_line: usize) -> HttpSettings {
    HttpSettings {
        port: spec.port,
        health_path: spec.health_path.clone(),
        health_interval: spec.health_interval,
        health_timeout: spec.health_timeout,
        health_retries: spec.health_retries,
        endpoint: spec.execute_path.clone(),
        method: spec.method.clone(),
        timeout: spec.timeout,
        max_response_bytes: max_line,
    }
}

/// `container.command`, else the `CMD` of `container.dockerfile` (the entry
/// point of a Stage7 container manifest), else of `Dockerfile`.
fn start_argv(manifest: &Manifest, plugin_dir: &std::path::Path) -> Result<Vec<String>, HttpError> {
    if let Some(command) = manifest.container.as_ref().and_then(|c| c.command.clone()) {
        return Ok(command);
    }
    let dockerfile = manifest
        .container
        .as_ref()
        .and_then(|c| c.dockerfile.clone())
        .or_else(|| match &manifest.entry_point {
            EntryPoint::File(f) => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "Dockerfile".to_string());
    plugd_runtime::dockerfile_command(&plugin_dir.join(dockerfile))
}

/// A report for a call refused before any process started.
fn not_started(err: HttpError) -> CallReport {
    let id = uuid::Uuid::new_v4().to_string();
    CallReport {
        response: err.into_response(&id),
        health: None,
        duration: std::time::Duration::ZERO,
        stderr_tail: String::new(),
        stats: WorkerStats::default(),
        exit: None,
        accounting: None,
    }
}
