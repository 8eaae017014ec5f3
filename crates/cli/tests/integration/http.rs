//! Stage7 container plugins (`http` runtime) through `plugd exec` and the
//! sandbox: each server gets its own loopback-only network, so two instances
//! of a server hard-coded to port 8080 run at once and the host cannot reach
//! either; inputs are checked before anything starts; a server that dies at
//! start is reported with its stderr; the Flask example runs end to end.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Env, example_package};

/// A stdlib server hard-coded to port 8080. `POST /execute` holds for
/// `hold` seconds and answers when it started and ended, and its pid.
const SERVER: &str = r#"import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

if len(sys.argv) > 1 and sys.argv[1] == "crash":
    raise SystemExit("fixture: the configuration file is missing")

class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("fixture: " + (fmt % args) + "\n")

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(200, {"status": "healthy"})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        started = time.time()
        time.sleep(float(req["inputs"]["hold"]["value"]))
        self.send(200, {"success": True, "outputs": {
            "started": started, "ended": time.time(), "pid": os.getpid(),
            "context": req["context"], "uid": os.getuid(),
        }})

HTTPServer(("127.0.0.1", 8080), Handler).serve_forever()
"#;

/// Installs the fixture as `id`, started by its Dockerfile's CMD (with `mode`
/// as an argument), enabled.
fn install_server(env: &Env, id: &str, mode: &str) {
    let dir = env.path(id);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "id": id,
        "verb": "HOLD",
        "name": id,
        "version": "1.0.0",
        "description": "test fixture: a server on port 8080",
        "language": "container",
        "inputDefinitions": [
            {"name": "hold", "required": true, "type": "number", "description": "seconds to hold"}
        ],
        "container": {
            "dockerfile": "Dockerfile",
            "ports": [{"container": 8080, "host": 0}],
            "healthCheck": {"path": "/health", "interval": "100ms", "timeout": "2s", "retries": 30}
        },
        "api": {"endpoint": "/execute", "method": "POST", "timeout": 10000}
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM python:3.11-slim\nCOPY . /app\nWORKDIR /app\nCMD [\"python3\", \"server.py\", \"{mode}\"]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("server.py"), SERVER).unwrap();
    env.ok(&["install", "--enable", dir.to_str().unwrap()]);
}

/// Runs `plugd --json exec` and returns its exit code and parsed output.
fn exec_json(env: &Env, id: &str, args: Value) -> (Option<i32>, Value) {
    let run = env.run(&["--json", "exec", id, "--args", &args.to_string()]);
    let out = run.json();
    (run.code, out)
}

#[test]
fn two_servers_on_port_8080_run_at_once_and_the_host_cannot_reach_them() {
    let env = Env::new();
    install_server(&env, "holder", "ok");
    // Only meaningful when nothing on the host uses 8080 already.
    let host_port_free = std::net::TcpListener::bind("127.0.0.1:8080").is_ok();

    let args = json!({"hold": 2.0}).to_string();
    let spawn = || {
        env.command(&["--json", "exec", "holder", "--args", &args])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    let second = spawn();
    if host_port_free {
        // While both hold their call, port 8080 on the host is still unused.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            std::net::TcpStream::connect("127.0.0.1:8080").is_err(),
            "a server in a private network namespace was reachable from the host"
        );
    }
    let outputs: Vec<Value> = [first, second]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "exec failed: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["response"]["status"], "ok", "{value}");
            value["response"]["body"]["outputs"].clone()
        })
        .collect();
    let (a, b) = (&outputs[0], &outputs[1]);
    let overlap = a["started"].as_f64().unwrap() < b["ended"].as_f64().unwrap()
        && b["started"].as_f64().unwrap() < a["ended"].as_f64().unwrap();
    assert!(
        overlap,
        "both servers served port 8080 at the same time: {a} {b}"
    );
    // Sandboxed as every plugin: nobody's uid.
    assert_eq!(a["uid"], 65534, "{a}");
    assert_eq!(a["context"]["plugin_id"], "holder");
    assert_eq!(a["context"]["version"], "1.0.0");
    assert!(
        a["context"]["trace_id"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
}

#[test]
fn inputs_are_checked_before_the_server_starts() {
    let env = Env::new();
    install_server(&env, "holder", "ok");
    let (code, out) = exec_json(&env, "holder", json!({}));
    assert_ne!(code, Some(0));
    assert_eq!(out["response"]["code"], 201, "{out}");
    let msg = out["response"]["message"].as_str().unwrap();
    assert!(msg.contains("`hold`") && msg.contains("missing"), "{msg}");
    assert_eq!(out["stderr_tail"], "", "no server ran: {out}");

    let (_, out) = exec_json(&env, "holder", json!({"hold": "long"}));
    assert_eq!(out["response"]["code"], 201, "{out}");
    assert!(
        out["response"]["message"]
            .as_str()
            .unwrap()
            .contains("number")
    );
}

#[test]
fn a_server_that_dies_at_start_is_reported_with_its_stderr() {
    let env = Env::new();
    install_server(&env, "broken", "crash");
    let (code, out) = exec_json(&env, "broken", json!({"hold": 0}));
    assert_ne!(code, Some(0));
    let msg = out["response"]["message"].as_str().unwrap();
    assert!(msg.contains("exited with status 1"), "{msg}");
    assert!(msg.contains("the configuration file is missing"), "{msg}");
    // The history records the failure.
    let history = env.json(&["history", "broken"]);
    assert!(
        history
            .to_string()
            .contains("configuration file is missing"),
        "{history}"
    );
}

#[test]
fn the_flask_example_converts_units_end_to_end() {
    let env = Env::new();
    let pkg = example_package("stage7-flask-service", env.scratch.path());
    env.ok(&["install", "--enable", pkg.to_str().unwrap()]);
    let (code, out) = exec_json(
        &env,
        "unit-converter",
        json!({"value": 5, "from_unit": "km", "to_unit": "mi"}),
    );
    assert_eq!(code, Some(0), "{out}");
    let outputs = &out["response"]["body"]["outputs"];
    assert_eq!(outputs["formatted"], "5 km = 3.1069 mi", "{out}");
    assert_eq!(outputs["dimension"], "length");
    assert!((outputs["result"].as_f64().unwrap() - 3.106_855_961).abs() < 1e-6);
    // `python` in the Dockerfile's CMD ran the plugin's own virtualenv, where
    // install put flask from requirements.txt.
    let log = out["stderr_tail"].as_str().unwrap();
    assert!(
        log.contains("python environment") && log.contains("/envs/unit-converter/1.0.0"),
        "{log}"
    );

    // The service's own 400 comes through with its message and body.
    let (code, out) = exec_json(
        &env,
        "unit-converter",
        json!({"value": 1, "from_unit": "kg", "to_unit": "m"}),
    );
    assert_ne!(code, Some(0));
    assert_eq!(out["response"]["code"], 400, "{out}");
    assert!(
        out["response"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot convert kg (mass) to m (length)"),
        "{out}"
    );
    assert_eq!(out["response"]["body"]["success"], false);

    // inputDefinitions: checked by plugd, the server never starts.
    let (_, out) = exec_json(&env, "unit-converter", json!({"value": 1, "to_unit": "m"}));
    assert_eq!(out["response"]["code"], 201, "{out}");
    assert!(
        out["response"]["message"]
            .as_str()
            .unwrap()
            .contains("`from_unit`")
    );
}
