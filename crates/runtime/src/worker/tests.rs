//! The worker driven over in-memory pipes by a scripted fake plugin.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

use super::*;
use crate::protocol::Status;

const PIPE: usize = 1 << 20;
const SHORT: Duration = Duration::from_millis(150);
const LONG: Duration = Duration::from_secs(5);

/// The plugin's side of the three pipes.
struct Fake {
    stdin: Lines<BufReader<DuplexStream>>,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
}

impl Fake {
    async fn next_request(&mut self) -> Request {
        let line = tokio::time::timeout(LONG, self.stdin.next_line())
            .await
            .expect("the worker sent nothing")
            .unwrap()
            .expect("stdin closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad request line {line}: {e}"))
    }

    async fn say(&mut self, line: &str) {
        let out = self.stdout.as_mut().expect("stdout closed");
        out.write_all(line.as_bytes()).await.unwrap();
        out.write_all(b"\n").await.unwrap();
    }

    async fn answer(&mut self, id: &str, body: serde_json::Value) {
        self.say(&json!({"id": id, "status": "ok", "code": 0, "body": body}).to_string())
            .await;
    }

    async fn log(&mut self, line: &str) {
        let err = self.stderr.as_mut().expect("stderr closed");
        err.write_all(line.as_bytes()).await.unwrap();
        err.write_all(b"\n").await.unwrap();
    }

    /// Closes stdout and stderr, as a process exiting does.
    fn exit(&mut self) {
        self.stdout = None;
        self.stderr = None;
    }
}

fn setup(max_line: usize) -> (Worker, Fake) {
    let (stdin_w, stdin_r) = tokio::io::duplex(PIPE);
    let (stdout_w, stdout_r) = tokio::io::duplex(PIPE);
    let (stderr_w, stderr_r) = tokio::io::duplex(PIPE);
    let worker = Worker::from_streams(
        stdin_w,
        stdout_r,
        stderr_r,
        "fake@1.0.0".into(),
        Limits { max_line },
    );
    let fake = Fake {
        stdin: BufReader::new(stdin_r).lines(),
        stdout: Some(stdout_w),
        stderr: Some(stderr_w),
    };
    (worker, fake)
}

#[tokio::test]
async fn answers_out_of_order_reach_their_callers() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(fake.next_request().await);
        }
        for request in ids.iter().rev() {
            let n = request.payload.as_ref().unwrap()["n"].clone();
            fake.answer(&request.id, json!({"n": n})).await;
        }
    };
    let calls = async {
        tokio::join!(
            worker.request(RequestType::Exec, Some(json!({"n": 1})), LONG),
            worker.request(RequestType::Exec, Some(json!({"n": 2})), LONG),
            worker.request(RequestType::Exec, Some(json!({"n": 3})), LONG),
        )
    };
    let ((a, b, c), ()) = tokio::join!(calls, plugin);
    assert_eq!(a.unwrap().body, Some(json!({"n": 1})));
    assert_eq!(b.unwrap().body, Some(json!({"n": 2})));
    assert_eq!(c.unwrap().body, Some(json!({"n": 3})));
    let stats = worker.stats();
    assert_eq!(
        (stats.requests, stats.responses, stats.violations()),
        (3, 3, 0)
    );
}

#[tokio::test]
async fn unknown_and_duplicate_ids_are_counted_not_delivered() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let first = fake.next_request().await;
        fake.answer("made-up-id", json!("wrong")).await;
        fake.answer(&first.id, json!("right")).await;
        fake.answer(&first.id, json!("again")).await;
        let second = fake.next_request().await;
        fake.answer(&second.id, json!("second")).await;
    };
    let calls = async {
        let one = worker.request(RequestType::Exec, None, LONG).await.unwrap();
        let two = worker.request(RequestType::Exec, None, LONG).await.unwrap();
        (one, two)
    };
    let ((one, two), ()) = tokio::join!(calls, plugin);
    assert_eq!(one.body, Some(json!("right")));
    // The duplicate was written before the second answer, so it has been routed.
    assert_eq!(two.body, Some(json!("second")));
    let stats = worker.stats();
    assert_eq!(stats.unknown_ids, 1);
    assert_eq!(stats.duplicate_ids, 1);
    assert_eq!(stats.responses, 2);
}

#[tokio::test]
async fn stray_lines_are_survived_and_quoted_when_no_answer_comes() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let request = fake.next_request().await;
        fake.say("DEBUG: starting up").await;
        fake.say(r#"{"not":"an envelope"}"#).await;
        fake.say("\u{1b}[31mbinary\u{0}junk").await;
        fake.say("   ").await; // blank lines are tolerated silently
        request
    };
    let (result, request) = tokio::join!(worker.request(RequestType::Exec, None, SHORT), plugin);
    let err = result.unwrap_err();
    assert_eq!(err.code(), codes::TIMEOUT);
    let message = err.to_string();
    assert!(
        message.contains("did not answer the exec request within 150 ms"),
        "{message}"
    );
    assert!(
        message.contains("3 lines that are not protocol responses"),
        "{message}"
    );
    assert!(message.contains("first: 'DEBUG: starting up'"), "{message}");
    assert_eq!(worker.stats().stray_lines, 3);

    // The plugin was told the call is off.
    let cancel = fake.next_request().await;
    assert_eq!(cancel.kind, RequestType::Cancel);
    assert_eq!(cancel.payload, Some(json!({"id": request.id})));
    // The worker is still usable, and the late answer is counted as late.
    fake.answer(&request.id, json!(null)).await;
    let plugin = async {
        let next = fake.next_request().await;
        fake.answer(&next.id, json!("fine")).await;
    };
    let (result, ()) = tokio::join!(worker.request(RequestType::Health, None, LONG), plugin);
    assert_eq!(result.unwrap().body, Some(json!("fine")));
    assert_eq!(worker.stats().late_responses, 1);
}

#[tokio::test]
async fn an_oversized_answer_naming_its_id_fails_the_call_at_once() {
    let (worker, mut fake) = setup(256);
    let plugin = async {
        let request = fake.next_request().await;
        // Written by hand: json! sorts keys, and a plugin puts its id first.
        let huge = format!(
            r#"{{"id":"{}","status":"ok","body":"{}"}}"#,
            request.id,
            "x".repeat(100_000)
        );
        fake.say(&huge).await;
    };
    let started = std::time::Instant::now();
    let (result, ()) = tokio::join!(worker.request(RequestType::Exec, None, LONG), plugin);
    let err = result.unwrap_err();
    assert!(
        started.elapsed() < LONG / 2,
        "waited for the timeout: {err}"
    );
    assert_eq!(err.code(), codes::LINE_TOO_LONG);
    let message = err.to_string();
    assert!(
        message.contains("256-byte limit") && message.contains("OMNIFLOW_PLUGIN_MAX_LINE"),
        "{message}"
    );
    assert_eq!(worker.stats().oversized_lines, 1);
}

#[tokio::test]
async fn an_oversized_line_without_a_visible_id_turns_the_timeout_into_101() {
    let (worker, mut fake) = setup(256);
    let plugin = async {
        let request = fake.next_request().await;
        // The id comes after the kept prefix, so plugd cannot tell whose it was.
        let huge = format!(
            r#"{{"body":"{}","id":"{}","status":"ok"}}"#,
            "y".repeat(5000),
            request.id
        );
        fake.say(&huge).await;
    };
    let (result, ()) = tokio::join!(worker.request(RequestType::Exec, None, SHORT), plugin);
    let err = result.unwrap_err();
    assert!(
        matches!(err, CallError::LineTooLong { limit: 256, .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), codes::LINE_TOO_LONG);
}

#[tokio::test]
async fn eof_mid_request_fails_pending_calls_at_once_with_stderr() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        fake.next_request().await;
        fake.next_request().await;
        fake.log("Traceback: something broke").await;
        fake.log("ValueError: disk on fire").await;
        fake.exit();
    };
    let started = std::time::Instant::now();
    let calls = async {
        tokio::join!(
            worker.request(RequestType::Exec, None, LONG),
            worker.request(RequestType::Exec, None, LONG)
        )
    };
    let ((a, b), ()) = tokio::join!(calls, plugin);
    assert!(started.elapsed() < LONG / 2, "waited for the timeout");
    for result in [a, b] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, CallError::Exited { status: None, .. }),
            "{err:?}"
        );
        assert_eq!(err.code(), codes::INTERNAL);
        let message = err.to_string();
        assert!(
            message.contains("closed its stdout before answering"),
            "{message}"
        );
        assert!(
            message.contains("last stderr: Traceback: something broke\nValueError: disk on fire"),
            "{message}"
        );
    }
    assert!(worker.is_closed());
    // A closed worker refuses new work at once.
    let err = worker
        .request(RequestType::Health, None, LONG)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Exited { .. }), "{err:?}");
}

#[tokio::test]
async fn an_outgoing_request_over_the_limit_is_not_written() {
    let (worker, mut fake) = setup(128);
    let err = worker
        .request(
            RequestType::Exec,
            Some(json!({"blob": "z".repeat(500)})),
            LONG,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::RequestTooLong { limit: 128, .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), codes::LINE_TOO_LONG);
    assert!(err.to_string().contains("was not sent"), "{err}");
    let plugin = async {
        let request = fake.next_request().await;
        assert_eq!(
            request.kind,
            RequestType::Health,
            "the refused request never reached the plugin"
        );
        fake.answer(&request.id, json!(null)).await;
    };
    let (result, ()) = tokio::join!(worker.request(RequestType::Health, None, LONG), plugin);
    result.unwrap();
}

#[tokio::test]
async fn busy_and_error_answers_are_passed_through() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let r = fake.next_request().await;
        fake.say(&json!({"id": r.id, "status": "busy"}).to_string())
            .await;
        let r = fake.next_request().await;
        fake.say(
            &json!({"id": r.id, "status": "error", "code": 422, "message": "nope"}).to_string(),
        )
        .await;
    };
    let calls = async {
        let busy = worker.request(RequestType::Exec, None, LONG).await.unwrap();
        let error = worker.request(RequestType::Exec, None, LONG).await.unwrap();
        (busy, error)
    };
    let ((busy, error), ()) = tokio::join!(calls, plugin);
    assert_eq!(busy.status, Status::Busy);
    assert_eq!((error.status, error.code), (Status::Error, Some(422)));
}

#[tokio::test]
async fn ids_in_flight_must_be_unique() {
    let (worker, mut fake) = setup(4096);
    let first = worker.request_with_id("same".into(), RequestType::Exec, None, LONG);
    let second = async {
        // Let the first register before the second tries the same id.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let err = worker
            .request_with_id("same".into(), RequestType::Exec, None, LONG)
            .await
            .unwrap_err();
        let request = fake.next_request().await;
        fake.answer(&request.id, json!(1)).await;
        err
    };
    let (first, err) = tokio::join!(first, second);
    assert!(
        matches!(err, CallError::DuplicateRequestId { .. }),
        "{err:?}"
    );
    assert_eq!(first.unwrap().body, Some(json!(1)));
}

#[tokio::test]
async fn a_caller_that_gives_up_leaves_nothing_pending() {
    let (worker, mut fake) = setup(4096);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        worker.request(RequestType::Exec, None, LONG),
    )
    .await;
    assert!(abandoned.is_err());
    assert!(worker.shared.state().pending.is_empty());
    let request = fake.next_request().await;
    assert_eq!(fake.next_request().await.kind, RequestType::Cancel);
    fake.answer(&request.id, json!(null)).await;
    // Routed through the same reader, so once this one is answered the late one was seen.
    let plugin = async {
        let next = fake.next_request().await;
        fake.answer(&next.id, json!(null)).await;
    };
    let (result, ()) = tokio::join!(worker.request(RequestType::Health, None, LONG), plugin);
    result.unwrap();
    assert_eq!(worker.stats().late_responses, 1);
    assert_eq!(worker.stats().unknown_ids, 0);
}

#[tokio::test]
async fn stderr_tail_is_bounded_and_keeps_the_end() {
    let (worker, mut fake) = setup(4096);
    for i in 0..5000 {
        fake.log(&format!("log line {i:05} {}", "-".repeat(40)))
            .await;
    }
    fake.log("the very end").await;
    fake.exit();
    tokio::time::timeout(LONG, worker.closed.clone().wait_for(|c| *c))
        .await
        .unwrap()
        .unwrap();
    let tail = worker.stderr_tail();
    assert!(tail.len() <= STDERR_TAIL_BYTES, "{} bytes kept", tail.len());
    assert!(tail.len() > STDERR_TAIL_BYTES / 2);
    assert!(
        tail.starts_with("log line "),
        "the tail starts at a line: {:?}",
        &tail[..40]
    );
    assert!(tail.ends_with("the very end\n"));
}

#[tokio::test]
async fn shutdown_over_streams_is_acknowledged() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let request = fake.next_request().await;
        assert_eq!(request.kind, RequestType::Shutdown);
        fake.answer(&request.id, json!({"bye": true})).await;
        fake.exit();
        // After the answer plugd closes stdin.
        assert!(fake.stdin.next_line().await.unwrap().is_none());
    };
    let (report, ()) = tokio::join!(worker.shutdown(LONG), plugin);
    assert!(report.acknowledged_shutdown);
    assert!(!report.killed);
    assert_eq!(report.status, None);
    assert_eq!(report.stats.responses, 1);
}

#[test]
fn sniff_id_reads_only_plain_string_ids() {
    assert_eq!(
        sniff_id(br#"{"id":"abc","status":"ok","body":"xxx"#),
        Some("abc")
    );
    assert_eq!(sniff_id(br#"{ "id" : "a-1" ,"#), Some("a-1"));
    assert_eq!(sniff_id(br#"{"body":{"idx":1},"id":"z"}"#), Some("z"));
    assert_eq!(sniff_id(br#"{"id":7,"x":"y"}"#), None);
    assert_eq!(sniff_id(br#"{"id":"a\"b"}"#), None);
    assert_eq!(sniff_id(br#"{"id":"unterminated"#), None);
    assert_eq!(
        sniff_id(b"\xff\xfe{\"id\":\"q\"}"),
        None,
        "invalid UTF-8 before the id"
    );
    assert_eq!(sniff_id(b"{\"id\":\"q\"}\xff"), Some("q"));
}

#[test]
fn messages_read_well() {
    let exited = CallError::Exited {
        plugin: "echo@1.0.0".into(),
        kind: RequestType::Exec,
        status: Some(ExitStatus::from_raw(3 << 8)),
        stderr_tail: String::new(),
        noise: Noise::default(),
    };
    assert_eq!(
        exited.to_string(),
        "plugin echo@1.0.0 exited with status 3 before answering the exec request; it wrote nothing to stderr"
    );
    let killed = describe_exit(Some(ExitStatus::from_raw(9)));
    assert_eq!(killed, "was killed by signal 9 (SIGKILL)");
    let timeout = CallError::Timeout {
        plugin: "echo@1.0.0".into(),
        kind: RequestType::Exec,
        after: Duration::from_secs(10),
        killed: true,
        noise: Noise {
            stray_lines: 1,
            first_stray: Some("hi".into()),
            oversized_lines: 0,
            ..Noise::default()
        },
    };
    assert_eq!(
        timeout.to_string(),
        "plugin echo@1.0.0 did not answer the exec request within 10 s and was killed; the plugin also wrote 1 line that is not a protocol response; first: 'hi' (stdout is reserved for responses: log to stderr)"
    );
    let response = timeout.into_response("id-1");
    assert_eq!(response.code, Some(codes::TIMEOUT));
    assert_eq!(
        response.meta,
        Some(json!({"origin": "plugd", "error": "timeout"}))
    );
    assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
}

#[tokio::test]
async fn a_caller_that_gives_up_sends_cancel_and_its_answer_is_dropped_quietly() {
    let (worker, mut fake) = setup(4096);
    // The caller drops its call while it waits.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        worker.request_with_id("c-1".into(), RequestType::Exec, None, LONG),
    )
    .await;
    assert!(gave_up.is_err());
    let exec = fake.next_request().await;
    let cancel = fake.next_request().await;
    assert_eq!((exec.id.as_str(), exec.kind), ("c-1", RequestType::Exec));
    assert_eq!(cancel.kind, RequestType::Cancel);
    assert_eq!(cancel.payload, Some(json!({"id": "c-1"})));
    assert_ne!(cancel.id, "c-1");
    // A plugin that does not know `cancel` says so; the original answer comes late.
    fake.say(
        &json!({"id": cancel.id, "status": "error", "code": 400, "message": "unknown type"})
            .to_string(),
    )
    .await;
    fake.answer("c-1", json!("late")).await;
    let plugin = async {
        let next = fake.next_request().await;
        fake.answer(&next.id, json!("fine")).await;
    };
    let (next, ()) = tokio::join!(worker.request(RequestType::Exec, None, LONG), plugin);
    assert_eq!(next.unwrap().body, Some(json!("fine")));
    let stats = worker.stats();
    assert_eq!(
        (stats.violations(), stats.late_responses, stats.cancels),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn a_timeout_sends_cancel_but_an_answered_call_does_not() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let first = fake.next_request().await;
        fake.answer(&first.id, json!(1)).await;
        let second = fake.next_request().await;
        let cancel = fake.next_request().await;
        (second, cancel)
    };
    let calls = async {
        let one = worker.request(RequestType::Exec, None, LONG).await;
        let two = worker.request(RequestType::Exec, None, SHORT).await;
        (one, two)
    };
    let ((one, two), (second, cancel)) = tokio::join!(calls, plugin);
    assert!(one.unwrap().is_ok());
    assert!(matches!(two, Err(CallError::Timeout { .. })));
    assert_eq!(cancel.kind, RequestType::Cancel);
    assert_eq!(cancel.payload, Some(json!({"id": second.id})));
    assert_eq!(worker.stats().cancels, 1);
}

#[tokio::test]
async fn request_ids_are_unique_and_short() {
    let (worker, mut fake) = setup(4096);
    let plugin = async {
        let mut ids = HashSet::new();
        for _ in 0..3 {
            let r = fake.next_request().await;
            fake.answer(&r.id, json!(null)).await;
            assert!(r.id.len() < 36, "{}", r.id);
            ids.insert(r.id);
        }
        ids
    };
    let calls = async {
        for _ in 0..3 {
            worker
                .request(RequestType::Health, None, LONG)
                .await
                .unwrap();
        }
    };
    let ((), ids) = tokio::join!(calls, plugin);
    assert_eq!(ids.len(), 3);
    // Another worker never reuses them.
    let (other, mut fake) = setup(4096);
    let plugin = async {
        let r = fake.next_request().await;
        fake.answer(&r.id, json!(null)).await;
        r.id
    };
    let (_, id) = tokio::join!(other.request(RequestType::Health, None, LONG), plugin);
    assert!(!ids.contains(&id));
}

#[test]
fn borrowed_requests_encode_like_owned_ones() {
    let payload = json!({"action": "echo", "args": {"message": "hé\n"}});
    let owned = Request::new("r-1", RequestType::Exec, Some(payload.clone()));
    let borrowed = RequestRef {
        id: "r-1",
        kind: RequestType::Exec,
        timestamp: owned.timestamp.clone(),
        payload: Some(&payload),
    };
    assert_eq!(
        serde_json::to_string(&borrowed).unwrap(),
        serde_json::to_string(&owned).unwrap()
    );
    let none = RequestRef {
        payload: None,
        ..borrowed
    };
    let owned = Request {
        payload: None,
        ..owned
    };
    assert_eq!(
        serde_json::to_string(&none).unwrap(),
        serde_json::to_string(&owned).unwrap()
    );
}
