//! `python-function` plugins: a Python `module:function` or `module:Class`
//! served over NDJSON by plugd's embedded shim (DESIGN §4).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plugd_manifest::{HandlerKind, Manifest};
use plugd_runtime::{CallReport, LaunchSpec, PluginRef};

use super::{RunContext, plugin_ref};
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_python_function(
        &self,
        cx: &RunContext<'_>,
    ) -> Result<CallReport, HostError> {
        let (spec, extra_paths) =
            self.python_function_spec(cx.manifest, cx.plugin_dir, cx.work_dir)?;
        let opts = cx.call_options;
        let timeout = opts.timeout + opts.health_timeout;
        let isolation = self.call_isolation(cx, &spec.program, &extra_paths, timeout)?;
        Ok(plugd_runtime::call_once_in(&spec, &isolation, cx.call, opts).await)
    }

    /// The launch of the shim serving a `python-function` plugin (with its
    /// virtualenv's Python when it has one), and the paths that environment
    /// needs to be visible.
    pub(crate) fn python_function_spec(
        &self,
        manifest: &Manifest,
        plugin_dir: &Path,
        work_dir: &Path,
    ) -> Result<(LaunchSpec, Vec<PathBuf>), HostError> {
        let plugin = PluginRef {
            language: Some("python".into()),
            ..plugin_ref(manifest)
        };
        let (interpreters, extra_paths) = self.interpreters_for(manifest);
        let spec = plugd_runtime::python_function_launch(
            &plugin,
            &handlers(manifest),
            &interpreters.python,
            plugin_dir,
            work_dir,
        )?;
        Ok((spec, extra_paths))
    }
}

/// Migraine hooks each name their own `module` + `function`: the event name
/// becomes an action routed to that handler. Declared actions go to the entry
/// point, which also tells the shim which action names exist.
fn handlers(manifest: &Manifest) -> BTreeMap<String, String> {
    let entry = manifest.entry_point.to_string();
    let declared = manifest
        .action_names()
        .map(|a| (a.to_string(), entry.clone()));
    declared
        .chain(manifest.hooks.iter().filter_map(|hook| {
            let h = hook.handler.as_ref()?;
            if h.kind != HandlerKind::Python {
                return None;
            }
            Some((
                hook.event.clone(),
                format!("{}:{}", h.module.as_deref()?, h.function.as_deref()?),
            ))
        }))
        .collect()
}
