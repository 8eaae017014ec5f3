//! `ndjson` plugins: any executable speaking the envelope on stdin/stdout.

use std::path::{Path, PathBuf};

use plugd_manifest::Manifest;
use plugd_runtime::{CallReport, LaunchSpec};

use super::{RunContext, plugin_ref};
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_ndjson(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        let (spec, extra_paths) = self.ndjson_spec(cx.manifest, cx.plugin_dir, cx.work_dir)?;
        let opts = cx.call_options;
        let timeout = opts.timeout + opts.health_timeout;
        let isolation = self.call_isolation(cx, &spec.program, &extra_paths, timeout)?;
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
        let (interpreters, extra_paths) = self.interpreters_for(manifest);
        let spec = plugd_runtime::ndjson_launch(
            &plugin_ref(manifest),
            plugin_dir,
            work_dir,
            &interpreters,
        )?;
        Ok((spec, extra_paths))
    }
}
