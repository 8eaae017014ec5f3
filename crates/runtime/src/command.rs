//! The `command` runtime (DESIGN §4): Migraine standalone plugins, one
//! process per call.
//!
//! A Migraine standalone plugin is one executable that serves every command it
//! lists in `plugin.yaml`'s `commands:` and dispatches on its first argument
//! (seed 003's `docker-manager`: `switch os.Args[1]`). So plugd runs the
//! manifest's entry point (the manifest loader defaults it to the file named
//! like the plugin, e.g. `docker-manager` or `bin/docker-manager`) as
//! `<entry> <command> <argv…>`: the command is the call's action, checked
//! against `commands` by the host, and the rest is `args.argv`, the words after
//! `--` on `plugd exec ID COMMAND -- ARGS…`. The interpreter is chosen as for
//! `ndjson` plugins (language, extension, `#!` line, else the file itself).
//! stdin is empty; the process starts in the call's work dir.
//!
//! The response ([`interpret_command`]) always carries `body = {"stdout",
//! "stderr", "exit_code"}` (`stderr` is the tail plugd keeps, `exit_code` null
//! when a signal ended it): exit 0 → ok; any other exit or a signal → 500 with
//! the exit status and the stderr tail in the message; timeout → 301; runaway
//! stdout → 300.

use serde_json::{Map, Value};

use crate::oneshot::{
    OneshotOptions, OneshotOutput, not_started_report, refused_report, run_oneshot,
};
use crate::protocol::{ExecCall, Response, codes};
use crate::{CallReport, Interpreters, Isolation, LaunchSpec, PluginRef, RuntimeError};

/// The `args` key holding the command's argument words.
pub const ARGV_KEY: &str = "argv";

/// The command's argument words from `args`: `args.argv`, a list of strings
/// (absent: none). Any other key is refused, because a command plugin takes
/// only words and silently dropping a named argument would surprise the
/// caller. `Err` is the message of a 201 response.
pub fn command_argv(args: &Map<String, Value>) -> Result<Vec<String>, String> {
    if let Some(other) = args.keys().find(|k| *k != ARGV_KEY) {
        return Err(format!(
            "command plugins take only argument words, not named argument `{other}`; pass them after `--` (plugd exec ID COMMAND -- ARGS…) or as {{\"argv\": [\"--flag\", \"value\"]}}"
        ));
    }
    match args.get(ARGV_KEY) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(words)) => words
            .iter()
            .enumerate()
            .map(|(i, w)| match w {
                Value::String(s) if s.contains('\0') => Err(format!(
                    "argv[{i}] contains a NUL byte, which no program can receive"
                )),
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "argv[{i}] must be a string, got {}",
                    crate::protocol::json_kind(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "`argv` must be a list of strings, got {}",
            crate::protocol::json_kind(other)
        )),
    }
}

/// The launch of a command plugin's executable, without the command words
/// (which [`run_command`] appends).
///
/// Language `exec` (what the manifest loader infers for a file without an
/// extension, the usual Migraine executable) is judged from the file instead:
/// a `#!/usr/bin/env python3` script then runs with the interpreter plugd
/// resolved, because `env` would find a pyenv-style shim first on PATH, which
/// cannot work inside the sandbox. A binary still runs as itself.
pub fn command_launch(
    plugin: &PluginRef,
    plugin_dir: &std::path::Path,
    work_dir: &std::path::Path,
    interp: &Interpreters,
) -> Result<LaunchSpec, RuntimeError> {
    let mut plugin = plugin.clone();
    if plugin
        .language
        .as_deref()
        .is_some_and(|l| l.eq_ignore_ascii_case("exec"))
    {
        plugin.language = None;
    }
    crate::ndjson_launch(&plugin, plugin_dir, work_dir, interp)
}

/// Turns the process's end into the call's response (rules in the module doc).
pub fn interpret_command(id: &str, command: Option<&str>, out: &OneshotOutput) -> Response {
    let body = serde_json::json!({
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": out.stderr_tail,
        "exit_code": out.status().and_then(|s| s.code()),
    });
    let mut response = if let Some(failure) = out.common_failure(id) {
        failure
    } else if out.succeeded() {
        Response::ok(id, None)
    } else {
        crate::oneshot::with_origin(Response::error(
            id,
            500,
            format!(
                "plugin {}{} {}{}",
                out.label,
                command
                    .map(|c| format!(" command `{c}`"))
                    .unwrap_or_default(),
                out.describe_end(),
                crate::oneshot::quote_stderr(&out.stderr_tail)
            ),
        ))
    };
    response.body = Some(body);
    response
}

/// One call of a command plugin: `spec` (from [`command_launch`]) run with
/// `command` (the call's action; `None` for a plugin that declares no commands)
/// and the call's argv; 201 before anything starts when the args are not
/// argument words.
pub async fn run_command(
    spec: &LaunchSpec,
    isolation: &Isolation,
    command: Option<&str>,
    call: &ExecCall,
    opts: &OneshotOptions,
) -> CallReport {
    let id = uuid::Uuid::new_v4().to_string();
    let argv = match command_argv(&call.args) {
        Ok(argv) => argv,
        Err(problem) => {
            return refused_report(
                &id,
                codes::INVALID_ARGS,
                format!("plugin {}: {problem}", spec.label()),
            );
        }
    };
    let mut spec = spec.clone();
    if let Some(command) = command {
        spec.args.push(command.into());
    }
    spec.args.extend(argv.into_iter().map(Into::into));
    match run_oneshot(&spec, isolation, Vec::new(), opts).await {
        Ok(out) => {
            let response = interpret_command(&id, command, &out);
            out.into_report(response)
        }
        Err(err) => not_started_report(&id, codes::INTERNAL, &err),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::oneshot::OneshotEnd;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn out(end: OneshotEnd) -> OneshotOutput {
        OneshotOutput {
            label: "docker-manager@1.0.0".into(),
            stdout: b"partial\n".to_vec(),
            stderr_tail: "Unknown command\n".into(),
            end,
            duration: Duration::ZERO,
            accounting: None,
        }
    }

    #[test]
    fn argv_comes_from_args_argv_only() {
        assert_eq!(command_argv(&Map::new()).unwrap(), Vec::<String>::new());
        assert_eq!(
            command_argv(&args(json!({"argv": ["--tag", "x y"]}))).unwrap(),
            vec!["--tag", "x y"]
        );
        let err = command_argv(&args(json!({"argv": ["a"], "tag": "x"}))).unwrap_err();
        assert!(err.contains("named argument `tag`"), "{err}");
        let err = command_argv(&args(json!({"argv": "a b"}))).unwrap_err();
        assert!(err.contains("list of strings"), "{err}");
        let err = command_argv(&args(json!({"argv": ["a", 1]}))).unwrap_err();
        assert!(err.contains("argv[1] must be a string"), "{err}");
        let err = command_argv(&args(json!({"argv": ["a\u{0}b"]}))).unwrap_err();
        assert!(err.contains("NUL"), "{err}");
    }

    #[test]
    fn exit_codes_decide_and_the_body_is_always_there() {
        let ok = interpret_command(
            "id",
            Some("list"),
            &out(OneshotEnd::Exited(ExitStatus::from_raw(0))),
        );
        assert!(ok.is_ok());
        assert_eq!(
            ok.body.unwrap(),
            json!({"stdout": "partial\n", "stderr": "Unknown command\n", "exit_code": 0})
        );

        let failed = interpret_command(
            "id",
            Some("list"),
            &out(OneshotEnd::Exited(ExitStatus::from_raw(2 << 8))),
        );
        assert_eq!(failed.code, Some(500));
        let m = failed.message.clone().unwrap();
        assert!(
            m.contains("`list` exited with status 2") && m.contains("Unknown command"),
            "{m}"
        );
        assert_eq!(failed.body.unwrap()["exit_code"], 2);

        let signalled = interpret_command(
            "id",
            Some("list"),
            &out(OneshotEnd::Exited(ExitStatus::from_raw(11))),
        );
        assert_eq!(signalled.code, Some(500));
        assert!(signalled.message.unwrap().contains("SIGSEGV"));
        assert_eq!(signalled.body.unwrap()["exit_code"], Value::Null);

        let slow = interpret_command(
            "id",
            Some("list"),
            &out(OneshotEnd::TimedOut {
                after: Duration::from_secs(1),
            }),
        );
        assert_eq!(slow.code, Some(codes::TIMEOUT));
        assert_eq!(slow.body.unwrap()["stdout"], "partial\n");
    }
}
