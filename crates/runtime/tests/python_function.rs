//! The `python-function` runtime through real Python processes: plugd's shim
//! serving the seed-style examples (Wingman, Migraine, OmniScope SDK class) and
//! fixture plugins that fail in every way the shim must survive.
//!
//! The shim serves requests one at a time, in order, so nothing here tests
//! out-of-order answers; `cancel` is answered "not cancellable".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plugd_runtime::protocol::{ExecCall, RequestType, Response, Status, codes};
use plugd_runtime::{
    CallOptions, LaunchSpec, Limits, PluginRef, Worker, call_once, python_function_launch, spawn,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Generous: a cold Python start on a loaded 2-core machine; never reached when
/// the shim works.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The real interpreter, asked once: `python3` on PATH may be a slow pyenv shim.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys;print(sys.executable)"])
            .output()
            .expect("python3 is needed by these tests");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// One test's plugin dir (fixture files) and work dir.
struct Fixture {
    _root: tempfile::TempDir,
    plugin_dir: PathBuf,
    work_dir: PathBuf,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let plugin_dir = root.path().join("plugin");
        let work_dir = root.path().join("work");
        std::fs::create_dir_all(&work_dir).unwrap();
        for (name, body) in files {
            let path = plugin_dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        std::fs::create_dir_all(&plugin_dir).unwrap();
        Fixture {
            _root: root,
            plugin_dir,
            work_dir,
        }
    }

    fn launch(&self, entry: &str, handlers: &[(&str, &str)]) -> LaunchSpec {
        launch_in(&self.plugin_dir, &self.work_dir, entry, handlers)
    }

    fn example(&self, name: &str, entry: &str, handlers: &[(&str, &str)]) -> LaunchSpec {
        launch_in(&examples_dir().join(name), &self.work_dir, entry, handlers)
    }
}

fn launch_in(
    plugin_dir: &Path,
    work_dir: &Path,
    entry: &str,
    handlers: &[(&str, &str)],
) -> LaunchSpec {
    let plugin = PluginRef {
        id: "fixture".into(),
        version: "1.0.0".into(),
        entry_point: entry.into(),
        language: Some("python".into()),
    };
    let handlers: BTreeMap<String, String> = handlers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    python_function_launch(&plugin, &handlers, python(), plugin_dir, work_dir).unwrap()
}

fn start(spec: &LaunchSpec) -> Worker {
    Worker::start(spawn(spec).unwrap(), spec.label(), Limits::default())
}

async fn health(worker: &Worker) -> Response {
    worker
        .request(RequestType::Health, None, TIMEOUT)
        .await
        .unwrap()
}

/// An `exec` with the payload plugd builds (`ExecCall::to_payload`).
async fn exec(worker: &Worker, call: ExecCall) -> Response {
    worker
        .request(RequestType::Exec, Some(call.to_payload()), TIMEOUT)
        .await
        .unwrap()
}

fn call(action: &str, args: Value) -> ExecCall {
    let args: Map<String, Value> = serde_json::from_value(args).unwrap();
    ExecCall::new(action, args)
}

fn with_config(mut call: ExecCall, config: Value) -> ExecCall {
    call.context = Some(json!({"plugin_id": "fixture", "version": "1.0.0", "config": config}));
    call
}

fn body(response: &Response) -> &Value {
    response.body.as_ref().unwrap_or(&Value::Null)
}

fn message(response: &Response) -> &str {
    response.message.as_deref().unwrap_or("")
}

async fn stop(worker: Worker) -> plugd_runtime::ExitReport {
    let exit = worker.shutdown(Duration::from_secs(5)).await;
    assert!(exit.acknowledged_shutdown && !exit.killed, "{exit:?}");
    assert_eq!(exit.status.and_then(|s| s.code()), Some(0), "{exit:?}");
    exit
}

// --- Wingman ExecutionPlugin -----------------------------------------------------

/// Records each lifecycle step; `journal` returns and clears the record.
const RECORDER: &str = r#"
from homelab.execution_plugins.base import ExecutionPlugin

EVENTS = []


class Recorder(ExecutionPlugin):
    @property
    def supported_actions(self) -> list:
        return ["change", "journal"]

    async def validate_pre(self, action: dict) -> tuple:
        EVENTS.append("pre:" + action.action)
        if action.get("params", {}).get("reject"):
            return False, "refusing to touch " + str(action["target"])
        return True, "Validation passed"

    async def execute(self, action: dict) -> dict:
        if action.action_type == "journal":
            events = list(EVENTS)
            EVENTS.clear()
            return {"status": "success", "events": events}
        EVENTS.append("execute:" + action.action)
        if action.params.get("explode"):
            raise RuntimeError("the disk caught fire")
        return {
            "status": "error" if action.params.get("bad_result") else "success",
            "target": action.target,
            "params": action.params,
            "metadata": action.metadata,
            "config": self.config,
        }

    async def validate_post(self, action: dict, result: dict) -> tuple:
        if action.action != "journal":
            EVENTS.append("post:" + action.action)
        if result.get("status") == "success":
            return True, "Post-validation passed"
        return False, "result status is " + result.get("status")

    async def rollback(self, action: dict, result: dict = None) -> bool:
        EVENTS.append("rollback:" + ("none" if result is None else result["status"]))
        return True
"#;

async fn journal(worker: &Worker) -> Value {
    let response = exec(worker, call("journal", json!({}))).await;
    assert!(response.is_ok(), "{response:?}");
    body(&response)["data"]["events"].clone()
}

#[tokio::test]
async fn wingman_example_runs_unmodified() {
    let fx = Fixture::new(&[]);
    let worker = start(&fx.example("wingman-hello", "plugin:HelloPlugin", &[]));
    let probe = health(&worker).await;
    assert!(probe.is_ok(), "{probe:?}");
    assert_eq!(body(&probe)["style"], "wingman");

    let response = exec(&worker, call("hello", json!({"target": "nginx"}))).await;
    assert_eq!(response.status, Status::Ok, "{response:?}");
    assert_eq!(
        body(&response),
        &json!({"success": true, "data": {"status": "success", "message": "Hello, nginx!"},
                "error": null, "error_code": null})
    );

    let response = exec(
        &worker,
        call(
            "describe",
            json!({"target": "db", "params": {"b": 1, "a": 2}}),
        ),
    )
    .await;
    assert_eq!(body(&response)["data"]["params"], json!(["a", "b"]));

    // Not in `supported_actions`: the shim refuses it as an unknown action (200)
    // before the plugin's own validation runs.
    let response = exec(&worker, call("reboot", json!({}))).await;
    assert_eq!(response.status, Status::Error);
    assert_eq!(response.code, Some(200), "{response:?}");
    assert!(
        message(&response).contains("unknown action 'reboot'"),
        "{response:?}"
    );

    let meta = worker
        .request(RequestType::Meta, None, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(body(&meta)["actions"], json!(["describe", "hello"]));
    stop(worker).await;
}

#[tokio::test]
async fn wingman_lifecycle_success_builds_the_action_object() {
    let fx = Fixture::new(&[("recorder.py", RECORDER)]);
    let worker = start(&fx.launch("recorder:Recorder", &[]));
    assert!(health(&worker).await.is_ok());

    // No `params` key: the remaining args are the params.
    let response = exec(
        &worker,
        with_config(
            call(
                "change",
                json!({"target": "web-1", "metadata": {"by": "ops"}, "size": 3}),
            ),
            json!({"region": "eu"}),
        ),
    )
    .await;
    assert_eq!(response.status, Status::Ok, "{response:?}");
    let data = &body(&response)["data"];
    assert_eq!(data["target"], "web-1");
    assert_eq!(data["params"], json!({"size": 3}));
    assert_eq!(data["metadata"], json!({"by": "ops"}));
    assert_eq!(
        data["config"],
        json!({"region": "eu"}),
        "constructor got the config"
    );
    assert_eq!(body(&response)["success"], true);
    assert_eq!(
        journal(&worker).await,
        json!(["pre:change", "execute:change", "post:change", "pre:journal"])
    );
    stop(worker).await;
}

#[tokio::test]
async fn wingman_pre_validation_failure_never_executes() {
    let fx = Fixture::new(&[("recorder.py", RECORDER)]);
    let worker = start(&fx.launch("recorder:Recorder", &[]));
    let response = exec(
        &worker,
        call(
            "change",
            json!({"target": "prod-db", "params": {"reject": true}}),
        ),
    )
    .await;
    assert_eq!(response.status, Status::Error, "{response:?}");
    assert_eq!(response.code, Some(422));
    assert_eq!(message(&response), "refusing to touch prod-db");
    assert_eq!(body(&response)["success"], false);
    assert_eq!(body(&response)["error_code"], "VALIDATION_ERROR");
    assert_eq!(journal(&worker).await, json!(["pre:change", "pre:journal"]));
    stop(worker).await;
}

#[tokio::test]
async fn wingman_execute_error_is_execution_error_and_rolls_back() {
    let fx = Fixture::new(&[("recorder.py", RECORDER)]);
    let worker = start(&fx.launch("recorder:Recorder", &[]));
    let response = exec(
        &worker,
        call(
            "change",
            json!({"target": "x", "params": {"explode": true}}),
        ),
    )
    .await;
    assert_eq!(response.status, Status::Error, "{response:?}");
    assert_eq!(response.code, Some(500));
    assert_eq!(body(&response)["error_code"], "EXECUTION_ERROR");
    assert!(
        message(&response).contains("RuntimeError: the disk caught fire"),
        "{response:?}"
    );
    assert_eq!(body(&response)["rolled_back"], true);
    assert_eq!(
        journal(&worker).await,
        json!([
            "pre:change",
            "execute:change",
            "rollback:none",
            "pre:journal"
        ])
    );
    let exit = stop(worker).await;
    assert!(
        exit.stderr_tail.contains("Traceback"),
        "traceback goes to stderr: {}",
        exit.stderr_tail
    );
}

#[tokio::test]
async fn wingman_post_validation_failure_rolls_back() {
    let fx = Fixture::new(&[("recorder.py", RECORDER)]);
    let worker = start(&fx.launch("recorder:Recorder", &[]));
    let response = exec(
        &worker,
        call(
            "change",
            json!({"target": "x", "params": {"bad_result": true}}),
        ),
    )
    .await;
    assert_eq!(response.status, Status::Error, "{response:?}");
    assert_eq!(body(&response)["error_code"], "VALIDATION_ERROR");
    assert_eq!(body(&response)["stage"], "validate_post");
    assert_eq!(body(&response)["rolled_back"], true);
    assert_eq!(
        body(&response)["data"]["status"],
        "error",
        "the result is kept"
    );
    assert_eq!(message(&response), "result status is error");
    assert_eq!(
        journal(&worker).await,
        json!([
            "pre:change",
            "execute:change",
            "post:change",
            "rollback:error",
            "pre:journal"
        ])
    );
    stop(worker).await;
}

// --- Migraine functions ----------------------------------------------------------

#[tokio::test]
async fn migraine_example_runs_unmodified() {
    let fx = Fixture::new(&[]);
    let spec = fx.example(
        "migraine-log-processor",
        "log_processor:process_log",
        &[("command-output", "log_processor:process_log")],
    );
    let worker = start(&spec);
    assert_eq!(body(&health(&worker).await)["style"], "function");

    let response = exec(
        &worker,
        with_config(
            call(
                "command-output",
                json!({"output": "Build completed", "command": {"original": "npm run build"},
                       "workflow": {"name": "deploy-app"}, "timestamp": "T1"}),
            ),
            json!({"log_file": "./build.log", "max_file_size": "10MB"}),
        ),
    )
    .await;
    assert_eq!(response.status, Status::Ok, "{response:?}");
    assert_eq!(body(&response)["processed_lines"], 1);
    let log = std::fs::read_to_string(fx.work_dir.join("build.log")).unwrap();
    assert_eq!(log, "[T1] [deploy-app] [npm run build]: Build completed\n");

    let response = exec(
        &worker,
        with_config(
            call("command-output", json!({})),
            json!({"log_file": "../../escape.log"}),
        ),
    )
    .await;
    assert_eq!(
        response.status,
        Status::Error,
        "status:error is never success"
    );
    assert_eq!(response.code, Some(500));
    assert!(
        message(&response).contains("inside the work directory"),
        "{response:?}"
    );
    assert_eq!(body(&response)["processed_lines"], 0);
    stop(worker).await;
}

const FUNCTIONS: &str = r#"
import builtins, os, sys
builtins.__dict__["plugd_test_loads"] = builtins.__dict__.get("plugd_test_loads", 0) + 1
CALLS = 0

def count(plugin_config, context):
    global CALLS
    CALLS += 1
    return {"calls": CALLS, "loads": builtins.plugd_test_loads}

def echo(plugin_config, context):
    return {"config": plugin_config, "context": context}

def refuse(plugin_config, context):
    return {"success": False, "error": "disk full", "code": 507}

def refuse_plain(plugin_config, context):
    return {"success": False}

def crash(plugin_config, context):
    raise KeyError("missing-thing")

def leave(plugin_config, context):
    sys.exit(3)

def chatty(plugin_config, context):
    print("print from the plugin")
    sys.stdout.write("sys.stdout.write\n")
    os.write(1, b"raw write to fd 1\n")
    os.system("echo from a child process")
    return {"quiet": True}

def unsendable(plugin_config, context):
    return {"handle": object()}

def big(plugin_config, context):
    return {"text": "x" * context["size"]}

async def later(plugin_config, context):
    import asyncio
    await asyncio.sleep(0)
    return {"awaited": context["n"]}
"#;

const OTHER: &str = r#"
def on_pre_command(plugin_config, context):
    return {"handled_by": "other", "event": context.get("extension_point") or context["action"]}
"#;

#[tokio::test]
async fn migraine_functions_report_failures_and_keep_serving() {
    let fx = Fixture::new(&[("funcs.py", FUNCTIONS)]);
    let handlers = [
        ("refuse", "funcs:refuse"),
        ("refuse_plain", "funcs:refuse_plain"),
        ("crash", "funcs:crash"),
        ("leave", "funcs:leave"),
        ("unsendable", "funcs:unsendable"),
        ("later", "funcs:later"),
    ];
    let worker = start(&fx.launch("funcs:echo", &handlers));

    // Handlers declare the actions: others are refused, the entry point
    // answers to its own name.
    let response = exec(
        &worker,
        with_config(call("anything", json!({"k": "v"})), json!({"limit": 5})),
    )
    .await;
    assert_eq!(response.code, Some(200), "{response:?}");
    let response = exec(
        &worker,
        with_config(call("echo", json!({"k": "v"})), json!({"limit": 5})),
    )
    .await;
    assert_eq!(
        response.status,
        Status::Ok,
        "the entry point answers to its own name"
    );
    assert_eq!(body(&response)["config"], json!({"limit": 5}));
    let context = &body(&response)["context"];
    assert_eq!(context["k"], "v");
    assert_eq!(context["action"], "echo");
    assert_eq!(context["plugin_config"], json!({"limit": 5}));

    let response = exec(&worker, call("refuse", json!({}))).await;
    assert_eq!((response.status, response.code), (Status::Error, Some(507)));
    assert_eq!(message(&response), "disk full");
    assert_eq!(body(&response)["success"], false);

    let response = exec(&worker, call("refuse_plain", json!({}))).await;
    assert_eq!((response.status, response.code), (Status::Error, Some(500)));
    assert!(
        message(&response).contains("reported failure"),
        "{response:?}"
    );

    let response = exec(&worker, call("crash", json!({}))).await;
    assert_eq!((response.status, response.code), (Status::Error, Some(500)));
    assert_eq!(message(&response), "KeyError: 'missing-thing'");

    let response = exec(&worker, call("leave", json!({}))).await;
    assert_eq!((response.status, response.code), (Status::Error, Some(500)));
    assert!(message(&response).contains("SystemExit"), "{response:?}");

    let response = exec(&worker, call("unsendable", json!({}))).await;
    assert_eq!(response.status, Status::Error);
    assert!(
        message(&response).contains("cannot be sent as JSON"),
        "{response:?}"
    );

    let response = exec(&worker, call("later", json!({"n": 7}))).await;
    assert_eq!(
        body(&response),
        &json!({"awaited": 7}),
        "async functions are awaited"
    );

    assert!(exec(&worker, call("echo", json!({}))).await.is_ok());
    assert_eq!(worker.stats().violations(), 0);
    stop(worker).await;
}

#[tokio::test]
async fn handlers_route_actions_and_events_to_other_modules() {
    let fx = Fixture::new(&[("funcs.py", FUNCTIONS), ("hooks/other.py", OTHER)]);
    let worker = start(&fx.launch(
        "funcs:echo",
        &[("pre-command", "hooks.other:on_pre_command")],
    ));
    let response = exec(&worker, call("pre-command", json!({}))).await;
    assert_eq!(
        body(&response),
        &json!({"handled_by": "other", "event": "pre-command"})
    );

    let mut by_event = call("run", json!({}));
    by_event.extension_point = Some("pre-command".into());
    let response = exec(&worker, by_event).await;
    assert_eq!(
        body(&response),
        &json!({"handled_by": "other", "event": "pre-command"})
    );
    stop(worker).await;
}

#[tokio::test]
async fn module_is_imported_once_across_many_calls() {
    let fx = Fixture::new(&[("funcs.py", FUNCTIONS)]);
    // The same module named twice must still be imported once.
    let worker = start(&fx.launch("funcs:count", &[("echo", "funcs:echo")]));
    for n in 1..=200 {
        let response = exec(&worker, call("count", json!({}))).await;
        assert_eq!(
            body(&response),
            &json!({"calls": n, "loads": 1}),
            "call {n}"
        );
    }
    stop(worker).await;
}

#[tokio::test]
async fn plugin_output_never_reaches_the_protocol_stream() {
    let fx = Fixture::new(&[("funcs.py", FUNCTIONS)]);
    let worker = start(&fx.launch("funcs:chatty", &[]));
    for _ in 0..3 {
        let response = exec(&worker, call("chatty", json!({}))).await;
        assert_eq!(body(&response), &json!({"quiet": true}), "{response:?}");
    }
    assert_eq!(worker.stats().violations(), 0, "{:?}", worker.stats());
    let exit = stop(worker).await;
    for text in [
        "print from the plugin",
        "sys.stdout.write",
        "raw write to fd 1",
        "from a child process",
    ] {
        assert!(
            exit.stderr_tail.contains(text),
            "{text}: {}",
            exit.stderr_tail
        );
    }
}

// --- OmniScope SDK class ---------------------------------------------------------

#[tokio::test]
async fn omniscope_class_example_runs_and_reports_errors() {
    let fx = Fixture::new(&[]);
    let worker = start(&fx.example(
        "omniscope-sdk-class",
        "outlier_detector:OutlierDetector",
        &[],
    ));
    assert_eq!(body(&health(&worker).await)["style"], "omniscope");

    let mut detect = ExecCall {
        input_data: Some(json!([10, 12, 11, 13, 12, 95])),
        parameters: Some(Map::from_iter([("method".to_string(), json!("iqr"))])),
        extension_point: Some("analysis".into()),
        ..ExecCall::default()
    };
    detect.context = Some(
        json!({"plugin_id": "outlier-detector", "plugin_name": "Outliers",
                                 "config": {"method": "zscore", "iqr_k": 1.5, "z_threshold": 3.0},
                                 "permissions": ["read_data"], "trace_id": "t1"}),
    );
    let response = exec(&worker, detect.clone()).await;
    assert_eq!(response.status, Status::Ok, "{response:?}");
    let result = body(&response);
    assert_eq!(
        result["data"]["outliers"],
        json!([{"index": 5, "value": 95.0}])
    );
    assert_eq!(
        result["metadata"]["plugin_id"], "outlier-detector",
        "context reached __init__"
    );
    assert_eq!(result["errors"], json!([]));

    // No `method` parameter: the config default (zscore, limit 3) applies; with six
    // values no point can reach |z| > 3 here, so nothing is flagged.
    detect.parameters = None;
    let response = exec(&worker, detect.clone()).await;
    assert_eq!(body(&response)["metadata"]["method"], "zscore");

    detect.input_data = Some(json!([1, "two", 3, 4]));
    let response = exec(&worker, detect).await;
    assert_eq!(
        response.status,
        Status::Error,
        "non-empty errors is an error"
    );
    assert_eq!(message(&response), "data[1] = 'two' is not a finite number");
    assert_eq!(
        body(&response)["errors"],
        json!(["data[1] = 'two' is not a finite number"])
    );
    stop(worker).await;
}

// --- start-up failures ---------------------------------------------------------

#[tokio::test]
async fn import_error_is_reported_by_health_and_exec() {
    let fx = Fixture::new(&[(
        "broken.py",
        "import missing_dependency_xyz\n\ndef run(c, x):\n    return {}\n",
    )]);
    let spec = fx.launch("broken:run", &[]);
    let opts = CallOptions {
        timeout: TIMEOUT,
        health_timeout: TIMEOUT,
        shutdown_grace: Duration::from_secs(5),
        limits: Limits::default(),
    };
    let report = call_once(&spec, &call("run", json!({})), &opts).await;
    let probe = report.health.expect("health answered");
    assert_eq!(probe.status, Status::Error);
    assert_eq!(
        message(&probe),
        "cannot load broken:run: ModuleNotFoundError: No module named 'missing_dependency_xyz'"
    );
    assert!(message(&report.response).contains("No module named 'missing_dependency_xyz'"));
    assert!(
        report.stderr_tail.contains("Traceback"),
        "{}",
        report.stderr_tail
    );

    let worker = start(&spec);
    let response = exec(&worker, call("run", json!({}))).await;
    assert_eq!(response.status, Status::Error);
    assert!(message(&response).contains("missing_dependency_xyz"));
    stop(worker).await;

    for (entry, expect) in [
        (
            "broken_attr:nope",
            "module 'broken_attr' has no attribute 'nope'",
        ),
        (
            "broken_attr:VALUE",
            "broken_attr:VALUE is not a function or class (it is of type int)",
        ),
        ("broken_attr:Plain", "neither validate_pre/execute"),
    ] {
        let fx = Fixture::new(&[("broken_attr.py", "VALUE = 3\nclass Plain:\n    pass\n")]);
        let worker = start(&fx.launch(entry, &[]));
        let probe = health(&worker).await;
        assert_eq!(probe.status, Status::Error, "{entry}");
        assert!(message(&probe).contains(expect), "{entry}: {probe:?}");
        stop(worker).await;
    }
}

// --- the wire, byte by byte ----------------------------------------------------

/// Raw lines in, raw lines out: what the shim writes, without a `Worker` between.
struct Wire {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Wire {
    fn new(spec: &LaunchSpec) -> Wire {
        let mut child = spawn(spec).unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Wire {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, line: &[u8]) -> Value {
        self.stdin.write_all(line).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        let line = tokio::time::timeout(TIMEOUT, self.stdout.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("an answer, not EOF");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }
}

#[tokio::test]
async fn bad_requests_get_taxonomy_codes() {
    let fx = Fixture::new(&[("funcs.py", FUNCTIONS)]);
    let mut spec = fx.launch("funcs:big", &[]);
    spec.set_env("OMNIFLOW_PLUGIN_MAX_LINE", "1024");
    let mut wire = Wire::new(&spec);

    let r = wire.send(b"{not json").await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (Value::Null, json!(codes::MALFORMED_JSON)),
        "{r}"
    );
    let r = wire.send(br#"{"id":"m1","type":"exec","payload":{"#).await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (json!("m1"), json!(codes::MALFORMED_JSON)),
        "id sniffed: {r}"
    );
    let r = wire.send(b"[1,2]").await;
    assert_eq!(r["code"], codes::MALFORMED_JSON);

    let long = format!(
        r#"{{"id":"big1","type":"exec","payload":{{"args":{{"size":1,"pad":"{}"}}}}}}"#,
        "y".repeat(5000)
    );
    let r = wire.send(long.as_bytes()).await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (json!("big1"), json!(codes::LINE_TOO_LONG)),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("OMNIFLOW_PLUGIN_MAX_LINE=1024")
    );

    // After discarding the long line, the next request is read from its start.
    let r = wire
        .send(br#"{"id":"ok1","type":"exec","payload":{"args":{"size":3}}}"#)
        .await;
    assert_eq!(
        r,
        json!({"id": "ok1", "status": "ok", "code": 0, "body": {"text": "xxx"}})
    );

    // An answer over the limit becomes a 101 error instead of an oversized line.
    let r = wire
        .send(br#"{"id":"ok2","type":"exec","payload":{"args":{"size":4000}}}"#)
        .await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (json!("ok2"), json!(codes::LINE_TOO_LONG)),
        "{r}"
    );

    let r = wire
        .send(br#"{"id":"u1","type":"explode","payload":null}"#)
        .await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (json!("u1"), json!(codes::UNSUPPORTED_ACTION))
    );
    let r = wire.send(br#"{"type":"health"}"#).await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (Value::Null, json!(codes::MISSING_FIELD))
    );
    let r = wire.send(br#"{"id":"t1","payload":null}"#).await;
    assert_eq!(
        (r["id"].clone(), r["code"].clone()),
        (json!("t1"), json!(codes::MISSING_FIELD))
    );
    let r = wire
        .send(br#"{"id":"p1","type":"exec","payload":[1]}"#)
        .await;
    assert_eq!(r["code"], codes::INVALID_ARGS);
    let r = wire
        .send(br#"{"id":"a1","type":"exec","payload":{"args":"x"}}"#)
        .await;
    assert_eq!(r["code"], codes::INVALID_ARGS);
    let r = wire
        .send(br#"{"id":"c1","type":"cancel","payload":{"id":"ok1"}}"#)
        .await;
    assert_eq!(r["status"], "error");
    assert!(r["message"].as_str().unwrap().contains("not cancellable"));
    let r = wire
        .send(br#"{"id":"h1","type":"health","payload":null}"#)
        .await;
    assert_eq!(r["status"], "ok");

    let r = wire
        .send(br#"{"id":"s1","type":"shutdown","payload":null}"#)
        .await;
    assert_eq!(
        r,
        json!({"id": "s1", "status": "ok", "code": 0, "body": {"status": "bye"}})
    );
    let eof = tokio::time::timeout(TIMEOUT, wire.stdout.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eof, None, "nothing after the shutdown answer");
    let status = tokio::time::timeout(TIMEOUT, wire.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn end_of_input_ends_the_shim_cleanly() {
    let fx = Fixture::new(&[("funcs.py", FUNCTIONS)]);
    let mut wire = Wire::new(&fx.launch("funcs:echo", &[]));
    let r = wire
        .send(br#"{"id":"h","type":"health","payload":null}"#)
        .await;
    assert_eq!(r["status"], "ok");
    drop(wire.stdin);
    let status = tokio::time::timeout(TIMEOUT, wire.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

// --- speed (measured, never asserted) --------------------------------------------

/// `cargo test -p plugd-runtime --release --test python_function -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, not a test: prints the warm-call latency"]
async fn warm_call_latency() {
    let fx = Fixture::new(&[(
        "echo.py",
        "def echo(plugin_config, context):\n    return context\n",
    )]);
    let worker = start(&fx.launch("echo:echo", &[]));
    assert!(health(&worker).await.is_ok());
    let payload = call("echo", json!({"message": "hello"})).to_payload();
    for _ in 0..200 {
        worker
            .request(RequestType::Exec, Some(payload.clone()), TIMEOUT)
            .await
            .unwrap();
    }
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        let response = worker
            .request(RequestType::Exec, Some(payload.clone()), TIMEOUT)
            .await
            .unwrap();
        samples.push(started.elapsed());
        assert!(response.is_ok());
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_micros();
    println!(
        "python-function warm echo over 2000 calls: p50 {} us, p90 {} us, p99 {} us",
        p(0.5),
        p(0.9),
        p(0.99)
    );
    stop(worker).await;
}
