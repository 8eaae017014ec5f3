//! `plugd test`: the protocol conformance run against a plugin directory that is
//! not installed, started exactly as an installed one would be (same launch, same
//! sandbox policy).

use std::path::{Path, PathBuf};

use plugd_manifest::Runtime;
use plugd_runtime::conformance::{Check, ConformanceOptions, check_plugin};
use plugd_runtime::{CallOptions, LaunchSpec};
use serde::Serialize;

use crate::confine::ProcessShape;
use crate::{Host, HostError};

/// The result of `plugd test`.
#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    /// The plugin tested.
    pub plugin_id: String,
    /// Its version.
    pub version: String,
    /// Its runtime.
    pub runtime: String,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl ConformanceReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

impl Host {
    /// Runs the conformance checks against the plugin in `dir` (a plugin
    /// directory or its manifest file). Only runtimes that speak the NDJSON
    /// envelope (`ndjson`, `python-function`) can be checked.
    pub async fn conformance(&self, dir: &Path) -> Result<ConformanceReport, HostError> {
        let loaded = plugd_manifest::load(dir)?;
        let manifest = loaded.manifest;
        let plugin_dir = loaded
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf());
        let plugin_dir = std::fs::canonicalize(&plugin_dir).map_err(|source| HostError::Io {
            context: format!("resolving {}", plugin_dir.display()),
            source,
        })?;
        let work = self.work_dir("conformance")?;
        let call_options = CallOptions::from_env();
        let (spec, extra_paths): (LaunchSpec, Vec<PathBuf>) = match manifest.runtime {
            Runtime::Ndjson => self.ndjson_spec(&manifest, &plugin_dir, work.path())?,
            Runtime::PythonFunction => {
                self.python_function_spec(&manifest, &plugin_dir, work.path())?
            }
            other => {
                return Err(HostError::NotConformanceTestable {
                    id: manifest.id.clone(),
                    runtime: other.to_string(),
                });
            }
        };
        let options = ConformanceOptions {
            timeout: call_options.timeout,
            exit_grace: call_options.shutdown_grace,
            limits: call_options.limits,
        };
        let isolation = self.isolation_for(
            &manifest,
            &ProcessShape {
                plugin_dir: &plugin_dir,
                work_dir: work.path(),
                program: &spec.program,
                extra_paths: &extra_paths,
                // Every check gets the call timeout; the run as a whole gets
                // enough for all of them.
                timeout: call_options.timeout * 4,
                http_server: false,
            },
        )?;
        let label = spec.label();
        let mut launched = plugd_runtime::launch(&spec, &isolation)?;
        launched.wait_started(&label).await?;
        let actions: Vec<String> = manifest.action_names().map(str::to_string).collect();
        let checks = check_plugin(launched, &actions, &options).await;
        Ok(ConformanceReport {
            plugin_id: manifest.id.clone(),
            version: manifest.version.to_string(),
            runtime: manifest.runtime.to_string(),
            checks,
        })
    }
}
