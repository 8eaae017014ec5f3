//! The one-process-per-call runtimes (`stdio-batch`, `command`, `file`) against
//! real processes: the examples and hostile scripts, run directly (the CLI
//! integration tests run them sandboxed).

#[allow(
    dead_code,
    reason = "helpers shared with tests.rs; this binary uses a few"
)]
mod util;

use std::time::{Duration, Instant};

use plugd_runtime::command::{command_launch, run_command};
use plugd_runtime::file::{file_launch, run_file};
use plugd_runtime::protocol::{ExecCall, Status, codes};
use plugd_runtime::stdio_batch::{InputDef, batch_launch, run_stdio_batch};
use plugd_runtime::{CallReport, Isolation, OneshotOptions, PluginRef};
use serde_json::json;
use util::{Env, call, examples_dir, interpreters};

fn plugin(id: &str, entry: &str, language: Option<&str>) -> PluginRef {
    PluginRef {
        id: id.into(),
        version: "1.0.0".into(),
        entry_point: entry.into(),
        language: language.map(str::to_string),
    }
}

fn opts(timeout: Duration) -> OneshotOptions {
    OneshotOptions {
        timeout,
        ..OneshotOptions::default()
    }
}

fn message(report: &CallReport) -> String {
    report.response.message.clone().unwrap_or_default()
}

const TEXT_STATS_INPUTS: &[InputDef<'static>] = &[
    InputDef {
        name: "text",
        value_type: Some("string"),
        required: true,
    },
    InputDef {
        name: "top_n",
        value_type: Some("number"),
        required: false,
    },
];

async fn text_stats(env: &Env, args: serde_json::Value) -> CallReport {
    let spec = batch_launch(
        &plugin("text-stats", "main.py", None),
        &examples_dir().join("stage7-text-stats"),
        &env.work_dir,
        interpreters(),
    )
    .unwrap();
    run_stdio_batch(
        &spec,
        &Isolation::Direct,
        &call("TEXT_STATS", args),
        TEXT_STATS_INPUTS,
        &opts(Duration::from_secs(10)),
    )
    .await
}

#[tokio::test]
async fn stage7_example_answers_with_results_and_outputs() {
    let env = Env::new();
    let report = text_stats(
        &env,
        json!({"text": "The cat sat. The cat ran!", "top_n": 1}),
    )
    .await;
    assert_eq!(report.response.status, Status::Ok, "{:?}", report.response);
    let body = report.response.body.unwrap();
    assert_eq!(body["outputs"]["statistics"]["words"], 6);
    assert_eq!(
        body["outputs"]["top_words"],
        json!([{"word": "cat", "count": 2}])
    );
    assert_eq!(body["results"][0]["name"], "statistics");
    assert!(report.health.is_none());
    assert_eq!(report.exit.unwrap().status.and_then(|s| s.code()), Some(0));
}

#[tokio::test]
async fn stage7_success_false_is_an_error_with_its_message() {
    let env = Env::new();
    let report = text_stats(&env, json!({"text": "x", "top_n": 1000})).await;
    assert_eq!(report.response.code, Some(500), "{:?}", report.response);
    assert!(
        message(&report).contains("`top_n` must be a number from 0 to 100"),
        "{}",
        message(&report)
    );
    assert_eq!(
        report.response.body.unwrap()["results"][0]["success"],
        false
    );
}

#[tokio::test]
async fn stage7_missing_input_is_refused_before_starting() {
    let env = Env::new();
    let report = text_stats(&env, json!({"top_n": 2})).await;
    assert_eq!(report.response.code, Some(codes::INVALID_ARGS));
    assert!(
        message(&report).contains("missing required input `text`"),
        "{}",
        message(&report)
    );
    assert!(report.exit.is_none(), "no process was started");
    let report = text_stats(&env, json!({"text": ["not", "a", "string"]})).await;
    assert_eq!(report.response.code, Some(codes::INVALID_ARGS));
    assert!(message(&report).contains("input `text` must be string but is an array"));
}

/// A stdio-batch plugin that is a bash script, for hostile behaviour.
async fn batch_script(env: &Env, body: &str, timeout: Duration) -> CallReport {
    std::fs::write(env.plugin_dir.join("main.sh"), body).unwrap();
    let spec = batch_launch(
        &plugin("hostile", "main.sh", None),
        &env.plugin_dir,
        &env.work_dir,
        interpreters(),
    );
    // batch_launch runs main.* with Python; a bash body needs bash.
    let mut spec = spec.unwrap();
    spec.program = interpreters().bash.clone();
    run_stdio_batch(
        &spec,
        &Isolation::Direct,
        &ExecCall::default(),
        &[],
        &opts(timeout),
    )
    .await
}

#[tokio::test]
async fn hostile_batch_plugins_get_clear_errors() {
    let env = Env::new();
    let started = Instant::now();
    let report = batch_script(&env, "exec >&-; sleep 30", Duration::from_millis(500)).await;
    assert_eq!(report.response.code, Some(codes::TIMEOUT));
    assert!(
        message(&report).contains("did not finish within 500 ms and was killed"),
        "{}",
        message(&report)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let report = batch_script(&env, "yes '[1,'", Duration::from_secs(10)).await;
    assert_eq!(report.response.code, Some(codes::RESOURCE_EXHAUSTED));
    assert!(
        message(&report).contains("more than 16 MiB"),
        "{}",
        message(&report)
    );

    let report = batch_script(
        &env,
        "echo 'Loading...'; echo '[]'",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(report.response.code, Some(codes::MALFORMED_JSON));
    assert!(
        message(&report).contains("Loading..."),
        "{}",
        message(&report)
    );

    let report = batch_script(
        &env,
        "echo 'Traceback: bad' >&2; kill -SEGV $$",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(report.response.code, Some(codes::INTERNAL));
    let m = message(&report);
    assert!(m.contains("SIGSEGV") && m.contains("Traceback: bad"), "{m}");
}

async fn text_utils(command: &str, argv: &[&str]) -> CallReport {
    let env = Env::new();
    let spec = command_launch(
        &plugin("text-utils", "text-utils", Some("exec")),
        &examples_dir().join("migraine-standalone-command"),
        &env.work_dir,
        interpreters(),
    )
    .unwrap();
    assert_eq!(
        &spec.program,
        &interpreters().python,
        "the #! line picks plugd's python"
    );
    run_command(
        &spec,
        &Isolation::Direct,
        Some(command),
        &call(command, json!({"argv": argv})),
        &opts(Duration::from_secs(10)),
    )
    .await
}

#[tokio::test]
async fn migraine_command_gets_its_argv_and_its_exit_code_decides() {
    let report = text_utils("slugify", &["Hello,", "World!"]).await;
    assert_eq!(report.response.status, Status::Ok, "{:?}", report.response);
    assert_eq!(
        report.response.body,
        Some(json!({"stdout": "hello-world\n", "stderr": "", "exit_code": 0}))
    );

    let report = text_utils("checksum", &["--algorithm", "crc", "x"]).await;
    assert_eq!(report.response.code, Some(500));
    let m = message(&report);
    assert!(
        m.contains("command `checksum` exited with status 1")
            && m.contains("unsupported algorithm"),
        "{m}"
    );
    assert_eq!(report.response.body.unwrap()["exit_code"], 1);

    let report = text_utils("slugify", &[]).await;
    assert_eq!(report.response.body.unwrap()["exit_code"], 2, "usage error");
}

#[tokio::test]
async fn named_arguments_are_refused_for_commands() {
    let env = Env::new();
    let spec = command_launch(
        &plugin("text-utils", "text-utils", Some("exec")),
        &examples_dir().join("migraine-standalone-command"),
        &env.work_dir,
        interpreters(),
    )
    .unwrap();
    let report = run_command(
        &spec,
        &Isolation::Direct,
        Some("slugify"),
        &call("slugify", json!({"words": "a b"})),
        &opts(Duration::from_secs(10)),
    )
    .await;
    assert_eq!(report.response.code, Some(codes::INVALID_ARGS));
    assert!(message(&report).contains("named argument `words`"));
    assert!(report.exit.is_none());
}

#[tokio::test]
async fn the_file_runtime_needs_the_sandbox() {
    let env = Env::new();
    std::fs::write(env.plugin_dir.join("p.py"), "").unwrap();
    let spec = file_launch(
        &plugin("p", "p.py", Some("python")),
        &env.plugin_dir,
        &env.work_dir,
        interpreters(),
    )
    .unwrap();
    assert_eq!(
        spec.cwd,
        env.plugin_dir.canonicalize().unwrap(),
        "runs in its files"
    );
    let err = run_file(
        &spec,
        &Isolation::Direct,
        &env.plugin_dir,
        &ExecCall::default(),
        &[],
        &OneshotOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("/plugin, which needs the sandbox"),
        "{err}"
    );
    let err = file_launch(
        &plugin("p", "p.sh", Some("bash")),
        &env.plugin_dir,
        &env.work_dir,
        interpreters(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the file runtime runs python or r"),
        "{err}"
    );
}
