//! Shared helpers: the interpreters (discovered once), the example plugins, hostile
//! scripts written to a fresh temp dir per test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use plugd_runtime::protocol::ExecCall;
use plugd_runtime::{
    CallOptions, CallReport, Interpreters, LaunchSpec, Limits, PluginRef, call_once, ndjson_launch,
};
use serde_json::{Map, Value};

/// Discovering runs `python3` once (a pyenv shim costs ~100 ms per start).
pub fn interpreters() -> &'static Interpreters {
    static INTERP: OnceLock<Interpreters> = OnceLock::new();
    INTERP.get_or_init(Interpreters::discover)
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Short timeouts keep the suite fast; generous enough for a cold Python start.
pub fn options() -> CallOptions {
    CallOptions {
        timeout: Duration::from_millis(1500),
        health_timeout: Duration::from_secs(2),
        shutdown_grace: Duration::from_millis(1000),
        limits: Limits::default(),
    }
}

pub fn call(action: &str, args: Value) -> ExecCall {
    let args: Map<String, Value> = serde_json::from_value(args).expect("args must be an object");
    ExecCall::new(action, args)
}

/// One test's world: a plugin dir and a work dir, both temporary.
pub struct Env {
    _root: tempfile::TempDir,
    pub plugin_dir: PathBuf,
    pub work_dir: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        let plugin_dir = root.path().join("plugin");
        let work_dir = root.path().join("work");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        std::fs::create_dir_all(&work_dir).unwrap();
        Env {
            _root: root,
            plugin_dir,
            work_dir,
        }
    }

    /// A launch of an example plugin from examples/, run in this env's work dir.
    pub fn example(&self, name: &str, entry: &str) -> LaunchSpec {
        let plugin = PluginRef {
            id: name.into(),
            version: "1.0.0".into(),
            entry_point: entry.into(),
            language: None,
        };
        ndjson_launch(
            &plugin,
            &examples_dir().join(name),
            &self.work_dir,
            interpreters(),
        )
        .unwrap()
    }

    /// A bash plugin: the given body after a prelude with `next` (reads one request
    /// into $id and $type, exits 0 at EOF), `reply STATUS [BODY]` and
    /// `healthy` (answers the first request, the health probe, with ok).
    pub fn script(&self, name: &str, body: &str) -> LaunchSpec {
        let prelude = r#"
next() {
  IFS= read -r line || exit 0
  [[ $line =~ \"id\":\"([^\"]*)\" ]] && id=${BASH_REMATCH[1]}
  [[ $line =~ \"type\":\"([^\"]*)\" ]] && type=${BASH_REMATCH[1]}
}
reply() { printf '{"id":"%s","status":"%s","body":%s}\n' "$id" "$1" "${2:-null}"; }
healthy() { next; reply ok; }
"#;
        let file = format!("{name}.sh");
        std::fs::write(self.plugin_dir.join(&file), format!("{prelude}\n{body}\n")).unwrap();
        let plugin = PluginRef {
            id: name.into(),
            version: "0.0.1".into(),
            entry_point: file,
            language: Some("bash".into()),
        };
        ndjson_launch(&plugin, &self.plugin_dir, &self.work_dir, interpreters()).unwrap()
    }
}

pub async fn run(spec: &LaunchSpec, call: &ExecCall) -> CallReport {
    call_once(spec, call, &options()).await
}

/// The response message, for assertions.
pub fn message(report: &CallReport) -> &str {
    report.response.message.as_deref().unwrap_or("")
}
