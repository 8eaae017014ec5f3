use serde_json::Value;

use crate::util::{Env, Fixture, example, python_fixture};

/// Installs and enables a fixture, returning its id.
fn install(env: &Env, fixture: &Fixture) -> &'static str {
    let dir = env.plugin(fixture.id, fixture);
    env.ok(&["install", dir.to_str().unwrap(), "--enable"]);
    fixture.id
}

/// Calls `run` on a misbehaving plugin: the call must fail with `code`, the
/// message must name the cause, the failure must be in the history, and the
/// plugin must still be installed and enabled afterwards.
fn expect_error(env: &Env, id: &str, code: i64, needle: &str) -> Value {
    let run = env.fails(&["--json", "exec", id, "run", "--timeout", "2"]);
    let doc = run.json();
    assert_eq!(doc["response"]["status"], "error", "{doc}");
    assert_eq!(doc["response"]["code"], code, "{doc}");
    let message = doc["response"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        message.contains(needle),
        "message {message:?} should mention {needle:?}"
    );
    let history = env.json(&["history", id]);
    assert_eq!(history["executions"][0]["status"], "error");
    assert_eq!(history["executions"][0]["code"], code);
    let info = env.json(&["info", id]);
    assert_eq!(info["enabled"], true);
    doc
}

#[test]
fn both_argument_styles_reach_the_plugin() {
    let env = Env::new();
    install(
        &env,
        &python_fixture(
            "flat",
            "1.0.0",
            r#"reply(req, body={"m": payload["message"]})"#,
        ),
    );
    install(
        &env,
        &python_fixture(
            "nested",
            "1.0.0",
            r#"reply(req, body={"m": payload["args"]["message"]})"#,
        ),
    );
    for id in ["flat", "nested"] {
        let doc = env.json(&["exec", id, "run", "--args", r#"{"message":"both"}"#]);
        assert_eq!(doc["response"]["body"]["m"], "both", "{id}: {doc}");
    }
}

#[test]
fn omniscope_fields_and_context_are_sent() {
    let env = Env::new();
    install(
        &env,
        &python_fixture("fields", "1.0.0", r#"reply(req, body=payload)"#),
    );
    let args_file = env.path("args.json");
    std::fs::write(&args_file, r#"{"k": 1}"#).unwrap();
    let doc = env.json(&[
        "exec",
        "fields",
        "run",
        "--args",
        &format!("@{}", args_file.display()),
        "--input",
        "[[1,2],[3,4]]",
        "--param",
        "method=zscore",
        "--param",
        "threshold=0.7",
        "--extension-point",
        "preprocessing",
    ]);
    let body = &doc["response"]["body"];
    assert_eq!(body["args"]["k"], 1);
    assert_eq!(body["input_data"][1][0], 3);
    assert_eq!(body["parameters"]["method"], "zscore");
    assert_eq!(body["parameters"]["threshold"], 0.7);
    assert_eq!(body["extension_point"], "preprocessing");
    assert_eq!(body["context"]["plugin_id"], "fields");
    assert_eq!(body["context"]["version"], "1.0.0");
}

#[test]
fn bash_and_rust_examples_answer() {
    let env = Env::new();
    env.ok(&[
        "install",
        example("bash-echo").to_str().unwrap(),
        "--enable",
    ]);
    let out = env.json(&[
        "exec",
        "bash-echo",
        "echo",
        "--args",
        r#"{"message":"from bash"}"#,
    ]);
    assert_eq!(out["response"]["status"], "ok", "{out}");
    assert!(
        out["response"]["body"].to_string().contains("from bash"),
        "{out}"
    );

    let pkg = crate::util::example_package("rust-echo", env.scratch.path());
    env.ok(&["install", pkg.to_str().unwrap(), "--enable"]);
    let out = env.json(&[
        "exec",
        "rust-echo",
        "echo",
        "--args",
        r#"{"message":"from rust"}"#,
    ]);
    assert_eq!(out["response"]["body"]["message"], "from rust", "{out}");
}

#[test]
fn a_plugin_error_is_passed_through_with_its_code() {
    let env = Env::new();
    install(
        &env,
        &python_fixture(
            "refuses",
            "1.0.0",
            r#"reply(req, status="error", code=422, message="value out of range")"#,
        ),
    );
    let doc = expect_error(&env, "refuses", 422, "out of range");
    assert_eq!(doc["plugin_id"], "refuses");
    let text = env.fails(&["exec", "refuses", "run"]);
    assert!(
        text.stderr.contains("422") && text.stderr.contains("value out of range"),
        "{}",
        text.stderr
    );
}

#[test]
fn a_plugin_that_never_answers_is_killed_with_301() {
    let env = Env::new();
    install(&env, &python_fixture("sleeper", "1.0.0", "time.sleep(600)"));
    let started = std::time::Instant::now();
    expect_error(&env, "sleeper", 301, "2");
    // bounded by the timeout plus the shutdown grace, not by the plugin's sleep
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn a_plugin_that_exits_mid_request_is_an_error() {
    let env = Env::new();
    install(
        &env,
        &python_fixture(
            "quitter",
            "1.0.0",
            "sys.stderr.write('giving up now\\n'); sys.exit(3)",
        ),
    );
    let doc = expect_error(&env, "quitter", 400, "exit");
    assert!(
        doc["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("giving up now"),
        "{doc}"
    );
}

#[test]
fn garbage_on_stdout_is_an_error_that_quotes_it() {
    let env = Env::new();
    install(
        &env,
        &python_fixture(
            "noisy",
            "1.0.0",
            "print('this is not json', flush=True)\nprint('{\"neither\": true}', flush=True)",
        ),
    );
    let doc = expect_error(&env, "noisy", 301, "not json");
    assert!(
        doc["protocol"]["stray_lines"].as_u64().unwrap() >= 1,
        "{doc}"
    );
}

#[test]
fn a_response_for_another_id_is_an_error() {
    let env = Env::new();
    install(
        &env,
        &python_fixture(
            "liar",
            "1.0.0",
            r#"reply(req, body={}, rid="someone-else")"#,
        ),
    );
    let doc = expect_error(&env, "liar", 301, "someone-else");
    assert!(
        doc["protocol"]["unknown_ids"].as_u64().unwrap() >= 1,
        "{doc}"
    );
}

#[test]
fn an_oversized_response_line_is_refused_with_101() {
    let env = Env::new();
    install(
        &env,
        &python_fixture(
            "huge",
            "1.0.0",
            r#"reply(req, body={"blob": "x" * 1048576})"#,
        ),
    );
    expect_error(&env, "huge", 101, "131072");
}

#[test]
fn unknown_actions_are_refused_before_starting_the_plugin() {
    let env = Env::new();
    env.ok(&[
        "install",
        example("python-echo").to_str().unwrap(),
        "--enable",
    ]);
    let run = env.fails(&["exec", "python-echo", "teleport"]);
    assert!(
        run.stderr.contains("echo") && run.stderr.contains("teleport"),
        "{}",
        run.stderr
    );
    let run = env.fails(&["exec", "python-echo"]);
    assert!(run.stderr.contains("several actions"), "{}", run.stderr);
    let run = env.run(&["exec", "python-echo", "echo", "--args", "[1]"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("JSON object"), "{}", run.stderr);
}
