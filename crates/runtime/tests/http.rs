//! The `http` runtime against a real server: a stdlib `http.server` fixture
//! started with [`Isolation::Direct`] on a free port, driven through
//! [`HttpInstance`] and [`http_call_once`] (the `plugd exec` path). The sandboxed
//! path (private loopback, port 8080 twice at once) is tested through the
//! binary in the CLI's integration tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use plugd_runtime::protocol::{ExecCall, Status, codes};
use plugd_runtime::{
    HttpError, HttpInstance, HttpPlugin, HttpSettings, HttpTarget, InputSpec, Interpreters,
    Isolation, dockerfile_command, http_call_once, http_launch,
};
use serde_json::{Value, json};

/// The fixture: `server.py MODE`, listening on `$PORT`. Start modes: `ok`,
/// `slow` (listens after 0.5 s), `unhealthy` (health answers 503), `crash`
/// (exits with a message before listening). Calls behave by the `mode` input.
const SERVER: &str = r#"import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(os.environ["PORT"])
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
print("fixture starting in mode " + mode, flush=True)
if mode == "crash":
    raise SystemExit("fixture: cannot load the model weights")
if mode == "slow":
    time.sleep(0.5)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("fixture: " + (fmt % args) + "\n")

    def send(self, status, body, ctype="application/json", length=True):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/health":
            return self.send(404, {"error": "no such path"})
        if mode == "unhealthy":
            return self.send(503, {"status": "starting"})
        self.send(200, {"status": "healthy", "pid": os.getpid()})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n))
        inputs = req["inputs"]
        what = inputs.get("mode", {}).get("value", "echo")
        if what == "sleep":
            time.sleep(float(inputs["seconds"]["value"]))
        if what == "fail":
            return self.send(200, {"success": False, "error": "the fixture was asked to fail"})
        if what == "status":
            code = int(inputs["code"]["value"])
            return self.send(code, {"success": False, "error": "status %d from the fixture" % code})
        if what == "notjson":
            return self.send(200, b"<html>oops</html>", "text/html")
        if what == "big":
            return self.send(200, {"success": True, "outputs": {"blob": "x" * 300000}})
        if what == "bigstream":
            return self.send(200, json.dumps({"success": True, "outputs": {"blob": "x" * 300000}}).encode(), length=False)
        if what == "crash":
            sys.stderr.write("fixture: crashing on purpose\n")
            sys.stderr.flush()
            os._exit(3)
        self.send(200, {"success": True, "outputs": {
            "inputs": inputs, "context": req["context"], "pid": os.getpid(), "cwd": os.getcwd(),
        }})

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

fn interpreters() -> &'static Interpreters {
    static FOUND: OnceLock<Interpreters> = OnceLock::new();
    FOUND.get_or_init(Interpreters::discover)
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Fixture {
    dir: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.py"), SERVER).unwrap();
        Fixture {
            dir,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// The fixture started with `argv` (default `python server.py MODE`).
    fn plugin_with(&self, argv: &[String], tweak: impl FnOnce(&mut HttpSettings)) -> HttpPlugin {
        let mut settings = HttpSettings {
            port: free_port(),
            health_interval: Duration::from_millis(50),
            health_timeout: Duration::from_secs(1),
            health_retries: 3,
            timeout: Duration::from_secs(5),
            ..HttpSettings::default()
        };
        tweak(&mut settings);
        let spec = http_launch(
            &HttpTarget {
                plugin_id: "fixture",
                version: "1.0.0",
                argv,
                plugin_dir: self.dir.path(),
                work_dir: self.work.path(),
                port: settings.port,
                environment: &BTreeMap::new(),
            },
            interpreters(),
        )
        .unwrap();
        HttpPlugin {
            plugin_id: "fixture".into(),
            version: "1.0.0".into(),
            spec,
            settings,
            inputs: vec![
                InputSpec {
                    name: "mode".into(),
                    value_type: Some("string".into()),
                    required: false,
                },
                InputSpec {
                    name: "text".into(),
                    value_type: Some("string".into()),
                    required: true,
                },
            ],
            stop_grace: Duration::from_secs(2),
        }
    }

    fn plugin(&self, mode: &str, tweak: impl FnOnce(&mut HttpSettings)) -> HttpPlugin {
        let argv = ["python".to_string(), "server.py".into(), mode.into()];
        self.plugin_with(&argv, tweak)
    }
}

fn call(args: Value) -> ExecCall {
    let mut call = ExecCall::new("run", args.as_object().unwrap().clone());
    call.context = Some(json!({"trace_id": "trace-1", "plugin_id": "fixture", "version": "1.0.0"}));
    call
}

fn message(r: &plugd_runtime::protocol::Response) -> &str {
    r.message.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn a_warm_instance_answers_many_calls_from_one_process() {
    let fx = Fixture::new();
    let instance = HttpInstance::new(fx.plugin("ok", |_| {}), Isolation::Direct);
    let healthy = instance.start().await.unwrap();
    assert_eq!(healthy.body["status"], "healthy");

    let first = instance.call(&call(json!({"text": "héllo", "n": 2}))).await;
    assert_eq!(first.status, Status::Ok, "{first:?}");
    let outputs = &first.body.as_ref().unwrap()["outputs"];
    assert_eq!(
        outputs["inputs"]["text"],
        json!({"value": "héllo", "valueType": "string", "args": {}})
    );
    assert_eq!(outputs["inputs"]["n"]["valueType"], "number");
    assert_eq!(
        outputs["context"],
        json!({"trace_id": "trace-1", "plugin_id": "fixture", "version": "1.0.0"})
    );
    // Docker images run from the directory their files were copied to.
    assert_eq!(
        Path::new(outputs["cwd"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        fx.dir.path().canonicalize().unwrap()
    );

    let second = instance.call(&call(json!({"text": "again"}))).await;
    assert_eq!(second.status, Status::Ok, "{second:?}");
    assert_eq!(
        second.body.unwrap()["outputs"]["pid"],
        outputs["pid"],
        "the second call reached the same warm server"
    );
    assert_eq!(instance.starts().await, 1);

    let stop = instance.stop().await.expect("it was running");
    assert!(!stop.killed, "SIGTERM was enough: {stop:?}");
    assert!(
        stop.log_tail.contains("fixture starting"),
        "{}",
        stop.log_tail
    );
    assert!(stop.log_tail.contains("POST /execute"), "{}", stop.log_tail);
    assert!(instance.stop().await.is_none(), "stopped twice");
}

#[tokio::test]
async fn a_slow_server_is_polled_until_healthy() {
    let fx = Fixture::new();
    let instance = HttpInstance::new(fx.plugin("slow", |_| {}), Isolation::Direct);
    let healthy = instance.start().await.unwrap();
    assert!(healthy.after >= Duration::from_millis(400), "{healthy:?}");
    instance.stop().await;
}

#[tokio::test]
async fn a_server_that_never_gets_healthy_fails_with_its_last_answer_and_log() {
    let fx = Fixture::new();
    let plugin = fx.plugin("unhealthy", |_| {});
    let started = std::time::Instant::now();
    let report = http_call_once(&plugin, &Isolation::Direct, &call(json!({"text": "x"}))).await;
    let msg = message(&report.response);
    assert_eq!(report.response.code, Some(codes::INTERNAL), "{msg}");
    assert!(msg.contains("not healthy within"), "{msg}");
    assert!(msg.contains("HTTP 503"), "the last check is quoted: {msg}");
    assert!(msg.contains("fixture: "), "the server log is quoted: {msg}");
    assert!(report.health.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "gave up after the start-up deadline"
    );
    // The server was stopped, not left behind: its port is free again.
    std::net::TcpListener::bind(("127.0.0.1", plugin.settings.port)).expect("port released");
}

#[tokio::test]
async fn a_server_that_exits_at_start_is_reported_with_its_stderr() {
    let fx = Fixture::new();
    let plugin = fx.plugin("crash", |_| {});
    let instance = HttpInstance::new(plugin, Isolation::Direct);
    let err = instance.start().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HttpError::ExitedAtStart { .. }), "{msg}");
    assert!(msg.contains("exited with status 1"), "{msg}");
    assert!(msg.contains("cannot load the model weights"), "{msg}");
    assert_eq!(err.code(), codes::INTERNAL);
}

#[tokio::test]
async fn a_call_past_the_api_timeout_is_301() {
    let fx = Fixture::new();
    let plugin = fx.plugin("ok", |s| s.timeout = Duration::from_millis(300));
    let report = http_call_once(
        &plugin,
        &Isolation::Direct,
        &call(json!({"text": "x", "mode": "sleep", "seconds": 10})),
    )
    .await;
    assert_eq!(
        report.response.code,
        Some(codes::TIMEOUT),
        "{:?}",
        report.response
    );
    assert!(message(&report.response).contains("api.timeout"));
    assert!(
        report.duration < Duration::from_secs(8),
        "{:?}",
        report.duration
    );
}

#[tokio::test]
async fn plugin_errors_keep_their_http_code_and_body() {
    let fx = Fixture::new();
    let instance = HttpInstance::new(fx.plugin("ok", |_| {}), Isolation::Direct);
    for (status, code) in [(422, 422), (400, 400), (413, 413), (503, 500), (418, 500)] {
        let r = instance
            .call(&call(
                json!({"text": "x", "mode": "status", "code": status}),
            ))
            .await;
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.code, Some(code), "HTTP {status}: {r:?}");
        assert!(
            message(&r).contains(&format!("status {status} from the fixture")),
            "{r:?}"
        );
        assert_eq!(r.body.unwrap()["success"], false);
    }

    let r = instance
        .call(&call(json!({"text": "x", "mode": "fail"})))
        .await;
    assert_eq!(r.status, Status::Error, "success:false is never success");
    assert_eq!(r.code, Some(500));
    assert!(
        message(&r).contains("the fixture was asked to fail"),
        "{r:?}"
    );
    assert_eq!(r.meta.unwrap()["origin"], "plugin");

    let r = instance
        .call(&call(json!({"text": "x", "mode": "notjson"})))
        .await;
    assert_eq!(r.code, Some(codes::MALFORMED_JSON), "{r:?}");
    assert!(message(&r).contains("<html>oops"), "{r:?}");

    for mode in ["big", "bigstream"] {
        let r = instance
            .call(&call(json!({"text": "x", "mode": mode})))
            .await;
        assert_eq!(r.code, Some(codes::LINE_TOO_LONG), "{mode}: {r:?}");
    }
    // None of that hurt the server.
    let r = instance.call(&call(json!({"text": "x"}))).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(instance.starts().await, 1);
    instance.stop().await;
}

#[tokio::test]
async fn bad_inputs_are_refused_before_anything_starts() {
    let fx = Fixture::new();
    // A start command that could not even run: nothing may be launched.
    let mut plugin = fx.plugin("ok", |_| {});
    plugin.spec.program = fx.dir.path().join("does-not-exist");

    let report = http_call_once(&plugin, &Isolation::Direct, &call(json!({"mode": "x"}))).await;
    assert_eq!(
        report.response.code,
        Some(codes::INVALID_ARGS),
        "{:?}",
        report.response
    );
    assert!(
        message(&report.response).contains("`text`"),
        "{:?}",
        report.response
    );
    assert!(report.exit.is_none(), "no process was started");

    let report = http_call_once(&plugin, &Isolation::Direct, &call(json!({"text": 5}))).await;
    assert_eq!(report.response.code, Some(codes::INVALID_ARGS));
    let msg = message(&report.response);
    assert!(
        msg.contains("`text`") && msg.contains("string") && msg.contains("number"),
        "{msg}"
    );
    assert!(report.exit.is_none());
}

#[tokio::test]
async fn a_server_that_crashes_between_calls_is_restarted_on_the_next() {
    let fx = Fixture::new();
    let instance = HttpInstance::new(fx.plugin("ok", |_| {}), Isolation::Direct);
    let first = instance.call(&call(json!({"text": "x"}))).await;
    let pid = first.body.unwrap()["outputs"]["pid"].clone();

    let crash = instance
        .call(&call(json!({"text": "x", "mode": "crash"})))
        .await;
    assert_eq!(crash.status, Status::Error);
    assert_eq!(crash.code, Some(codes::INTERNAL), "{crash:?}");
    assert!(message(&crash).contains("crashing on purpose"), "{crash:?}");

    let after = instance.call(&call(json!({"text": "x"}))).await;
    assert_eq!(after.status, Status::Ok, "{after:?}");
    assert_ne!(after.body.unwrap()["outputs"]["pid"], pid, "a new server");
    assert_eq!(instance.starts().await, 2);
    instance.stop().await;
}

#[tokio::test]
async fn exec_path_reports_health_exit_and_log() {
    let fx = Fixture::new();
    let plugin = fx.plugin("ok", |_| {});
    let report = http_call_once(&plugin, &Isolation::Direct, &call(json!({"text": "x"}))).await;
    assert_eq!(report.response.status, Status::Ok, "{:?}", report.response);
    assert_eq!(report.health.unwrap().body.unwrap()["status"], "healthy");
    let exit = report.exit.expect("it ran and was stopped");
    assert!(!exit.killed);
    assert!(
        report.stderr_tail.contains("POST /execute"),
        "{}",
        report.stderr_tail
    );
    // The port is free again: the server is gone.
    std::net::TcpListener::bind(("127.0.0.1", plugin.settings.port)).expect("port released");
}

#[tokio::test]
async fn the_dockerfile_cmd_starts_the_server() {
    let fx = Fixture::new();
    std::fs::write(
        fx.dir.path().join("Dockerfile"),
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\nEXPOSE 8080\n# the server\nCMD [\"python\", \"server.py\", \"ok\"]\n",
    )
    .unwrap();
    let argv = dockerfile_command(&fx.dir.path().join("Dockerfile")).unwrap();
    let plugin = fx.plugin_with(&argv, |_| {});
    assert_eq!(plugin.spec.program, interpreters().python);
    let report = http_call_once(&plugin, &Isolation::Direct, &call(json!({"text": "x"}))).await;
    assert_eq!(report.response.status, Status::Ok, "{:?}", report.response);
}
