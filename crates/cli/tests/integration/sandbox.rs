//! The sandbox as `plugd exec` applies it (DESIGN §5): the same plugin is
//! contained when `sandboxed` and free when `trusted`, every execution records
//! its accounting, and `plugd doctor` reports the layers.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::Env;

/// A plugin whose `probe` action tries one thing and reports what happened:
/// `{"ok": bool, "detail": "..."}`. The envelope is ok either way, so the test
/// sees the plugin's own view of the attempt.
const PROBE: &str = r#"import json, os, socket, sys
def reply(req, body):
    sys.stdout.write(json.dumps({"id": req["id"], "status": "ok", "code": 0, "body": body}) + "\n")
    sys.stdout.flush()
def attempt(args):
    what = args["what"]
    try:
        if what == "read":
            with open(args["path"]) as f:
                return {"ok": True, "detail": f.read()}
        if what == "write":
            with open(args["path"], "w") as f:
                f.write("x")
            return {"ok": True, "detail": "written"}
        if what == "connect":
            s = socket.create_connection(("127.0.0.1", int(args["port"])), timeout=2)
            s.sendall(b"hello")
            s.close()
            return {"ok": True, "detail": "connected"}
        if what == "allocate":
            block = bytearray(int(args["mib"]) * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            return {"ok": True, "detail": "allocated %d" % len(block)}
        if what == "whoami":
            return {"ok": True, "detail": "%d %s %s" % (os.getuid(), os.getcwd(), os.environ.get("PLUGD_PLUGIN_DIR"))}
    except Exception as e:
        return {"ok": False, "detail": "%s: %s" % (type(e).__name__, e)}
    return {"ok": False, "detail": "unknown probe " + what}
for line in sys.stdin:
    req = json.loads(line)
    if req["type"] == "health":
        reply(req, {"status": "healthy"})
    elif req["type"] == "shutdown":
        reply(req, None)
        break
    else:
        reply(req, attempt(req["payload"]["args"]))
"#;

/// Installs the probe plugin as `id` with `trust` (and optional extra manifest
/// lines), enabled.
fn install_probe(env: &Env, id: &str, trust: &str, extra: &str) {
    let dir = env.path(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.yaml"),
        format!(
            "id: {id}\nname: {id}\nversion: 1.0.0\nruntime: ndjson\nlanguage: python\nentry_point: plugin.py\ntrust_level: {trust}\nactions:\n  - name: probe\n{extra}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("plugin.py"), PROBE).unwrap();
    env.ok(&["install", "--enable", dir.to_str().unwrap()]);
}

/// Runs the probe and returns the plugin's `{"ok", "detail"}` answer.
fn probe(env: &Env, id: &str, args: Value) -> (bool, String) {
    let out = env.json(&["exec", id, "probe", "--args", &args.to_string()]);
    let body = &out["response"]["body"];
    (
        body["ok"]
            .as_bool()
            .unwrap_or_else(|| panic!("no probe answer: {out}")),
        body["detail"].as_str().unwrap_or_default().to_string(),
    )
}

/// A world-readable file outside every path the sandbox shows.
fn secret(env: &Env) -> PathBuf {
    let dir = env.path("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret.txt");
    std::fs::write(&path, "the-secret-value").unwrap();
    path
}

#[test]
fn a_sandboxed_plugin_cannot_read_host_files_that_a_trusted_one_can() {
    let env = Env::new();
    let path = secret(&env);
    install_probe(&env, "boxed", "sandboxed", "");
    install_probe(&env, "free", "trusted", "");
    let args = serde_json::json!({"what": "read", "path": path});

    let (ok, detail) = probe(&env, "boxed", args.clone());
    assert!(!ok, "sandboxed plugin read {path:?}: {detail}");
    assert!(!detail.contains("the-secret-value"));

    let (ok, detail) = probe(&env, "free", args);
    assert!(ok, "trusted plugin could not read {path:?}: {detail}");
    assert_eq!(detail, "the-secret-value");
}

#[test]
fn a_sandboxed_plugin_has_no_network_and_a_trusted_one_does() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    install_probe(&env, "boxed", "sandboxed", "");
    install_probe(&env, "free", "trusted", "");
    let args = serde_json::json!({"what": "connect", "port": port});

    let (ok, detail) = probe(&env, "boxed", args.clone());
    assert!(!ok, "sandboxed plugin reached 127.0.0.1:{port}: {detail}");
    assert!(
        listener.accept().is_err(),
        "the listener saw a connection from the sandboxed plugin"
    );

    let (ok, detail) = probe(&env, "free", args);
    assert!(ok, "trusted plugin could not connect: {detail}");
    let (mut conn, _) = listener.accept().expect("the trusted plugin's connection");
    conn.set_nonblocking(false).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello");
}

#[test]
fn the_plugin_dir_is_read_only_and_the_work_dir_is_writable() {
    let env = Env::new();
    install_probe(&env, "boxed", "sandboxed", "");
    let (ok, detail) = probe(
        &env,
        "boxed",
        serde_json::json!({"what": "write", "path": "/plugin/plugin.py"}),
    );
    assert!(!ok, "the plugin rewrote its own code: {detail}");
    let (ok, detail) = probe(
        &env,
        "boxed",
        serde_json::json!({"what": "write", "path": "/work/out.txt"}),
    );
    assert!(ok, "the work dir is not writable: {detail}");
    let (ok, detail) = probe(&env, "boxed", serde_json::json!({"what": "whoami"}));
    assert!(ok, "{detail}");
    let uid: u32 = detail.split(' ').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "a sandboxed plugin runs as root: {detail}");
    assert!(detail.contains(" /work /plugin"), "{detail}");
}

#[test]
fn a_plugin_over_its_memory_limit_is_stopped_and_the_history_says_why() {
    let env = Env::new();
    install_probe(&env, "hungry", "sandboxed", "resources:\n  memory: 64MB\n");
    let run = env.run(&[
        "exec",
        "hungry",
        "probe",
        "--args",
        r#"{"what":"allocate","mib":400}"#,
        "--json",
    ]);
    let out = run.json();
    let refused_inside = out["response"]["body"]["ok"] == Value::Bool(false);
    let killed = out["response"]["status"] == "error";
    assert!(
        refused_inside || killed,
        "400 MiB were allocated under a 64 MB limit: {out}"
    );
    let history = env.json(&["history", "hungry"]);
    let record = &history["executions"][0];
    if killed {
        // cgroups here: the kernel's OOM killer ends it, and plugd says which limit.
        assert_eq!(record["end_reason"], "memory", "{record}");
        assert_eq!(out["response"]["code"], 300, "{out}");
        let message = out["response"]["message"].as_str().unwrap();
        assert!(message.contains("more memory than its limit"), "{message}");
    }
}

#[test]
fn every_sandboxed_execution_records_cpu_memory_and_end_reason() {
    let env = Env::new();
    install_probe(&env, "boxed", "sandboxed", "");
    probe(&env, "boxed", serde_json::json!({"what": "whoami"}));
    let history = env.json(&["history", "boxed"]);
    let record = &history["executions"][0];
    assert!(record["cpu_time_us"].as_u64().unwrap() > 0, "{record}");
    assert!(
        record["peak_memory_bytes"].as_u64().unwrap() > 0,
        "{record}"
    );
    assert_eq!(record["end_reason"], "exit 0", "{record}");
    let text = env.ok(&["history", "boxed"]).stdout;
    assert!(text.contains("exit 0") && text.contains("CPU"), "{text}");
}

#[test]
fn doctor_lists_every_layer_with_its_state() {
    let env = Env::new();
    let out = env.json(&["doctor"]);
    let layers = out["layers"].as_array().expect("layers");
    assert!(layers.len() >= 10, "{out}");
    for layer in layers {
        assert!(layer["active"].is_boolean(), "{layer}");
        assert!(!layer["detail"].as_str().unwrap_or_default().is_empty());
    }
    let names: Vec<&str> = layers.iter().filter_map(|l| l["layer"].as_str()).collect();
    for expected in ["mount_namespace", "seccomp", "landlock_fs"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let text = env.ok(&["doctor"]).stdout;
    assert!(text.contains("isolation layers active"), "{text}");
}
