//! `plugd test` on every example that speaks the envelope, `plugd test` on
//! plugins that break the protocol, and `plugd bench` through warm pools.

use crate::util::{Env, example_package, python_fixture};

/// Every NDJSON and python-function example passes every check.
#[test]
fn every_envelope_example_passes_plugd_test() {
    let env = Env::new();
    for name in [
        "python-echo",
        "bash-echo",
        "rust-echo",
        "wingman-hello",
        "migraine-log-processor",
        "omniscope-sdk-class",
    ] {
        let dir = example_package(name, env.scratch.path());
        let out = env.json(&["test", dir.to_str().unwrap()]);
        assert_eq!(out["passed"], true, "{name}: {out:#}");
        let checks = out["checks"].as_array().unwrap();
        assert!(checks.len() >= 7, "{name}: {out:#}");
        for check in checks {
            assert!(
                check["passed"] == true,
                "{name}: check {} failed: {}",
                check["name"],
                check["detail"]
            );
        }
        let text = env.ok(&["test", dir.to_str().unwrap()]).stdout;
        assert!(
            text.contains("checks passed") && text.contains("pass"),
            "{text}"
        );
    }
}

/// A plugin that dies on malformed JSON and ignores unknown actions fails
/// exactly those checks, with exit status 1 and a table saying why.
#[test]
fn plugd_test_names_what_a_sloppy_plugin_gets_wrong() {
    let env = Env::new();
    // Parses each line without a try (a broken line kills it) and answers every
    // action with ok.
    let fixture = python_fixture("sloppy", "1.0.0", r#"reply(req, body={"echo": payload})"#);
    let dir = env.plugin("sloppy", &fixture);
    let run = env.run(&["test", dir.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let out = run.json();
    assert_eq!(out["passed"], false);
    let check = |name: &str| {
        out["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no check {name}: {out:#}"))
            .clone()
    };
    assert_eq!(check("health")["passed"], true);
    assert_eq!(check("exec run")["passed"], true);
    let malformed = check("malformed JSON");
    assert_eq!(malformed["passed"], false, "{malformed}");
    assert_eq!(check("shutdown")["passed"], false);
    let text = env.run(&["test", dir.to_str().unwrap()]);
    assert_eq!(text.code, Some(1));
    assert!(text.stdout.contains("FAIL"), "{}", text.stdout);
}

/// `plugd test` refuses runtimes without the envelope instead of guessing.
#[test]
fn plugd_test_refuses_plugins_that_do_not_speak_the_envelope() {
    let env = Env::new();
    let dir = example_package("stage7-text-stats", env.scratch.path());
    let run = env.fails(&["test", dir.to_str().unwrap()]);
    assert!(run.stderr.contains("does not speak"), "{}", run.stderr);
}

/// `plugd bench --json` gives the documented fields, from real calls.
#[test]
fn plugd_bench_reports_latency_and_throughput() {
    let env = Env::new();
    let dir = example_package("rust-echo", env.scratch.path());
    env.ok(&["install", "--enable", dir.to_str().unwrap()]);
    let out = env.json(&[
        "bench",
        "rust-echo",
        "echo",
        "--args",
        r#"{"message":"hi"}"#,
        "--calls",
        "500",
        "--concurrency",
        "4",
    ]);
    assert_eq!(out["calls"], 500, "{out}");
    assert_eq!(out["errors"], 0, "{out}");
    let p50 = out["p50_us"].as_f64().unwrap();
    let p99 = out["p99_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p99 >= p50, "{out}");
    assert!(out["calls_per_sec"].as_f64().unwrap() > 0.0, "{out}");

    // A plugin that cannot keep a warm worker is told so.
    let stats = example_package("stage7-text-stats", env.scratch.path());
    env.ok(&["install", "--enable", stats.to_str().unwrap()]);
    let run = env.fails(&["bench", "text-stats", "--calls", "10"]);
    assert!(run.stderr.contains("warm pools"), "{}", run.stderr);
}
