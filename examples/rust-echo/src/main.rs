//! rust-echo: a fast NDJSON echo plugin for plugd's tests and benchmarks.
//!
//! Requests: `health`, `meta`, `exec` (actions `echo` and `reverse`, arguments from
//! `payload.args` or flat from `payload`), `shutdown`. Requests are answered in
//! order as they are read, so any number may be in flight on one stdin. Responses go
//! through a buffered stdout that is flushed whenever no further request is already
//! buffered, i.e. before every wait for input: an answer is never held back, and a
//! burst of requests costs one write. `OMNIFLOW_PLUGIN_MAX_LINE` is enforced before
//! parsing, without ever holding more than the limit in memory.

use std::io::{self, BufRead, BufReader, BufWriter, Write};

use serde_json::{Map, Value, json};

const DEFAULT_MAX_LINE: usize = 131_072;

/// What reading one line produced.
enum Line {
    /// A complete line (without `\n` / `\r\n`) in the buffer.
    Complete,
    /// A line over the limit, drained; its first bytes are in the buffer.
    TooLong(usize),
    Eof,
}

/// Reads one line into `buf`, keeping at most `max + 1` bytes of it.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    let mut total = 0usize;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if total == 0 {
                Line::Eof
            } else if total > max {
                Line::TooLong(total)
            } else {
                Line::Complete
            });
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let content = if done {
            &chunk[..take - 1]
        } else {
            &chunk[..take]
        };
        let room = (max + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&content[..content.len().min(room)]);
        total += content.len();
        input.consume(take);
        if done {
            if buf.last() == Some(&b'\r') && total <= max + 1 {
                buf.pop();
                total -= 1;
            }
            return Ok(if total > max {
                Line::TooLong(total)
            } else {
                Line::Complete
            });
        }
    }
}

fn ok(id: &Value, body: Value) -> Value {
    json!({"id": id, "status": "ok", "code": 0, "body": body})
}

fn error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"id": id, "status": "error", "code": code, "message": message.into()})
}

/// An argument from `payload.args`, else flat from `payload`.
fn argument<'a>(payload: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    payload
        .get("args")
        .and_then(Value::as_object)
        .and_then(|args| args.get(name))
        .or_else(|| payload.get(name))
}

/// One request → (response, keep running).
fn handle(request: &Value) -> (Value, bool) {
    let Some(obj) = request.as_object() else {
        return (
            error(&Value::Null, 100, "a request must be a JSON object"),
            true,
        );
    };
    let id = match obj.get("id") {
        Some(id @ Value::String(_)) => id.clone(),
        _ => return (error(&Value::Null, 102, "request has no string `id`"), true),
    };
    let empty = Map::new();
    let payload = obj
        .get("payload")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    match obj.get("type").and_then(Value::as_str) {
        Some("health") => (
            ok(&id, json!({"status": "healthy", "plugin": "rust-echo"})),
            true,
        ),
        Some("shutdown") => (ok(&id, json!({"status": "bye"})), false),
        Some("meta") => (
            ok(
                &id,
                json!({"plugin": "rust-echo", "actions": [
                    {"name": "echo", "description": "Returns the message it was given."},
                    {"name": "reverse", "description": "Returns the message reversed."},
                ]}),
            ),
            true,
        ),
        Some("exec") => {
            let action = payload.get("action").and_then(Value::as_str).unwrap_or("");
            if action != "echo" && action != "reverse" {
                return (
                    error(
                        &id,
                        200,
                        format!("unknown action {action:?}; known: echo, reverse"),
                    ),
                    true,
                );
            }
            match argument(payload, "message").and_then(Value::as_str) {
                Some(message) if action == "echo" => {
                    (ok(&id, json!({"action": "echo", "message": message})), true)
                }
                Some(message) => {
                    let reversed: String = message.chars().rev().collect();
                    (
                        ok(&id, json!({"action": "reverse", "message": reversed})),
                        true,
                    )
                }
                None => (
                    error(
                        &id,
                        201,
                        format!("{action} needs a string `message` argument"),
                    ),
                    true,
                ),
            }
        }
        Some(other) => (
            error(&id, 200, format!("unsupported request type {other:?}")),
            true,
        ),
        None => (error(&id, 102, "request has no string `type`"), true),
    }
}

/// The id of an unparsable line, when it starts `{"id":"…"`, so the host can match
/// the error to its request.
fn sniff_id(head: &[u8]) -> Value {
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]);
    let Some(rest) = text.trim_start().strip_prefix('{') else {
        return Value::Null;
    };
    let Some(rest) = rest.trim_start().strip_prefix("\"id\"") else {
        return Value::Null;
    };
    let Some(rest) = rest.trim_start().strip_prefix(':') else {
        return Value::Null;
    };
    let Some(rest) = rest.trim_start().strip_prefix('"') else {
        return Value::Null;
    };
    match rest.find(['"', '\\']) {
        Some(end) if rest[end..].starts_with('"') => Value::String(rest[..end].to_string()),
        _ => Value::Null,
    }
}

/// Writes a response with its keys in envelope order, `id` first: serde_json
/// (without `preserve_order`) would sort them, and a host that must discard an
/// over-long line can only match it to its request when the id comes early.
fn write_response(out: &mut impl Write, response: &Value) -> io::Result<()> {
    out.write_all(b"{")?;
    let mut first = true;
    for key in ["id", "status", "code", "message", "body"] {
        if let Some(value) = response.get(key) {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            write!(out, "\"{key}\":")?;
            serde_json::to_writer(&mut *out, value)?;
        }
    }
    out.write_all(b"}\n")
}

fn main() -> io::Result<()> {
    let max_line = std::env::var("OMNIFLOW_PLUGIN_MAX_LINE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(DEFAULT_MAX_LINE);
    let mut input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut line = Vec::with_capacity(4096);
    loop {
        if input.buffer().is_empty() {
            // About to wait for input: nothing may stay in our buffer meanwhile.
            out.flush()?;
        }
        let (response, keep_running) = match read_line(&mut input, &mut line, max_line)? {
            Line::Eof => break,
            Line::TooLong(size) => {
                eprintln!(
                    "WARN rust-echo: request line of {size} bytes is over the {max_line}-byte limit"
                );
                let message =
                    format!("request line of {size} bytes is over the {max_line}-byte limit");
                (error(&sniff_id(&line), 101, message), true)
            }
            Line::Complete if line.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Complete => match serde_json::from_slice::<Value>(&line) {
                Ok(request) => handle(&request),
                Err(err) => (
                    error(&sniff_id(&line), 100, format!("malformed JSON: {err}")),
                    true,
                ),
            },
        };
        write_response(&mut out, &response)?;
        if !keep_running {
            break;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut reader = BufReader::with_capacity(7, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader, &mut buf, max).unwrap() {
                Line::Eof => return out,
                Line::Complete => out.push(String::from_utf8_lossy(&buf).into_owned()),
                Line::TooLong(n) => {
                    assert!(buf.len() <= max + 1, "kept {} bytes", buf.len());
                    out.push(format!("too long: {n}"));
                }
            }
        }
    }

    #[test]
    fn reads_lines_within_the_limit_only() {
        let got = lines(b"12345\r\n123456\nshort\n12345678901234567890\nend", 5);
        assert_eq!(
            got,
            ["12345", "too long: 6", "short", "too long: 20", "end"]
        );
    }

    #[test]
    fn answers_both_argument_styles_and_errors() {
        let flat = handle(
            &json!({"id": "1", "type": "exec", "payload": {"action": "echo", "message": "hi"}}),
        );
        assert_eq!(flat.0["body"]["message"], "hi");
        let nested = handle(
            &json!({"id": "2", "type": "exec", "payload": {"action": "reverse", "args": {"message": "abc"}}}),
        );
        assert_eq!(nested.0["body"]["message"], "cba");
        assert_eq!(
            handle(&json!({"id": "3", "type": "exec", "payload": {"action": "x"}})).0["code"],
            200
        );
        assert_eq!(
            handle(&json!({"id": "4", "type": "exec", "payload": {"action": "echo"}})).0["code"],
            201
        );
        assert_eq!(handle(&json!({"type": "health"})).0["code"], 102);
        assert!(!handle(&json!({"id": "5", "type": "shutdown"})).1);
    }

    #[test]
    fn sniffs_only_a_leading_plain_id() {
        assert_eq!(sniff_id(br#" {"id":"a1","x":"#), json!("a1"));
        assert_eq!(sniff_id(br#"{"x":1,"id":"a1"}"#), Value::Null);
        assert_eq!(sniff_id(br#"{"id":"a\"b"}"#), Value::Null);
    }
}
