//! `stdio-batch` plugins (DESIGN §4): Stage7 Python plugins, `main.py` with the
//! plugin root as `argv[1]`, inputs on stdin and results on stdout. The input
//! checks, the stdin document and the result rules are
//! `plugd_runtime::stdio_batch`'s.

use plugd_runtime::stdio_batch::{InputDef, batch_launch, run_stdio_batch};
use plugd_runtime::{CallReport, OneshotOptions};

use super::RunContext;
use super::plugin_ref;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_stdio_batch(
        &self,
        cx: &RunContext<'_>,
    ) -> Result<CallReport, HostError> {
        let manifest = cx.manifest;
        let (interp, extra_paths) = self.interpreters_for(manifest);
        let spec = batch_launch(&plugin_ref(manifest), cx.plugin_dir, cx.work_dir, &interp)?;
        let opts = cx.call_options;
        let isolation = self.call_isolation(cx, &spec.program, &extra_paths, opts.timeout)?;
        let defs: Vec<InputDef<'_>> = manifest
            .input_definitions
            .iter()
            .map(|d| InputDef {
                name: &d.name,
                value_type: d.value_type.as_deref(),
                required: d.required,
            })
            .collect();
        let oneshot = OneshotOptions {
            timeout: opts.timeout,
            ..OneshotOptions::default()
        };
        Ok(run_stdio_batch(&spec, &isolation, cx.call, &defs, &oneshot).await)
    }
}
