//! `file` plugins (DESIGN §4): OmniScope scripts that read `/plugin/input.json`
//! and write `/plugin/output.json`.
//!
//! Each call copies the installed files into the call's work dir and the
//! sandbox shows that copy at `/plugin` read-write, so the plugin can write
//! next to its code while the installed tree (read-only, digest-checked) never
//! changes; the copy goes away with the work dir. The input document, the
//! output rules and the error codes are `plugd_runtime::file`'s.

use plugd_runtime::file::{CALL_COPY_DIR, copy_plugin_tree, file_launch, run_file};
use plugd_runtime::{CallReport, OneshotOptions};

use super::{RunContext, plugin_ref};
use crate::confine::ProcessShape;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_file(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        let manifest = cx.manifest;
        let (interp, extra_paths) = self.interpreters_for(manifest);
        let work_dir = cx.work_dir.canonicalize().map_err(|source| HostError::Io {
            context: format!("resolving the work directory {}", cx.work_dir.display()),
            source,
        })?;
        let call_dir = work_dir.join(CALL_COPY_DIR);
        copy_plugin_tree(cx.plugin_dir, &call_dir).map_err(|source| HostError::Io {
            context: format!(
                "copying the files of plugin `{}` from {} into the call's private directory {}",
                manifest.id,
                cx.plugin_dir.display(),
                call_dir.display()
            ),
            source,
        })?;
        let spec = file_launch(&plugin_ref(manifest), &call_dir, &work_dir, &interp)?;
        let opts = cx.call_options;
        let isolation = self.isolation_for(
            manifest,
            &ProcessShape {
                plugin_dir: &call_dir,
                work_dir: &work_dir,
                program: &spec.program,
                extra_paths: &extra_paths,
                timeout: opts.timeout,
                http_server: false,
            },
        )?;
        let permissions: Vec<String> = manifest
            .permissions
            .iter()
            .map(|p| p.original.clone())
            .collect();
        let oneshot = OneshotOptions {
            timeout: opts.timeout,
            ..OneshotOptions::default()
        };
        Ok(run_file(
            &spec,
            &isolation,
            &call_dir,
            cx.call,
            &permissions,
            &oneshot,
        )
        .await?)
    }
}
