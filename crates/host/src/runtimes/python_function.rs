//! `python-function` plugins: a Python `module:function` or `module:Class`
//! served over NDJSON by plugd's embedded shim (DESIGN §4).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plugd_manifest::{HandlerKind, Manifest};
use plugd_runtime::{CallReport, LaunchSpec, PluginRef};

use super::RunContext;
use crate::confine::ProcessShape;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_python_function(
        &self,
        cx: &RunContext<'_>,
    ) -> Result<CallReport, HostError> {
        let (spec, extra_paths) =
            self.python_function_spec(cx.manifest, cx.plugin_dir, cx.work_dir)?;
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
            id: manifest.id.clone(),
            version: manifest.version.to_string(),
            entry_point: manifest.entry_point.to_string(),
            language: Some("python".into()),
        };
        let env = self.plugin_env(&manifest.id, &manifest.version.to_string());
        let python = match &env {
            Some(env) => env.python.clone(),
            None => self.interpreters().python.clone(),
        };
        let spec = plugd_runtime::python_function_launch(
            &plugin,
            &handlers(manifest),
            &python,
            plugin_dir,
            work_dir,
        )?;
        Ok((spec, env.map(|e| e.paths).unwrap_or_default()))
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
