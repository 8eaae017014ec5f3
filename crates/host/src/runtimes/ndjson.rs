//! `ndjson` plugins: any executable speaking the envelope on stdin/stdout.

use plugd_runtime::{CallReport, PluginRef};

use super::RunContext;
use crate::confine::ProcessShape;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_ndjson(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        let manifest = cx.manifest;
        let plugin = PluginRef {
            id: manifest.id.clone(),
            version: manifest.version.to_string(),
            entry_point: manifest.entry_point.to_string(),
            language: manifest.language.map(|l| l.to_string()),
        };
        let spec =
            plugd_runtime::ndjson_launch(&plugin, cx.plugin_dir, cx.work_dir, self.interpreters())?;
        let opts = cx.call_options;
        let isolation = self.isolation_for(
            manifest,
            &ProcessShape {
                plugin_dir: cx.plugin_dir,
                work_dir: cx.work_dir,
                program: &spec.program,
                extra_paths: &[],
                timeout: opts.timeout + opts.health_timeout,
                http_server: false,
            },
        )?;
        Ok(plugd_runtime::call_once_in(&spec, &isolation, cx.call, opts).await)
    }
}
