//! `ndjson` plugins: any executable speaking the envelope on stdin/stdout.

use std::path::{Path, PathBuf};

use plugd_manifest::Manifest;
use plugd_runtime::{CallReport, LaunchSpec, PluginRef};

use super::RunContext;
use crate::confine::ProcessShape;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_ndjson(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        let (spec, extra_paths) = self.ndjson_spec(cx.manifest, cx.plugin_dir, cx.work_dir)?;
        let opts = cx.call_options;
        let isolation = self.isolation_for(
            cx.manifest,
            &ProcessShape {
                plugin_dir: cx.plugin_dir,
                work_dir: cx.work_dir,
                program: &spec.program,
                extra_paths: &extra_paths,
                timeout: opts.timeout + opts.health_timeout,
                http_server: false,
            },
        )?;
        Ok(plugd_runtime::call_once_in(&spec, &isolation, cx.call, opts).await)
    }

    /// The launch of an `ndjson` plugin, with its virtualenv's Python when it
    /// has one, and the paths that environment needs to be visible.
    pub(crate) fn ndjson_spec(
        &self,
        manifest: &Manifest,
        plugin_dir: &Path,
        work_dir: &Path,
    ) -> Result<(LaunchSpec, Vec<PathBuf>), HostError> {
        let plugin = PluginRef {
            id: manifest.id.clone(),
            version: manifest.version.to_string(),
            entry_point: manifest.entry_point.to_string(),
            language: manifest.language.map(|l| l.to_string()),
        };
        let env = self.plugin_env(&manifest.id, &manifest.version.to_string());
        let spec = match &env {
            Some(env) => {
                let mut interpreters = self.interpreters().clone();
                interpreters.python = env.python.clone();
                plugd_runtime::ndjson_launch(&plugin, plugin_dir, work_dir, &interpreters)?
            }
            None => {
                plugd_runtime::ndjson_launch(&plugin, plugin_dir, work_dir, self.interpreters())?
            }
        };
        Ok((spec, env.map(|e| e.paths).unwrap_or_default()))
    }
}
