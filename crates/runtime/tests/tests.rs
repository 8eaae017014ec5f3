//! plugd-runtime against real processes: the example plugins and hostile scripts,
//! all through `call_once`, the path `plugd exec` takes.

mod util;

use std::time::Duration;

use plugd_runtime::protocol::{ExecCall, Status, codes};
use plugd_runtime::{LaunchSpec, Worker, call_once, spawn};
use serde_json::json;
use util::{Env, call, message, run};

/// A hostile-script case: a bash body after the prelude of `Env::script`, called
/// with `echo`, and assertions on the report.
macro_rules! hostile {
    ($name:ident, $body:expr, |$report:ident| $check:block) => {
        #[tokio::test]
        async fn $name() {
            let env = Env::new();
            let spec = env.script(stringify!($name), $body);
            let $report = run(&spec, &call("echo", json!({"message": "hi"}))).await;
            $check
        }
    };
}

// --- the example plugins -------------------------------------------------------

mod python_echo {
    use super::*;

    #[tokio::test]
    async fn echo_reverse_and_compute() {
        let env = Env::new();
        let spec = env.example("python-echo", "plugin.py");
        assert!(
            !spec.program.to_string_lossy().contains("shims"),
            "python must be the real interpreter: {spec:?}"
        );

        let report = run(&spec, &call("echo", json!({"message": "héllo"}))).await;
        assert_eq!(report.response.status, Status::Ok, "{:?}", report.response);
        assert_eq!(
            report.response.body,
            Some(json!({"action": "echo", "message": "héllo"}))
        );
        let health = report.health.as_ref().expect("health answered");
        assert_eq!(health.body.as_ref().unwrap()["status"], "healthy");
        let exit = report.exit.as_ref().unwrap();
        assert!(exit.acknowledged_shutdown && !exit.killed, "{exit:?}");
        assert_eq!(exit.status.and_then(|s| s.code()), Some(0));
        assert_eq!(report.stats.violations(), 0);
        assert!(
            report.stderr_tail.contains("shutting down"),
            "stderr captured: {}",
            report.stderr_tail
        );

        let report = run(&spec, &call("reverse", json!({"message": "abc"}))).await;
        assert_eq!(report.response.body.unwrap()["message"], "cba");

        let report = run(
            &spec,
            &call("compute", json!({"op": "mul", "a": 6, "b": 7})),
        )
        .await;
        assert_eq!(report.response.body.unwrap()["result"], 42);
    }

    #[tokio::test]
    async fn plugin_errors_pass_through() {
        let env = Env::new();
        let spec = env.example("python-echo", "plugin.py");
        let report = run(
            &spec,
            &call("compute", json!({"op": "div", "a": 1, "b": 0})),
        )
        .await;
        assert_eq!(report.response.code, Some(codes::INVALID_ARGS));
        assert!(
            message(&report).contains("division by zero"),
            "{}",
            message(&report)
        );
        assert!(
            report.response.meta.is_none(),
            "the plugin's own error, not plugd's"
        );

        let report = run(&spec, &call("nope", json!({}))).await;
        assert_eq!(report.response.code, Some(codes::UNSUPPORTED_ACTION));
    }

    #[tokio::test]
    async fn seed_style_flat_arguments_work() {
        // An OmniFlow plugin reads payload.message: plugd's flat copy makes that work
        // even for a call whose arguments came in `args`.
        let env = Env::new();
        let spec = env.script(
            "flat-reader",
            r#"healthy; next
[[ $line =~ \"payload\":\{.*\"message\":\"hi\" ]] && reply ok '"flat"' || reply error"#,
        );
        let report = run(&spec, &call("echo", json!({"message": "hi"}))).await;
        assert_eq!(
            report.response.body,
            Some(json!("flat")),
            "{:?}",
            report.response
        );
    }

    #[tokio::test]
    async fn one_worker_serves_many_requests_in_flight() {
        let env = Env::new();
        let spec = env.example("python-echo", "plugin.py");
        let worker = Worker::start(
            spawn(&spec).unwrap(),
            "python-echo@1.0.0".into(),
            Default::default(),
        );
        let calls = (0..20).map(|i| {
            let call = call("echo", json!({"message": format!("m{i}")}));
            let worker = &worker;
            async move {
                let r = worker
                    .request(
                        plugd_runtime::protocol::RequestType::Exec,
                        Some(call.to_payload()),
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap();
                assert_eq!(r.body.unwrap()["message"], format!("m{i}"));
            }
        });
        futures_util::future::join_all(calls).await;
        let exit = worker.shutdown(Duration::from_secs(2)).await;
        assert_eq!(exit.stats.responses, 21, "20 calls and the shutdown");
        assert!(!exit.killed);
    }
}

mod bash_echo {
    use super::*;

    #[tokio::test]
    async fn echo_keeps_escapes_and_unicode() {
        let env = Env::new();
        let spec = env.example("bash-echo", "plugin.sh");
        let text = "say \"hi\" \\ tab\t ünï";
        let report = run(&spec, &call("echo", json!({"message": text}))).await;
        assert_eq!(report.response.status, Status::Ok, "{:?}", report.response);
        assert_eq!(
            report.response.body,
            Some(json!({"action": "echo", "message": text}))
        );
        assert!(report.exit.unwrap().acknowledged_shutdown);
    }

    #[tokio::test]
    async fn wrong_arguments_are_201() {
        let env = Env::new();
        let spec = env.example("bash-echo", "plugin.sh");
        let report = run(&spec, &call("echo", json!({"message": 5}))).await;
        assert_eq!(report.response.code, Some(codes::INVALID_ARGS));
        let report = run(&spec, &call("shout", json!({"message": "x"}))).await;
        assert_eq!(report.response.code, Some(codes::UNSUPPORTED_ACTION));
    }
}

// --- hostile plugins -----------------------------------------------------------

hostile!(
    garbage_on_stdout_is_quoted_in_the_timeout,
    r#"healthy; next; echo "Loading model..."; echo '{"progress": 50}'; echo -e '\x01\x02'; sleep 30"#,
    |report| {
        assert_eq!(report.response.code, Some(codes::TIMEOUT));
        let m = message(&report);
        assert!(
            m.contains("did not answer the exec request within 1.5 s and was killed"),
            "{m}"
        );
        assert!(
            m.contains("3 lines that are not protocol responses; first: 'Loading model...'"),
            "{m}"
        );
        assert_eq!(report.stats.stray_lines, 3);
        assert!(report.exit.unwrap().killed);
        assert!(
            report.duration < Duration::from_secs(5),
            "{:?}",
            report.duration
        );
    }
);

hostile!(
    never_answers_even_health,
    r#"while IFS= read -r line; do :; done"#,
    |report| {
        assert_eq!(report.response.code, Some(codes::TIMEOUT));
        let m = message(&report);
        assert!(m.starts_with("the health check failed: "), "{m}");
        assert!(
            m.contains("did not answer the health request within 2 s"),
            "{m}"
        );
        assert!(report.health.is_none());
    }
);

hostile!(
    exits_mid_request_with_stderr,
    r#"healthy; next; echo "fatal: out of cheese" >&2; exit 3"#,
    |report| {
        assert_eq!(report.response.code, Some(codes::INTERNAL));
        let m = message(&report);
        assert!(
            m.contains("exited with status 3 before answering the exec request"),
            "{m}"
        );
        assert!(m.contains("last stderr: fatal: out of cheese"), "{m}");
        assert!(
            report.duration < util::options().timeout,
            "failed at once, not at the timeout: {:?}",
            report.duration
        );
        assert_eq!(report.exit.unwrap().status.and_then(|s| s.code()), Some(3));
    }
);

hostile!(
    killed_by_a_signal,
    r#"healthy; next; kill -SEGV $$"#,
    |report| {
        assert_eq!(report.response.code, Some(codes::INTERNAL));
        assert!(
            message(&report).contains("was killed by signal 11 (SIGSEGV)"),
            "{}",
            message(&report)
        );
    }
);

hostile!(
    answers_with_another_id,
    r#"healthy; next; printf '{"id":"not-yours","status":"ok"}\n'; sleep 30"#,
    |report| {
        assert_eq!(report.response.code, Some(codes::TIMEOUT));
        assert_eq!(report.stats.unknown_ids, 1);
        assert_eq!(
            report.stats.responses, 1,
            "only the health answer was routed"
        );
    }
);

hostile!(
    answers_twice,
    r#"healthy; next; reply ok '"one"'; reply ok '"two"'; next; reply ok"#,
    |report| {
        assert_eq!(report.response.body, Some(json!("one")));
        assert_eq!(report.stats.duplicate_ids, 1);
    }
);

hostile!(
    a_one_megabyte_answer_is_101,
    r#"healthy; next
printf '{"id":"%s","status":"ok","body":"' "$id"; head -c 1000000 /dev/zero | tr '\0' x; printf '"}\n'
next; reply ok"#,
    |report| {
        assert_eq!(report.response.code, Some(codes::LINE_TOO_LONG));
        let m = message(&report);
        assert!(
            m.contains("over the 131072-byte limit (OMNIFLOW_PLUGIN_MAX_LINE)"),
            "{m}"
        );
        assert_eq!(report.stats.oversized_lines, 1);
        assert!(
            report.duration < util::options().timeout,
            "failed at once: {:?}",
            report.duration
        );
        let exit = report.exit.unwrap();
        assert!(
            exit.acknowledged_shutdown,
            "the worker survived the big line: {exit:?}"
        );
    }
);

hostile!(
    endless_line_without_newline_is_101_not_a_memory_problem,
    r#"healthy; next; head -c 20000000 /dev/zero | tr '\0' y; sleep 30"#,
    |report| {
        assert_eq!(
            report.response.code,
            Some(codes::LINE_TOO_LONG),
            "{:?}",
            report.response
        );
        assert!(
            message(&report).contains("131072-byte limit"),
            "{}",
            message(&report)
        );
    }
);

hostile!(
    unhealthy_plugin_is_not_called,
    r#"next; printf '{"id":"%s","status":"error","code":500,"message":"database unreachable"}\n' "$id"; next; [[ $type == exec ]] && echo "exec reached" >&2"#,
    |report| {
        assert_eq!(report.response.status, Status::Error);
        assert_eq!(
            report.response.code,
            Some(500),
            "the plugin's code passes through"
        );
        let m = message(&report);
        assert!(
            m.contains("answered the health check with status error: database unreachable"),
            "{m}"
        );
        assert!(!report.stderr_tail.contains("exec reached"));
        assert_eq!(report.health.unwrap().status, Status::Error);
    }
);

hostile!(
    ignores_shutdown_and_is_killed_with_its_children,
    r#"trap '' TERM; healthy; next; reply ok '"done"'; sleep 300 & sleep 300"#,
    |report| {
        assert_eq!(report.response.body, Some(json!("done")));
        let exit = report.exit.unwrap();
        assert!(exit.killed, "{exit:?}");
        assert!(
            report.duration < Duration::from_secs(4),
            "{:?}",
            report.duration
        );
    }
);

#[tokio::test]
async fn children_of_a_killed_plugin_die_with_it() {
    let env = Env::new();
    let marker = env.work_dir.join("child.pid");
    let body = format!(
        r#"healthy; next; (sleep 300) & echo $! > {}; reply ok; sleep 300"#,
        marker.display()
    );
    let spec = env.script("forker", &body);
    let mut opts = util::options();
    opts.shutdown_grace = Duration::from_millis(200);
    let report = call_once(&spec, &call("echo", json!({})), &opts).await;
    assert_eq!(report.response.status, Status::Ok);
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed and reaped by init; /proc/PID disappears (or is a zombie) soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = state.is_empty() || state.split_whitespace().nth(2) == Some("Z");
        if gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child {pid} survived its plugin: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_program_that_cannot_start_becomes_an_error_response() {
    let env = Env::new();
    let spec = LaunchSpec {
        program: env.plugin_dir.join("missing-binary"),
        args: vec![],
        cwd: env.work_dir.clone(),
        env: vec![],
    };
    let report = call_once(&spec, &ExecCall::default(), &util::options()).await;
    assert_eq!(report.response.code, Some(codes::INTERNAL));
    assert!(
        message(&report).contains("could not start"),
        "{}",
        message(&report)
    );
    assert!(report.exit.is_none());
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_sending() {
    let env = Env::new();
    let spec = env.example("python-echo", "plugin.py");
    let mut opts = util::options();
    opts.limits.max_line = 1024;
    let report = call_once(
        &spec,
        &call("echo", json!({"message": "x".repeat(5000)})),
        &opts,
    )
    .await;
    assert_eq!(report.response.code, Some(codes::LINE_TOO_LONG));
    assert!(
        message(&report).contains("was not sent"),
        "{}",
        message(&report)
    );
    assert!(
        report.exit.unwrap().acknowledged_shutdown,
        "the plugin itself was fine"
    );
}
