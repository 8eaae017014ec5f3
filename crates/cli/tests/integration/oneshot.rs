//! The one-process-per-call runtimes through the real binary, sandboxed:
//! `file` (OmniScope, Python and R), `stdio-batch` (Stage7) and `command`
//! (Migraine standalone): each example installs and answers, and every way a
//! plugin can fail gives an error result with the right code and a message
//! naming the cause.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Env, example};

fn install_example(env: &Env, name: &str) {
    env.ok(&["install", example(name).to_str().unwrap(), "--enable"]);
}

fn install_dir(env: &Env, dir: &Path) {
    env.ok(&["install", dir.to_str().unwrap(), "--enable"]);
}

/// `plugd --json exec …` that must fail with `code` and a message containing
/// `needle` (case-insensitive); returns the outcome document.
fn exec_fails(env: &Env, args: &[&str], code: i64, needle: &str) -> Value {
    let mut all = vec!["--json", "exec"];
    all.extend_from_slice(args);
    let doc = env.fails(&all).json();
    assert_eq!(doc["response"]["status"], "error", "{doc}");
    assert_eq!(doc["response"]["code"], code, "{doc}");
    let message = doc["response"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "message {message:?} should mention {needle:?}"
    );
    doc
}

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An OmniScope `file` plugin whose `plugin.py` is `code`.
fn file_plugin(env: &Env, id: &str, code: &str) -> PathBuf {
    let dir = env.path(id);
    write(
        &dir.join("manifest.json"),
        &format!(
            r#"{{"name": "{id}", "version": "1.0.0", "description": "file fixture", "language": "python",
                "entry_point": "plugin.py", "permissions": ["read_data"],
                "config": {{"factor": {{"type": "number", "default": 2}}}}}}"#
        ),
        0o644,
    );
    write(&dir.join("plugin.py"), code, 0o644);
    dir
}

/// A Stage7 python plugin whose `main.py` is `code`, with one required string input `text`.
fn batch_plugin(env: &Env, id: &str, code: &str) -> PathBuf {
    let dir = env.path(id);
    write(
        &dir.join("manifest.json"),
        &format!(
            r#"{{"id": "{id}", "verb": "RUN", "name": "{id}", "description": "stdio fixture", "version": "1.0.0",
                "type": "python", "inputDefinitions": [{{"name": "text", "required": true, "type": "string"}}]}}"#
        ),
        0o644,
    );
    write(&dir.join("main.py"), code, 0o644);
    dir
}

/// A Migraine standalone plugin with one command, `run`, served by the bash `script`.
fn command_plugin(env: &Env, id: &str, script: &str) -> PathBuf {
    let dir = env.path(id);
    write(
        &dir.join("plugin.yaml"),
        &format!(
            "name: {id}\nversion: 1.0.0\ndescription: command fixture\ncommands:\n  - name: run\n    description: runs\n    usage: {id} run ARGS\n"
        ),
        0o644,
    );
    write(&dir.join(id), &format!("#!/bin/bash\n{script}\n"), 0o755);
    dir
}

/// Every file under `dir` with its mode and content: a digest that also names
/// what changed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            let content = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            out.insert(path, (meta.permissions().mode(), content));
        }
    }
    out
}

fn installed_dir(env: &Env, id: &str) -> PathBuf {
    let info = env.json(&["info", id]);
    PathBuf::from(info["versions"][0]["dir"].as_str().unwrap())
}

// --- file (OmniScope) -----------------------------------------------------------

#[test]
fn omniscope_r_correlation_example_runs() {
    let env = Env::new();
    install_example(&env, "omniscope-correlation-r");
    let input = r#"{"var1":[1,2,3,4,5],"var2":[2,4,6,8,10],"var3":[5,3,4,1,2]}"#;
    let doc = env.json(&["exec", "correlation-analyzer", "--input", input]);
    let body = &doc["response"]["body"];
    assert_eq!(doc["response"]["status"], "ok", "{doc}");
    assert_eq!(
        body["metadata"]["method"], "pearson",
        "the config default: {doc}"
    );
    assert_eq!(body["data"]["correlations"]["var1"]["var2"], 1.0, "{doc}");
    assert_eq!(body["data"]["correlations"]["var1"]["var3"], -0.8, "{doc}");
    assert_eq!(
        body["data"]["significant"].as_array().unwrap().len(),
        3,
        "{doc}"
    );
    assert_eq!(body["metadata"]["plugin_id"], "correlation-analyzer");

    let doc = env.json(&[
        "exec",
        "correlation-analyzer",
        "--input",
        input,
        "--param",
        "method=spearman",
        "--param",
        "threshold=0.9",
    ]);
    let body = &doc["response"]["body"];
    assert_eq!(body["metadata"]["method"], "spearman", "{doc}");
    assert_eq!(
        body["data"]["significant"].as_array().unwrap().len(),
        1,
        "{doc}"
    );

    let doc = exec_fails(
        &env,
        &["correlation-analyzer", "--input", r#"{"only":[1,2,3]}"#],
        500,
        "at least two variables",
    );
    assert_eq!(doc["response"]["body"]["data"], Value::Null, "{doc}");
}

#[test]
fn omniscope_numpy_normalizer_example_runs() {
    let env = Env::new();
    install_example(&env, "omniscope-normalizer");
    let doc = env.json(&[
        "exec",
        "data-normalizer",
        "--input",
        "[[1,2,3],[4,5,6],[7,8,9]]",
        "--param",
        "method=minmax",
        "--extension-point",
        "preprocessing",
    ]);
    assert_eq!(doc["response"]["status"], "ok", "{doc}");
    let data = &doc["response"]["body"]["data"];
    assert_eq!(data[0][0], 0.0, "{doc}");
    assert_eq!(data[1][0], 0.5, "{doc}");
    assert_eq!(data[2][2], 1.0, "{doc}");
    exec_fails(
        &env,
        &[
            "data-normalizer",
            "--input",
            "[1,2]",
            "--param",
            "method=cubic",
        ],
        500,
        "unknown method 'cubic'",
    );
}

#[test]
fn a_file_plugin_gets_the_omniscope_input_and_cannot_change_its_installed_copy() {
    let env = Env::new();
    let dir = file_plugin(
        &env,
        "file-echo",
        r#"import json, os
with open("/plugin/input.json") as f:
    request = json.load(f)
seen = open("/plugin/plugin.py").read().startswith("import json")
# Try to change our own files: the per-call copy allows it, the installed copy must not change.
with open("/plugin/plugin.py", "a") as f:
    f.write("\n# tampered\n")
os.remove("/plugin/manifest.json")
with open("/plugin/output.json", "w") as f:
    json.dump({"data": request, "metadata": {"cwd": os.getcwd(), "pristine": seen},
               "logs": [], "warnings": [], "errors": []}, f)
"#,
    );
    install_dir(&env, &dir);
    let installed = installed_dir(&env, "file-echo");
    let before = snapshot(&installed);
    for _ in 0..2 {
        let doc = env.json(&[
            "exec",
            "file-echo",
            "--input",
            "[1,2]",
            "--param",
            "factor=3",
        ]);
        assert_eq!(doc["response"]["status"], "ok", "{doc}");
        let body = &doc["response"]["body"];
        let request = &body["data"];
        assert_eq!(request["data"], serde_json::json!([1, 2]));
        assert_eq!(request["parameters"], serde_json::json!({"factor": 3}));
        assert_eq!(request["context"]["plugin_id"], "file-echo");
        assert_eq!(request["context"]["plugin_name"], "file-echo");
        assert_eq!(
            request["context"]["config"],
            serde_json::json!({"factor": 2})
        );
        assert_eq!(
            request["context"]["permissions"],
            serde_json::json!(["read_data"])
        );
        assert_eq!(body["metadata"]["cwd"], "/plugin");
        assert_eq!(
            body["metadata"]["pristine"], true,
            "every call starts from the installed files"
        );
    }
    assert_eq!(snapshot(&installed), before, "the installed copy changed");
    let work = env.home.path().join("work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        left.iter().all(|n| *n == 0),
        "per-call copies left behind in {}",
        work.display()
    );
}

#[test]
fn file_plugin_failures_are_clear_errors() {
    let env = Env::new();
    let cases: &[(&str, &str, i64, &str)] = &[
        (
            "file-crash",
            "import sys\nsys.stderr.write('Traceback: no data\\n')\nsys.exit(3)",
            400,
            "exited with status 3; last stderr: Traceback: no data",
        ),
        ("file-silent", "pass", 400, "wrote no /plugin/output.json"),
        (
            "file-garbage",
            "open('/plugin/output.json', 'w').write('Loading... done')",
            100,
            "not valid json",
        ),
        (
            "file-array",
            "open('/plugin/output.json', 'w').write('[1, 2]')",
            100,
            "holding an array, not an object",
        ),
        (
            "file-link",
            "import os\nos.symlink('/etc/shadow', '/plugin/output.json')",
            400,
            "symlink",
        ),
        (
            "file-huge",
            "f = open('/plugin/output.json', 'w')\nf.write('[' + '1,' * (9 * 1024 * 1024) + '1]')",
            300,
            "more than the 16 mib",
        ),
        (
            "file-errors",
            "import json\njson.dump({'data': None, 'errors': ['column x is empty']}, open('/plugin/output.json', 'w'))",
            500,
            "reported an error: column x is empty",
        ),
        (
            "file-signal",
            // A real fault: a signal the plugin sends itself is ignored, as it is
            // pid 1 of its namespace in the sandbox.
            "import ctypes\nctypes.string_at(0)",
            400,
            "killed by signal 11",
        ),
    ];
    for (id, code, expected, needle) in cases {
        let dir = file_plugin(&env, id, code);
        install_dir(&env, &dir);
        exec_fails(&env, &[id, "--input", "1"], *expected, needle);
    }
    let history = env.json(&["history", "file-crash"]);
    assert_eq!(history["executions"][0]["code"], 400, "{history}");
}

#[test]
fn a_sleeping_file_plugin_is_killed_with_301() {
    let env = Env::new();
    let dir = file_plugin(&env, "file-sleep", "import time\ntime.sleep(60)");
    install_dir(&env, &dir);
    let started = std::time::Instant::now();
    exec_fails(
        &env,
        &["file-sleep", "--timeout", "1"],
        301,
        "did not finish within 1 s and was killed",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

// --- stdio-batch (Stage7) -------------------------------------------------------

#[test]
fn stage7_text_stats_example_runs() {
    let env = Env::new();
    install_example(&env, "stage7-text-stats");
    let doc = env.json(&[
        "exec",
        "text-stats",
        "--args",
        r#"{"text": "Plugins run. Plugins answer! Hosts wait.", "top_n": 1}"#,
    ]);
    assert_eq!(doc["response"]["status"], "ok", "{doc}");
    let body = &doc["response"]["body"];
    assert_eq!(body["outputs"]["statistics"]["sentences"], 3, "{doc}");
    assert_eq!(body["outputs"]["top_words"][0]["word"], "plugins", "{doc}");
    assert_eq!(body["results"][0]["success"], true, "{doc}");

    exec_fails(
        &env,
        &["text-stats", "--args", r#"{"top_n": 2}"#],
        201,
        "missing required input `text`",
    );
    exec_fails(
        &env,
        &["text-stats", "--args", r#"{"text": 5}"#],
        201,
        "input `text` must be string",
    );
    let doc = exec_fails(
        &env,
        &["text-stats", "--args", r#"{"text": "x", "top_n": 500}"#],
        500,
        "`top_n` must be a number from 0 to 100",
    );
    assert_eq!(
        doc["response"]["body"]["results"][0]["success"], false,
        "{doc}"
    );
}

#[test]
fn stdio_batch_failures_are_clear_errors() {
    let env = Env::new();
    let cases: &[(&str, &str, &[&str], i64, &str)] = &[
        (
            "batch-crash",
            "import sys\nsys.stderr.write('Traceback: boom\\n')\nsys.exit(2)",
            &[],
            400,
            "exited with status 2; last stderr: traceback: boom",
        ),
        (
            "batch-garbage",
            "print('Loading model...')",
            &[],
            100,
            "not json",
        ),
        (
            "batch-object",
            "print('{\"success\": true}')",
            &[],
            100,
            "an object instead of an array",
        ),
        (
            "batch-nosuccess",
            "print('[{\"name\": \"x\", \"result\": 1}]')",
            &[],
            102,
            "without a boolean `success`",
        ),
        (
            "batch-huge",
            "import sys\nwhile True: sys.stdout.write('x' * 65536)",
            &[],
            300,
            "more than 16 mib",
        ),
        (
            "batch-sleep",
            "import time\ntime.sleep(60)",
            &["--timeout", "1"],
            301,
            "did not finish within 1 s",
        ),
        (
            "batch-echo-input",
            // Fails on purpose with what it received, to show the stdin document.
            "import json, sys\nraw = json.load(sys.stdin)\nprint(json.dumps([{'success': False, 'name': 'in', 'error': json.dumps(raw, sort_keys=True), 'argv1': sys.argv[1]}]))",
            &[],
            500,
            r#"[["text", {"args": {}, "value": "hi", "valuetype": "string"}]]"#,
        ),
    ];
    for (id, code, extra, expected, needle) in cases {
        let dir = batch_plugin(&env, id, code);
        install_dir(&env, &dir);
        let mut args = vec![*id, "--args", r#"{"text": "hi"}"#];
        args.extend_from_slice(extra);
        let doc = exec_fails(&env, &args, *expected, needle);
        if *id == "batch-echo-input" {
            assert_eq!(
                doc["response"]["body"]["results"][0]["argv1"], "/plugin",
                "{doc}"
            );
        }
    }
}

// --- command (Migraine standalone) ----------------------------------------------

#[test]
fn migraine_standalone_example_runs_commands_with_argv() {
    let env = Env::new();
    install_example(&env, "migraine-standalone-command");
    let doc = env.json(&[
        "exec",
        "text-utils",
        "slugify",
        "--",
        "Hello, World:",
        "a Title",
    ]);
    assert_eq!(doc["response"]["status"], "ok", "{doc}");
    assert_eq!(
        doc["response"]["body"],
        serde_json::json!({"stdout": "hello-world-a-title\n", "stderr": "", "exit_code": 0})
    );
    let doc = env.json(&[
        "exec",
        "text-utils",
        "word-count",
        "--",
        "--json",
        "one two",
        "three",
    ]);
    let counts: Value =
        serde_json::from_str(doc["response"]["body"]["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(counts["words"], 3, "{doc}");

    let doc = exec_fails(
        &env,
        &["text-utils", "checksum", "--", "--algorithm", "crc32", "x"],
        500,
        "command `checksum` exited with status 1; last stderr: checksum: unsupported algorithm",
    );
    assert_eq!(doc["response"]["body"]["exit_code"], 1, "{doc}");
    assert_eq!(doc["response"]["body"]["stdout"], "", "{doc}");

    // An unknown command is refused before anything runs, listing the commands.
    let run = env.fails(&["exec", "text-utils", "docker-deploy", "--", "--image", "x"]);
    assert!(
        run.stderr.contains("no action `docker-deploy`")
            && run.stderr.contains("slugify, word-count, checksum"),
        "{}",
        run.stderr
    );
    // Named arguments are not argument words.
    exec_fails(
        &env,
        &["text-utils", "slugify", "--args", r#"{"words": "a"}"#],
        201,
        "named argument `words`",
    );
}

#[test]
fn command_failures_are_clear_errors() {
    let env = Env::new();
    let dir = command_plugin(
        &env,
        "cmd-args",
        r#"printf '%s|' "$@"; echo "warning: fake" >&2; [[ $2 == fail ]] && exit 7; exit 0"#,
    );
    install_dir(&env, &dir);
    let doc = env.json(&["exec", "cmd-args", "--", "a b", "--flag"]);
    assert_eq!(
        doc["response"]["body"]["stdout"], "run|a b|--flag|",
        "the command, then argv: {doc}"
    );
    assert_eq!(
        doc["response"]["body"]["stderr"], "warning: fake\n",
        "{doc}"
    );
    let doc = exec_fails(
        &env,
        &["cmd-args", "run", "--", "fail"],
        500,
        "exited with status 7; last stderr: warning: fake",
    );
    assert_eq!(doc["response"]["body"]["exit_code"], 7, "{doc}");

    let dir = command_plugin(&env, "cmd-sleep", "sleep 60");
    install_dir(&env, &dir);
    exec_fails(
        &env,
        &["cmd-sleep", "--timeout", "1"],
        301,
        "did not finish within 1 s and was killed",
    );

    let dir = command_plugin(&env, "cmd-segv", "");
    write(
        &dir.join("cmd-segv"),
        "#!/usr/bin/env python3\nimport ctypes, sys\nsys.stderr.write('dying\\n')\nctypes.string_at(0)\n",
        0o755,
    );
    install_dir(&env, &dir);
    let doc = exec_fails(&env, &["cmd-segv"], 500, "killed by signal 11 (SIGSEGV)");
    assert_eq!(doc["response"]["body"]["exit_code"], Value::Null, "{doc}");

    let dir = command_plugin(&env, "cmd-flood", "yes");
    install_dir(&env, &dir);
    exec_fails(&env, &["cmd-flood"], 300, "more than 16 mib to stdout");
}
