//! The `python-function` runtime (DESIGN §4): plugd's own Python shim imports a
//! plugin's module once and serves the NDJSON envelope for it, so Migraine hook
//! functions, Wingman `ExecutionPlugin` classes and OmniScope SDK classes run as
//! warm workers, unmodified.
//!
//! The shim is one stdlib-only Python file, `shim/plugd_shim.py`, embedded here as
//! [`SHIM_SOURCE`] and passed to the interpreter with `-c`: no file is written next
//! to the plugin and nothing extra has to be visible inside the sandbox. Its module
//! doc describes the calling conventions; this module only builds the launch.
//!
//! Interpreter flags: `-u` so the plugin's log lines reach stderr as they are
//! written; `-s` so no user site-packages from `HOME` (the writable work dir) are
//! imported. Not `-I` or `-E`: those ignore `PYTHONPATH` and the other `PYTHON*`
//! variables, which hosts use to add a plugin's extra import paths, and the shim
//! already removes the working directory from `sys.path` itself (what `-I` would
//! otherwise buy).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::launch::{canonical_dir, set_plugin_env, set_python_env};
use crate::{Interpreters, LaunchSpec, PluginRef, RuntimeError};

/// The Python source of plugd's shim, run with `python -u -s -c SHIM_SOURCE
/// PLUGIN_DIR ENTRY_POINT HANDLERS_JSON`.
pub const SHIM_SOURCE: &str = include_str!("../shim/plugd_shim.py");

/// Builds the launch of a `python-function` plugin.
///
/// * `plugin.entry_point` is `module:function` or `module:Class` (the manifest's
///   `entry_point`); calls whose action has no handler go there.
/// * `handlers` maps an action or event name to another `module:attr`: Migraine
///   `hooks[].handler` (`event` → `module:function`) and any command whose handler
///   differs from the entry point. Empty for most plugins.
/// * `python` is the interpreter: the plugin's virtualenv python when it has one,
///   else [`Interpreters::python`]. It must be an absolute path (a found program).
/// * `plugin_dir` and `work_dir` are host paths, like [`crate::ndjson_launch`]'s:
///   [`crate::launch`] rewrites them to `/plugin` and `/work` when the process runs
///   sandboxed. The plugin dir goes first on `sys.path`; the process runs in the
///   work dir, which is also its `HOME`.
///
/// The environment is the one every plugin gets (`PLUGD_PLUGIN_*`, `OMNIFLOW_*`,
/// `PATH`, `HOME`, `LANG`) plus `PYTHONUNBUFFERED` and `PYTHONDONTWRITEBYTECODE`.
pub fn python_function_launch(
    plugin: &PluginRef,
    handlers: &BTreeMap<String, String>,
    python: &Path,
    plugin_dir: &Path,
    work_dir: &Path,
) -> Result<LaunchSpec, RuntimeError> {
    let label = plugin.label();
    check_target(&label, "entry point".to_string(), &plugin.entry_point)?;
    for (action, target) in handlers {
        if action.is_empty() {
            return Err(RuntimeError::PythonTargetInvalid {
                plugin: label,
                what: "handler".to_string(),
                given: target.clone(),
                reason: "is registered for an empty action name",
            });
        }
        check_target(&label, format!("handler for '{action}'"), target)?;
    }
    if !Interpreters::is_found(python) {
        return Err(RuntimeError::InterpreterMissing {
            plugin: label,
            language: "python",
            program: python.display().to_string(),
        });
    }
    let plugin_dir = canonical_dir("plugin directory", plugin_dir)?;
    let work_dir = canonical_dir("work directory", work_dir)?;
    // Strings and `module:attr` pairs only, so serialising cannot fail.
    let handlers_json = serde_json::to_string(handlers).unwrap_or_else(|_| "{}".to_string());

    let mut spec = LaunchSpec {
        program: python.to_path_buf(),
        args: vec![
            "-u".into(),
            "-s".into(),
            "-c".into(),
            SHIM_SOURCE.into(),
            OsString::from(plugin_dir.as_os_str()),
            plugin.entry_point.clone().into(),
            handlers_json.into(),
        ],
        cwd: work_dir.clone(),
        env: Vec::new(),
    };
    set_plugin_env(&mut spec, plugin, &plugin_dir, &work_dir);
    set_python_env(&mut spec);
    Ok(spec)
}

/// `module.path:attr`, each part an ASCII Python identifier: the same rule the
/// manifest crate uses to tell `module:Class` from a file. Checked here too because
/// the text ends up in `__import__`, and a clear error now beats a traceback later.
fn check_target(label: &str, what: String, given: &str) -> Result<(), RuntimeError> {
    let invalid = |reason| RuntimeError::PythonTargetInvalid {
        plugin: label.to_string(),
        what: what.clone(),
        given: given.to_string(),
        reason,
    };
    let Some((module, attr)) = given.split_once(':') else {
        return Err(invalid("has no ':' between module and function or class"));
    };
    if module.is_empty() || !module.split('.').all(is_identifier) {
        return Err(invalid(
            "does not start with a dotted module path of Python identifiers",
        ));
    }
    if !is_identifier(attr) {
        return Err(invalid(
            "does not end with a Python identifier after the ':'",
        ));
    }
    Ok(())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::path::PathBuf;

    fn plugin(entry: &str) -> PluginRef {
        PluginRef {
            id: "demo".into(),
            version: "1.0.0".into(),
            entry_point: entry.into(),
            language: Some("python".into()),
        }
    }

    #[test]
    fn builds_the_shim_command_line() {
        let pdir = tempfile::tempdir().unwrap();
        let wdir = tempfile::tempdir().unwrap();
        let handlers = BTreeMap::from([(
            "command-output".to_string(),
            "log_processor:process_log".to_string(),
        )]);
        let spec = python_function_launch(
            &plugin("plugin:HelloPlugin"),
            &handlers,
            Path::new("/opt/py/bin/python3"),
            pdir.path(),
            wdir.path(),
        )
        .unwrap();
        let pdir = pdir.path().canonicalize().unwrap();
        let work = wdir.path().canonicalize().unwrap();
        assert_eq!(spec.program, PathBuf::from("/opt/py/bin/python3"));
        assert_eq!(spec.args[..3], ["-u", "-s", "-c"].map(OsString::from));
        assert_eq!(spec.args[3], OsString::from(SHIM_SOURCE));
        assert_eq!(spec.args[4], pdir.as_os_str());
        assert_eq!(spec.args[5], OsStr::new("plugin:HelloPlugin"));
        assert_eq!(
            spec.args[6],
            OsStr::new(r#"{"command-output":"log_processor:process_log"}"#)
        );
        assert_eq!(spec.cwd, work);
        assert_eq!(spec.env_var("HOME"), Some(work.as_os_str()));
        assert_eq!(spec.env_var("PLUGD_PLUGIN_ID"), Some(OsStr::new("demo")));
        assert_eq!(spec.env_var("PYTHONUNBUFFERED"), Some(OsStr::new("1")));
        assert!(spec.env_var("OMNIFLOW_PLUGIN_MAX_LINE").is_some());
        assert!(
            spec.env_var("PYTHONPATH").is_none(),
            "nothing of plugd's own environment leaks"
        );
    }

    #[test]
    fn sandbox_view_rewrites_the_plugin_dir_but_not_the_source() {
        let pdir = tempfile::tempdir().unwrap();
        let wdir = tempfile::tempdir().unwrap();
        let spec = python_function_launch(
            &plugin("pkg.mod:run"),
            &BTreeMap::new(),
            Path::new("/usr/bin/python3"),
            pdir.path(),
            wdir.path(),
        )
        .unwrap();
        let views = vec![
            (
                pdir.path().canonicalize().unwrap(),
                PathBuf::from("/plugin"),
            ),
            (wdir.path().canonicalize().unwrap(), PathBuf::from("/work")),
        ];
        let seen = spec.seen_through(&views);
        assert_eq!(seen.args[3], OsString::from(SHIM_SOURCE));
        assert_eq!(seen.args[4], OsStr::new("/plugin"));
        assert_eq!(seen.args[6], OsStr::new("{}"));
        assert_eq!(seen.cwd, PathBuf::from("/work"));
    }

    #[test]
    fn shim_fits_in_one_argument() {
        // Linux refuses any single argv string over 128 KiB (MAX_ARG_STRLEN).
        assert!(SHIM_SOURCE.len() < 100_000, "{} bytes", SHIM_SOURCE.len());
        assert!(SHIM_SOURCE.contains("def main("));
    }

    #[test]
    fn refuses_what_is_not_module_colon_attr() {
        let dir = tempfile::tempdir().unwrap();
        let launch = |entry: &str, handlers: &[(&str, &str)]| {
            let handlers = handlers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            python_function_launch(
                &plugin(entry),
                &handlers,
                Path::new("/usr/bin/python3"),
                dir.path(),
                dir.path(),
            )
        };
        for (entry, expect) in [
            ("plugin.py", "no ':'"),
            (":Class", "module path"),
            ("os;import x:f", "module path"),
            ("a..b:f", "module path"),
            ("../up:f", "module path"),
            ("plugin:", "identifier after"),
            ("plugin:Hello World", "identifier after"),
            ("plugin:a:b", "identifier after"),
            ("plügin:f", "module path"),
        ] {
            let err = launch(entry, &[]).unwrap_err();
            assert!(
                matches!(err, RuntimeError::PythonTargetInvalid { .. }),
                "{entry}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(expect), "{entry}: {text}");
            assert!(text.contains("demo@1.0.0") && text.contains("module:function"));
        }
        let err = launch("plugin:run", &[("pre-command", "mon.py")]).unwrap_err();
        assert!(
            err.to_string().contains("handler for 'pre-command'"),
            "{err}"
        );
        let err = launch("plugin:run", &[("", "mon:f")]).unwrap_err();
        assert!(err.to_string().contains("empty action"), "{err}");
        assert!(launch("pkg.sub_1:_Run2", &[("x", "a.b:c")]).is_ok());
    }

    #[test]
    fn needs_a_found_interpreter_and_real_directories() {
        let dir = tempfile::tempdir().unwrap();
        let err = python_function_launch(
            &plugin("plugin:run"),
            &BTreeMap::new(),
            Path::new("python3"),
            dir.path(),
            dir.path(),
        )
        .unwrap_err();
        assert!(
            matches!(err, RuntimeError::InterpreterMissing { .. }),
            "{err:?}"
        );
        let err = python_function_launch(
            &plugin("plugin:run"),
            &BTreeMap::new(),
            Path::new("/usr/bin/python3"),
            &dir.path().join("missing"),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("plugin directory"), "{err}");
    }
}
