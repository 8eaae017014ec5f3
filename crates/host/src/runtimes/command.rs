//! `command` plugins (DESIGN §4): Migraine standalone executables, run as
//! `<entry point> <command> <argv…>` once per call. The command is the call's
//! action (the host already checked it against the manifest's `commands`);
//! argv is `args.argv` (`plugd exec ID COMMAND -- ARGS…`). The rules are
//! `plugd_runtime::command`'s.

use plugd_runtime::command::{command_launch, run_command};
use plugd_runtime::{CallReport, OneshotOptions};

use super::RunContext;
use super::plugin_ref;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_command(&self, cx: &RunContext<'_>) -> Result<CallReport, HostError> {
        let manifest = cx.manifest;
        let (interp, extra_paths) = self.interpreters_for(manifest);
        let spec = command_launch(&plugin_ref(manifest), cx.plugin_dir, cx.work_dir, &interp)?;
        let opts = cx.call_options;
        let isolation = self.call_isolation(cx, &spec.program, &extra_paths, opts.timeout)?;
        let oneshot = OneshotOptions {
            timeout: opts.timeout,
            ..OneshotOptions::default()
        };
        Ok(run_command(
            &spec,
            &isolation,
            cx.call.action.as_deref(),
            cx.call,
            &oneshot,
        )
        .await)
    }
}
