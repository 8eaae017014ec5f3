//! The `file` runtime (DESIGN §4): OmniScope plugins that read
//! `/plugin/input.json` and write `/plugin/output.json`, one process per call.
//!
//! OmniScope scripts hard-code those two paths and write next to their own
//! code, while plugd's installed trees are read-only and must never change. So
//! every call gets its own copy of the plugin files ([`copy_plugin_tree`], in
//! the call's work dir, removed with it) and the sandbox shows that copy at
//! `/plugin` read-write ([`writable_plugin_view`]). Without the sandbox there is
//! no `/plugin`, so [`run_file`] refuses [`Isolation::Direct`].
//!
//! What the plugin gets ([`file_input`]):
//! `{"context": {plugin_id, plugin_name, version, config, permissions, trace_id,
//! extension_point}, "data": …, "parameters": {…}}`. `context.config` is the
//! manifest's `config` defaults, exactly as the call context carries them;
//! per-call `parameters` are passed separately and are *not* merged into it,
//! because OmniScope plugins already read `parameters` first and fall back to
//! `config` (the examples do), and a merged config would hide from the plugin
//! which values the caller chose. `data` is the call's `input_data`; a call
//! without `input_data` but with `args` sends the args object as `data`, so
//! `plugd exec ID --args '{…}'` works too.
//!
//! How the result is judged ([`interpret_output`]), first match wins:
//! timeout → 301; runaway stdout → 300; `output.json` with a non-empty `errors`
//! → 500 with those errors as the message (body = the output); exit 0 with an
//! object → ok, body = the output; a non-zero exit or a signal → 400 with the
//! exit status and the stderr tail; exit 0 without `output.json` → 400 saying
//! so; `output.json` that is not a JSON object → 100; larger than the cap →
//! 300; a symlink or other non-file → 400.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::oneshot::{OneshotOptions, OneshotOutput, bytes, not_started_report, run_oneshot};
use crate::protocol::{ExecCall, Response, codes};
use crate::{CallReport, Interpreters, Isolation, LaunchSpec, PluginRef, RuntimeError};

/// The file the plugin reads, in its directory.
pub const INPUT_FILE: &str = "input.json";
/// The file the plugin writes, in its directory.
pub const OUTPUT_FILE: &str = "output.json";
/// The largest `output.json` plugd reads.
pub const DEFAULT_OUTPUT_CAP: usize = 16 * 1024 * 1024;
/// The per-call copy's directory name inside the call's work dir.
pub const CALL_COPY_DIR: &str = "plugin";

/// The `input.json` document for `call` (see the module doc). `permissions`
/// are the manifest's, as written.
pub fn file_input(call: &ExecCall, permissions: &[String]) -> Value {
    let context = call.context.as_ref().and_then(Value::as_object);
    let field = |key: &str| context.and_then(|c| c.get(key)).cloned();
    let mut ctx = Map::new();
    ctx.insert(
        "plugin_id".into(),
        field("plugin_id").unwrap_or(Value::Null),
    );
    ctx.insert(
        "plugin_name".into(),
        field("plugin_name").unwrap_or(Value::Null),
    );
    ctx.insert(
        "config".into(),
        field("config").unwrap_or_else(|| Value::Object(Map::new())),
    );
    ctx.insert(
        "permissions".into(),
        Value::Array(permissions.iter().cloned().map(Value::String).collect()),
    );
    for extra in ["version", "trace_id"] {
        if let Some(v) = field(extra) {
            ctx.insert(extra.into(), v);
        }
    }
    if let Some(point) = &call.extension_point {
        ctx.insert("extension_point".into(), Value::String(point.clone()));
    }
    let data = match (&call.input_data, call.args.is_empty()) {
        (Some(data), _) => data.clone(),
        (None, false) => Value::Object(call.args.clone()),
        (None, true) => Value::Null,
    };
    serde_json::json!({
        "context": ctx,
        "data": data,
        "parameters": call.parameters.clone().unwrap_or_default(),
    })
}

/// Copies the installed plugin tree `from` into `to` (created; must not exist):
/// directories, regular files with their modes, and symlinks that stay inside
/// the tree. Anything else (device files, FIFOs, links leading out) is refused,
/// although the installer already refuses them, because this copy is what a
/// sandboxed process will see. Hand-written over `walkdir` because every entry
/// needs this per-kind decision anyway. Returns the bytes copied.
pub fn copy_plugin_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir(to)?;
    copy_dir(from, to, from, 0)
}

/// Deep enough for any real package, shallow enough to stop a pathological one.
const MAX_DEPTH: usize = 64;

fn copy_dir(root: &Path, to: &Path, dir: &Path, depth: usize) -> std::io::Result<u64> {
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other(format!(
            "{} is nested more than {MAX_DEPTH} directories deep",
            dir.display()
        )));
    }
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let src = entry.path();
        let rel = src.strip_prefix(root).map_err(std::io::Error::other)?;
        let dst = to.join(rel);
        let meta = std::fs::symlink_metadata(&src)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            total += copy_dir(root, to, &src, depth + 1)?;
            // Owner-writable so the plugin may add files next to its code, as
            // OmniScope plugins do; the copy is private to this call.
            std::fs::set_permissions(
                &dst,
                std::fs::Permissions::from_mode((meta.mode() & 0o7777) | 0o700),
            )?;
        } else if kind.is_file() {
            total += std::fs::copy(&src, &dst)?;
            std::fs::set_permissions(
                &dst,
                std::fs::Permissions::from_mode((meta.mode() & 0o777) | 0o600),
            )?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src)?;
            if !link_stays_inside(rel, &target) {
                return Err(std::io::Error::other(format!(
                    "{} is a symlink to {}, outside the plugin",
                    src.display(),
                    target.display()
                )));
            }
            std::os::unix::fs::symlink(&target, &dst)?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} is neither a file, a directory nor a symlink",
                src.display()
            )));
        }
    }
    Ok(total)
}

/// Whether a relative link at `at` (relative to the root) pointing to `target`
/// resolves inside the root, judged lexically (the copy has no links out).
fn link_stays_inside(at: &Path, target: &Path) -> bool {
    let mut depth: usize = at.components().count().saturating_sub(1);
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// `isolation` with its `/plugin` view showing `call_dir` read-write, for the
/// per-call copy. [`Isolation::Direct`] is returned unchanged.
pub fn writable_plugin_view(isolation: &Isolation, call_dir: &Path) -> Isolation {
    let mut isolation = isolation.clone();
    if let Isolation::Sandboxed { policy, .. } = &mut isolation {
        let mount = Path::new(plugd_sandbox::policy::PLUGIN_MOUNT);
        policy.binds.retain(|b| b.target != mount);
        policy
            .binds
            .push(plugd_sandbox::Bind::read_write(call_dir, mount));
    }
    isolation
}

/// The launch of a `file` plugin: `python3 /plugin/<entry>` or
/// `Rscript /plugin/<entry>` (by `language`, else the entry's extension), in
/// `call_dir` (seen as `/plugin`, where OmniScope scripts expect to run).
/// `interp.python` should be the plugin's own virtualenv interpreter when it
/// has one.
pub fn file_launch(
    plugin: &PluginRef,
    call_dir: &Path,
    work_dir: &Path,
    interp: &Interpreters,
) -> Result<LaunchSpec, RuntimeError> {
    let language = plugin.language.clone().or_else(|| {
        let ext = Path::new(&plugin.entry_point)
            .extension()
            .and_then(|e| e.to_str())?;
        match ext {
            "py" => Some("python".to_string()),
            "R" | "r" => Some("r".to_string()),
            _ => None,
        }
    });
    match language.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("python" | "python3" | "r" | "rscript") => {}
        other => {
            return Err(RuntimeError::UnsupportedLanguage {
                plugin: plugin.label(),
                language: format!(
                    "{} (the file runtime runs python or r)",
                    other.unwrap_or("unknown")
                ),
            });
        }
    }
    let plugin = PluginRef {
        language,
        ..plugin.clone()
    };
    let mut spec = crate::ndjson_launch(&plugin, call_dir, work_dir, interp)?;
    spec.cwd = crate::launch::canonical_dir("per-call plugin directory", call_dir)?;
    Ok(spec)
}

/// What was found at `/plugin/output.json` after the process ended.
#[derive(Debug)]
pub enum OutputFile {
    /// No such file.
    Missing,
    /// A symlink, directory, FIFO, …: never followed or read.
    NotRegular,
    /// Larger than the cap.
    TooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        cap: usize,
    },
    /// It could not be read.
    Unreadable(String),
    /// Its content.
    Bytes(Vec<u8>),
}

/// Reads `dir/output.json` as an attacker left it: never through a symlink
/// (which could point at a host file), never blocking on a FIFO, at most `cap`
/// bytes.
pub fn read_output(dir: &Path, cap: usize) -> OutputFile {
    let path = dir.join(OUTPUT_FILE);
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return OutputFile::Missing,
        // ELOOP: the last component is a symlink.
        Err(err) if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return OutputFile::NotRegular;
        }
        Err(err) => return OutputFile::Unreadable(err.to_string()),
    };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(err) => return OutputFile::Unreadable(err.to_string()),
    };
    if !meta.is_file() {
        return OutputFile::NotRegular;
    }
    if meta.len() > cap as u64 {
        return OutputFile::TooLarge {
            size: meta.len(),
            cap,
        };
    }
    let mut content = Vec::new();
    // The size was checked, but the file may still grow: read one byte past the cap.
    match file.take(cap as u64 + 1).read_to_end(&mut content) {
        Ok(_) if content.len() > cap => OutputFile::TooLarge {
            size: content.len() as u64,
            cap,
        },
        Ok(_) => OutputFile::Bytes(content),
        Err(err) => OutputFile::Unreadable(err.to_string()),
    }
}

/// Turns the process's end and its `output.json` into the call's response (the
/// rules are in the module doc).
pub fn interpret_output(id: &str, out: &OneshotOutput, file: OutputFile) -> Response {
    if let Some(failure) = out.common_failure(id) {
        return failure;
    }
    let label = &out.label;
    let shown = format!("/plugin/{OUTPUT_FILE}");
    let parsed = match file {
        OutputFile::Bytes(content) => serde_json::from_slice::<Value>(&content).map_err(|e| {
            (
                codes::MALFORMED_JSON,
                format!(
                    "plugin {label} wrote {shown} that is not valid JSON ({e}); it starts with: {}",
                    preview(&content)
                ),
            )
        }),
        OutputFile::Missing => Err((
            codes::INTERNAL,
            format!(
                "plugin {label} {} but wrote no {shown}; a file-runtime plugin must write its result there",
                out.describe_end()
            ),
        )),
        OutputFile::NotRegular => Err((
            codes::INTERNAL,
            format!(
                "plugin {label} left {shown} as a symlink, directory or other non-file; plugd only reads a plain file there"
            ),
        )),
        OutputFile::TooLarge { size, cap } => Err((
            codes::RESOURCE_EXHAUSTED,
            format!(
                "plugin {label} wrote a {shown} of {size} bytes, more than the {} plugd reads",
                bytes(cap)
            ),
        )),
        OutputFile::Unreadable(why) => Err((
            codes::INTERNAL,
            format!("plugin {label} wrote a {shown} that cannot be read: {why}"),
        )),
    };
    let output = match parsed {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            let problem = format!(
                "plugin {label} wrote a {shown} holding {}, not an object {{data, metadata, logs, warnings, errors}}",
                crate::protocol::json_kind(&other)
            );
            return if out.succeeded() {
                Response::error(id, codes::MALFORMED_JSON, problem)
            } else {
                out.crash_response(id, &format!(" ({problem})"))
            };
        }
        // A crash explains a bad or missing output better than the output does.
        Err(_) if !out.succeeded() => return out.crash_response(id, ""),
        Err((code, message)) => return Response::error(id, code, message),
    };
    let errors = match plugin_errors(output.get("errors")) {
        Ok(errors) => errors,
        Err(kind) => {
            return Response::error(
                id,
                codes::MALFORMED_JSON,
                format!(
                    "plugin {label} wrote a {shown} whose `errors` is {kind}; it must be a list of messages"
                ),
            );
        }
    };
    if !errors.is_empty() {
        let exit = if out.succeeded() {
            String::new()
        } else {
            format!(" and {}", out.describe_end())
        };
        let mut response = Response::error(
            id,
            500,
            format!(
                "plugin {label} reported {}{exit}: {}",
                if errors.len() == 1 {
                    "an error".to_string()
                } else {
                    format!("{} errors", errors.len())
                },
                errors.join("; ")
            ),
        );
        response.body = Some(Value::Object(output));
        return response;
    }
    if !out.succeeded() {
        let mut response = out.crash_response(id, &format!(" although it wrote {shown}"));
        response.body = Some(Value::Object(output));
        return response;
    }
    Response::ok(id, Some(Value::Object(output)))
}

/// The messages of an OmniScope `errors` field: a list (items that are not
/// strings are shown as JSON), one string, or nothing. `Err` names the wrong kind.
fn plugin_errors(errors: Option<&Value>) -> Result<Vec<String>, &'static str> {
    match errors {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()),
        Some(other) => Err(crate::protocol::json_kind(other)),
    }
}

/// The first ~200 characters of bad output, for a message.
pub(crate) fn preview(content: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&content[..content.len().min(SHOWN)]).into_owned();
    let text = text.trim();
    if text.is_empty() {
        "(nothing)".to_string()
    } else if content.len() > SHOWN {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

/// One call of a `file` plugin whose files were copied to `call_dir` (see
/// [`copy_plugin_tree`]) and whose `spec` came from [`file_launch`]: writes
/// `input.json`, hands the copy to the plugin's user, runs the process with
/// `/plugin` read-write, and judges `output.json`.
///
/// `Err` when the call cannot be attempted: no sandbox (there would be no
/// `/plugin`), or the input cannot be written. Everything the plugin does
/// wrong is an error response in the report.
pub async fn run_file(
    spec: &LaunchSpec,
    isolation: &Isolation,
    call_dir: &Path,
    call: &ExecCall,
    permissions: &[String],
    opts: &OneshotOptions,
) -> Result<CallReport, RuntimeError> {
    let id = uuid::Uuid::new_v4().to_string();
    let Isolation::Sandboxed { policy, .. } = isolation else {
        return Err(RuntimeError::SandboxSetup {
            plugin: spec.label(),
            detail: format!(
                "the file runtime shows the plugin's files at {}, which needs the sandbox, and this host runs plugins without it",
                plugd_sandbox::policy::PLUGIN_MOUNT
            ),
        });
    };
    let dir_error = |source| RuntimeError::Directory {
        what: "per-call plugin directory",
        path: call_dir.to_path_buf(),
        source,
    };
    let input = serde_json::to_vec(&file_input(call, permissions))
        .map_err(|e| dir_error(std::io::Error::other(e)))?;
    std::fs::write(call_dir.join(INPUT_FILE), input).map_err(dir_error)?;
    hand_over(call_dir, policy.uid, policy.gid).map_err(dir_error)?;
    let isolation = writable_plugin_view(isolation, call_dir);
    let out = match run_oneshot(spec, &isolation, Vec::new(), opts).await {
        Ok(out) => out,
        Err(err) => return Ok(not_started_report(&id, codes::INTERNAL, &err)),
    };
    let file = read_output(call_dir, DEFAULT_OUTPUT_CAP);
    let response = interpret_output(&id, &out, file);
    Ok(out.into_report(response))
}

/// Gives the per-call copy to the user the sandbox runs plugins as, so it can
/// write there. Only root can; without root the sandbox maps plugd's own user,
/// which already owns the copy, so a refusal is not an error.
fn hand_over(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        match std::os::unix::fs::lchown(&path, Some(uid), Some(gid)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
            Err(err) => return Err(err),
        }
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::oneshot::OneshotEnd;

    fn out(end: OneshotEnd) -> OneshotOutput {
        OneshotOutput {
            label: "demo@1.0.0".into(),
            stdout: Vec::new(),
            stderr_tail: "Traceback: boom\n".into(),
            end,
            duration: Duration::ZERO,
            accounting: None,
        }
    }

    fn exited(code: i32) -> OneshotOutput {
        out(OneshotEnd::Exited(ExitStatus::from_raw(code << 8)))
    }

    fn judge(o: &OneshotOutput, file: OutputFile) -> Response {
        interpret_output("id", o, file)
    }

    fn text(s: &str) -> OutputFile {
        OutputFile::Bytes(s.as_bytes().to_vec())
    }

    fn message(r: &Response) -> String {
        r.message.clone().unwrap_or_default()
    }

    #[test]
    fn input_document_has_the_omniscope_shape() {
        let mut call = ExecCall::new("run", Map::new());
        call.input_data = Some(json!([[1, 2], [3, 4]]));
        call.parameters = Some(json!({"method": "minmax"}).as_object().unwrap().clone());
        call.extension_point = Some("preprocessing".into());
        call.context = Some(json!({
            "plugin_id": "norm", "plugin_name": "data_normalizer", "version": "1.0.0",
            "config": {"method": "zscore"}, "trace_id": "t-1",
        }));
        let input = file_input(&call, &["read_data".to_string()]);
        assert_eq!(
            input,
            json!({
                "context": {
                    "plugin_id": "norm", "plugin_name": "data_normalizer",
                    "config": {"method": "zscore"}, "permissions": ["read_data"],
                    "version": "1.0.0", "trace_id": "t-1", "extension_point": "preprocessing",
                },
                "data": [[1, 2], [3, 4]],
                "parameters": {"method": "minmax"},
            })
        );
    }

    #[test]
    fn args_stand_in_for_missing_input_data() {
        let args = json!({"values": [1, 2]}).as_object().unwrap().clone();
        let input = file_input(&ExecCall::new("run", args), &[]);
        assert_eq!(input["data"], json!({"values": [1, 2]}));
        assert_eq!(input["parameters"], json!({}));
        assert_eq!(input["context"]["config"], json!({}));
        let input = file_input(&ExecCall::default(), &[]);
        assert_eq!(input["data"], Value::Null);
    }

    #[test]
    fn a_clean_output_is_ok_with_the_output_as_body() {
        let r = judge(
            &exited(0),
            text(r#"{"data": [1], "metadata": {}, "logs": [], "warnings": ["w"], "errors": []}"#),
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(r.body.unwrap()["data"], json!([1]));
    }

    #[test]
    fn reported_errors_are_a_500_whatever_the_exit() {
        for (status, extra) in [(0, false), (1, true)] {
            let r = judge(
                &exited(status),
                text(r#"{"data": null, "errors": ["missing input data", {"x": 1}]}"#),
            );
            assert_eq!(r.code, Some(500));
            let m = message(&r);
            assert!(
                m.contains("missing input data") && m.contains("2 errors"),
                "{m}"
            );
            assert_eq!(m.contains("exited with status 1"), extra, "{m}");
            assert!(r.body.is_some());
        }
        // jsonlite's auto_unbox turns a one-element vector into a string.
        let r = judge(&exited(0), text(r#"{"errors": "bad method"}"#));
        assert_eq!(r.code, Some(500));
        assert!(message(&r).contains("bad method"));
    }

    #[test]
    fn hostile_outputs_are_clear_errors() {
        let cases: Vec<(OutputFile, i64, &str)> = vec![
            (
                text("not json at all"),
                codes::MALFORMED_JSON,
                "not valid json",
            ),
            (text(""), codes::MALFORMED_JSON, "(nothing)"),
            (text("[1, 2]"), codes::MALFORMED_JSON, "holding an array"),
            (text("\"ok\""), codes::MALFORMED_JSON, "holding a string"),
            (
                text(r#"{"errors": 5}"#),
                codes::MALFORMED_JSON,
                "`errors` is a number",
            ),
            (
                OutputFile::Missing,
                codes::INTERNAL,
                "wrote no /plugin/output.json",
            ),
            (OutputFile::NotRegular, codes::INTERNAL, "non-file"),
            (
                OutputFile::TooLarge { size: 99, cap: 10 },
                codes::RESOURCE_EXHAUSTED,
                "more than the 10 bytes",
            ),
        ];
        for (file, code, needle) in cases {
            let r = judge(&exited(0), file);
            assert_eq!(r.code, Some(code), "{r:?}");
            assert!(message(&r).to_lowercase().contains(needle), "{r:?}");
        }
    }

    #[test]
    fn a_crash_names_the_exit_and_stderr() {
        for file in [OutputFile::Missing, text("garbage"), text(r#"{"data": 1}"#)] {
            let r = judge(&exited(2), file);
            assert_eq!(r.code, Some(codes::INTERNAL));
            let m = message(&r);
            assert!(
                m.contains("exited with status 2") && m.contains("boom"),
                "{m}"
            );
        }
        let r = judge(
            &out(OneshotEnd::Exited(ExitStatus::from_raw(11))),
            OutputFile::Missing,
        );
        assert!(message(&r).contains("SIGSEGV"), "{r:?}");
    }

    #[test]
    fn timeouts_win_over_whatever_was_written() {
        let r = judge(
            &out(OneshotEnd::TimedOut {
                after: Duration::from_secs(1),
            }),
            text(r#"{"data": 1}"#),
        );
        assert_eq!(r.code, Some(codes::TIMEOUT));
        assert!(message(&r).contains("killed"));
    }

    #[test]
    fn read_output_never_follows_links_and_caps_the_size() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_output(dir.path(), 10), OutputFile::Missing));
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "{}").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join(OUTPUT_FILE)).unwrap();
        assert!(matches!(
            read_output(dir.path(), 10),
            OutputFile::NotRegular
        ));
        std::fs::remove_file(dir.path().join(OUTPUT_FILE)).unwrap();
        std::fs::create_dir(dir.path().join(OUTPUT_FILE)).unwrap();
        assert!(matches!(
            read_output(dir.path(), 10),
            OutputFile::NotRegular
        ));
        std::fs::remove_dir(dir.path().join(OUTPUT_FILE)).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.path().join(OUTPUT_FILE),
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert!(matches!(
            read_output(dir.path(), 10),
            OutputFile::NotRegular
        ));
        std::fs::remove_file(dir.path().join(OUTPUT_FILE)).unwrap();
        std::fs::write(dir.path().join(OUTPUT_FILE), "x".repeat(11)).unwrap();
        assert!(matches!(
            read_output(dir.path(), 10),
            OutputFile::TooLarge { size: 11, .. }
        ));
        std::fs::write(dir.path().join(OUTPUT_FILE), "{}").unwrap();
        assert!(matches!(read_output(dir.path(), 10), OutputFile::Bytes(b) if b == b"{}"));
    }

    #[test]
    fn the_copy_keeps_files_and_inner_links_and_refuses_links_out() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("lib")).unwrap();
        std::fs::write(src.path().join("lib/a.py"), "a").unwrap();
        std::fs::set_permissions(
            src.path().join("lib/a.py"),
            std::fs::Permissions::from_mode(0o555),
        )
        .unwrap();
        std::os::unix::fs::symlink("lib/a.py", src.path().join("alias.py")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("copy");
        assert_eq!(copy_plugin_tree(src.path(), &to).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(to.join("alias.py")).unwrap(), "a");
        let mode = std::fs::metadata(to.join("lib/a.py")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755, "executable bits kept, owner may write");

        std::os::unix::fs::symlink("../../etc/passwd", src.path().join("lib/out")).unwrap();
        let err = copy_plugin_tree(src.path(), &dst.path().join("copy2")).unwrap_err();
        assert!(err.to_string().contains("outside the plugin"), "{err}");
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("/etc")));
    }

    #[test]
    fn run_file_refuses_to_run_without_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LaunchSpec {
            program: "/bin/true".into(),
            args: vec![],
            cwd: dir.path().into(),
            env: vec![],
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(run_file(
                &spec,
                &Isolation::Direct,
                dir.path(),
                &ExecCall::default(),
                &[],
                &OneshotOptions::default(),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("needs the sandbox"), "{err}");
        assert!(!dir.path().join(INPUT_FILE).exists());
    }
}
