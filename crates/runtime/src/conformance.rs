//! `plugd test`: a protocol conformance run against one plugin process.
//!
//! The checks drive the process directly over its stdin and stdout instead of
//! through [`crate::Worker`], because some of them must send what a well-behaved
//! host never sends (a broken JSON line, an over-long line, an unknown request
//! type). Replies are read with the same [`NdjsonCodec`] the host uses, so a
//! plugin that passes here is read the same way in production.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::FramedRead;

use crate::codec::{Frame, NdjsonCodec};
use crate::protocol::{Request, RequestType, Response, Status, codes};
use crate::{Launched, Limits};

/// The action name no plugin declares, for the "unknown action" check.
const NO_SUCH_ACTION: &str = "plugd-conformance-no-such-action";

/// One check and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked ("health", "exec echo", "malformed JSON", …).
    pub name: String,
    /// Whether the plugin behaved as DESIGN §2 requires (true for a skipped
    /// check).
    pub passed: bool,
    /// The check does not apply to this plugin (and says why in `detail`).
    pub skipped: bool,
    /// What was seen: the answer's status and code, or what went wrong.
    pub detail: String,
}

/// Settings of a run.
#[derive(Debug, Clone, Copy)]
pub struct ConformanceOptions {
    /// How long each answer may take (the first one includes the interpreter
    /// start).
    pub timeout: Duration,
    /// How long the plugin has to exit after `shutdown`.
    pub exit_grace: Duration,
    /// The line limit the plugin was started with (its
    /// `OMNIFLOW_PLUGIN_MAX_LINE`); the over-long line is one byte past it.
    pub limits: Limits,
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        ConformanceOptions {
            timeout: Duration::from_secs(10),
            exit_grace: Duration::from_secs(3),
            limits: Limits::default(),
        }
    }
}

/// Runs every check against a freshly started plugin (`actions`: what its
/// manifest declares). Never panics on plugin behaviour; a plugin that stops
/// answering fails the check it stopped at and every later one.
pub async fn check_plugin(
    mut launched: Launched,
    actions: &[String],
    options: &ConformanceOptions,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let child = &mut launched.child;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        checks.push(Check {
            name: "start".into(),
            passed: false,
            skipped: false,
            detail: "the plugin process has no piped stdin/stdout".into(),
        });
        return checks;
    };
    // Drained so a chatty plugin never blocks on a full stderr pipe.
    let stderr = child.stderr.take().map(|mut e| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf).await;
            buf
        })
    });
    let mut peer = Peer {
        stdin,
        stdout: FramedRead::new(stdout, NdjsonCodec::new(options.limits.max_line)),
        timeout: options.timeout,
        max_line: options.limits.max_line,
    };

    checks.push(judge("health", peer.health("conf-health").await, |r| {
        r.status == Status::Ok
    }));

    // Manifests that declare no actions (Wingman's) learn them from `meta`.
    let mut actions = actions.to_vec();
    if actions.is_empty() {
        let line = peer.encode(&Request::new("conf-meta", RequestType::Meta, None));
        let answer = peer.exchange(&line, Some("conf-meta")).await;
        if let Ok(r) = &answer {
            actions = action_names(r.body.as_ref());
        }
        checks.push(judge("meta (for the action list)", answer, |r| {
            r.status == Status::Ok
        }));
    }
    for action in &actions {
        let id = format!("conf-exec-{action}");
        let line = peer.encode(&Request::new(
            id.clone(),
            RequestType::Exec,
            Some(json!({"action": action, "args": {}})),
        ));
        // Any well-formed answer passes: with empty arguments an action may
        // rightly refuse (201); what matters is one answer, for this id.
        checks.push(judge(
            &format!("exec {action}"),
            peer.exchange(&line, Some(&id)).await,
            |_| true,
        ));
    }

    let malformed = b"{\"id\":\"conf-bad\",\"type\":\n".to_vec();
    let answer = peer.exchange(&malformed, None).await;
    let alive = peer.health("conf-health-2").await;
    checks.push(judge_and_alive(
        "malformed JSON → 100",
        answer,
        alive,
        |r| r.status == Status::Error && r.code == Some(codes::MALFORMED_JSON),
    ));

    let mut oversized =
        br#"{"id":"conf-long","type":"exec","payload":{"action":"x","args":{"pad":""#.to_vec();
    oversized.resize(peer.max_line + 1, b'a');
    oversized.extend_from_slice(b"\"}}}\n");
    let answer = peer.exchange(&oversized, None).await;
    let alive = peer.health("conf-health-3").await;
    checks.push(judge_and_alive(
        "oversized line → 101",
        answer,
        alive,
        |r| r.status == Status::Error && r.code == Some(codes::LINE_TOO_LONG),
    ));

    let unknown_type = br#"{"id":"conf-type","type":"plugd-conformance-unknown","payload":null}"#;
    let mut line = unknown_type.to_vec();
    line.push(b'\n');
    checks.push(judge(
        "unknown request type → error",
        peer.exchange(&line, Some("conf-type")).await,
        |r| r.status == Status::Error,
    ));

    if actions.is_empty() {
        // Nothing declared: every action name reaches the one entry point, as
        // DESIGN §4 allows for single-function plugins.
        checks.push(Check {
            name: "unknown action → 200".into(),
            passed: true,
            skipped: true,
            detail: "not applicable: the plugin declares no actions, so every call reaches its entry point".into(),
        });
    } else {
        let line = peer.encode(&Request::new(
            "conf-action",
            RequestType::Exec,
            Some(json!({"action": NO_SUCH_ACTION, "args": {}})),
        ));
        checks.push(judge(
            "unknown action → 200",
            peer.exchange(&line, Some("conf-action")).await,
            |r| r.status == Status::Error && r.code == Some(codes::UNSUPPORTED_ACTION),
        ));
    }

    let line = peer.encode(&Request::new("conf-shutdown", RequestType::Shutdown, None));
    checks.push(judge(
        "shutdown",
        peer.exchange(&line, Some("conf-shutdown")).await,
        |r| r.status == Status::Ok,
    ));
    drop(peer);

    let exit = tokio::time::timeout(options.exit_grace, child.wait()).await;
    checks.push(match exit {
        Ok(Ok(status)) if status.success() => Check {
            name: "exit after shutdown".into(),
            passed: true,
            skipped: false,
            detail: "exited 0".into(),
        },
        Ok(Ok(status)) => Check {
            name: "exit after shutdown".into(),
            passed: false,
            skipped: false,
            detail: format!("exited with {status}"),
        },
        Ok(Err(e)) => Check {
            name: "exit after shutdown".into(),
            passed: false,
            skipped: false,
            detail: format!("waiting for it failed: {e}"),
        },
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Check {
                name: "exit after shutdown".into(),
                passed: false,
                skipped: false,
                detail: format!(
                    "still running {} s after shutdown; killed",
                    options.exit_grace.as_secs_f64()
                ),
            }
        }
    });
    if let Some(stderr) = stderr
        && checks.iter().any(|c| !c.passed)
        && let Ok(bytes) = stderr.await
        && !bytes.is_empty()
    {
        let text = String::from_utf8_lossy(&bytes);
        let tail: String = text
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        if let Some(first_failure) = checks.iter_mut().find(|c| !c.passed) {
            first_failure.detail.push_str(&format!("; stderr: {tail}"));
        }
    }
    checks
}

/// The plugin's pipes, as the checks use them.
struct Peer {
    stdin: tokio::process::ChildStdin,
    stdout: FramedRead<tokio::process::ChildStdout, NdjsonCodec>,
    timeout: Duration,
    max_line: usize,
}

impl Peer {
    async fn health(&mut self, id: &str) -> Result<Response, String> {
        let line = self.encode(&Request::new(id, RequestType::Health, None));
        self.exchange(&line, Some(id)).await
    }

    fn encode(&self, request: &Request) -> Vec<u8> {
        let mut line = serde_json::to_vec(request).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Writes `line` and reads the next answer. With `expect_id`, the answer
    /// must carry that id.
    async fn exchange(&mut self, line: &[u8], expect_id: Option<&str>) -> Result<Response, String> {
        if let Err(e) = self.stdin.write_all(line).await {
            return Err(format!(
                "writing the request failed: {e} (has the plugin exited?)"
            ));
        }
        let _ = self.stdin.flush().await;
        let frame = match tokio::time::timeout(self.timeout, self.stdout.next()).await {
            Err(_) => {
                return Err(format!("no answer within {} s", self.timeout.as_secs_f64()));
            }
            Ok(None) => return Err("the plugin closed stdout (exited?)".into()),
            Ok(Some(Err(e))) => return Err(format!("reading stdout failed: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let bytes = match frame {
            Frame::Line(bytes) => bytes,
            Frame::Oversized { .. } | Frame::Discarded { .. } => {
                return Err(format!(
                    "the answer was longer than the {}-byte line limit",
                    self.max_line
                ));
            }
        };
        let quote = || String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        let mut value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the answer is not JSON ({e}): {}", quote()))?;
        // The answer to a line that could not be parsed has no id to echo: `null`
        // (or none) is right there, so it is read as an empty id.
        if let Some(obj) = value.as_object_mut()
            && obj.get("id").is_none_or(serde_json::Value::is_null)
        {
            obj.insert("id".into(), json!(""));
        }
        let response: Response = serde_json::from_value(value)
            .map_err(|e| format!("the answer is not a response envelope ({e}): {}", quote()))?;
        if let Some(id) = expect_id
            && response.id != id
        {
            return Err(format!(
                "answered with id {:?}, expected {id:?}",
                response.id
            ));
        }
        Ok(response)
    }
}

/// Action names from a `meta` body: `{"actions": ["a", …]}` or
/// `{"actions": [{"name": "a"}, …]}`.
fn action_names(body: Option<&serde_json::Value>) -> Vec<String> {
    body.and_then(|b| b.get("actions"))
        .and_then(|a| a.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|a| a.as_str().or_else(|| a.get("name")?.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn describe(r: &Response) -> String {
    let mut s = format!("{}", r.status);
    if let Some(code) = r.code {
        s.push_str(&format!(" {code}"));
    }
    if let Some(m) = &r.message {
        let m: String = m.chars().take(120).collect();
        s.push_str(&format!(": {m}"));
    }
    s
}

fn judge(name: &str, answer: Result<Response, String>, ok: impl Fn(&Response) -> bool) -> Check {
    match answer {
        Ok(r) => Check {
            name: name.into(),
            passed: ok(&r),
            skipped: false,
            detail: describe(&r),
        },
        Err(e) => Check {
            name: name.into(),
            passed: false,
            skipped: false,
            detail: e,
        },
    }
}

/// A bad-input check passes only when the plugin also survives it.
fn judge_and_alive(
    name: &str,
    answer: Result<Response, String>,
    alive: Result<Response, String>,
    ok: impl Fn(&Response) -> bool,
) -> Check {
    let mut check = judge(name, answer, ok);
    match alive {
        Ok(r) if r.status == Status::Ok => {}
        Ok(r) => {
            check.passed = false;
            check.detail.push_str(&format!(
                "; the next health check answered {}",
                describe(&r)
            ));
        }
        Err(e) => {
            check.passed = false;
            check
                .detail
                .push_str(&format!("; the plugin stopped serving afterwards: {e}"));
        }
    }
    check
}
