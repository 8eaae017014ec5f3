//! rust-echo as a process: many requests in flight on one stdin, answered in order.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[test]
fn answers_a_thousand_requests_in_flight_then_shuts_down() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rust-echo"))
        .env_clear()
        .env("OMNIFLOW_PLUGIN_MAX_LINE", "1024")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..1000 {
            let request = json!({"id": format!("r{i}"), "type": "exec", "payload": {"action": "reverse", "args": {"message": format!("ab{i}")}}});
            writeln!(stdin, "{request}").unwrap();
        }
        writeln!(stdin, "{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(5000)).unwrap();
        writeln!(stdin, "not json").unwrap();
        writeln!(stdin, r#"{{"id":"s","type":"shutdown","payload":null}}"#).unwrap();
        // The plugin may already have exited after the shutdown: a broken pipe is fine.
        let _ = writeln!(stdin, r#"{{"id":"after","type":"health"}}"#);
    });
    let responses: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(responses.len(), 1003, "nothing after shutdown is answered");
    for (i, response) in responses[..1000].iter().enumerate() {
        assert_eq!(response["id"], format!("r{i}"));
        let expected: String = format!("ab{i}").chars().rev().collect();
        assert_eq!(response["body"]["message"], expected);
    }
    assert_eq!(responses[1000]["code"], 101);
    assert_eq!(
        responses[1000]["id"], "big",
        "the id of an over-long line is recovered"
    );
    assert_eq!(responses[1001]["code"], 100);
    assert_eq!(responses[1002]["id"], "s");
    assert_eq!(responses[1002]["status"], "ok");
}
