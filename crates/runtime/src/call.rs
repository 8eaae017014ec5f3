//! [`call_once`]: what `plugd exec` does with an `ndjson` plugin: start it, probe it,
//! call it once, stop it.

use std::time::{Duration, Instant};

use crate::isolation::{Isolation, accounting, explain_limit, launch};
use crate::protocol::{ExecCall, RequestType, Response, codes};
use crate::worker::human_duration;
use crate::{CallError, CallOptions, ExitReport, LaunchSpec, Worker, WorkerStats};

/// Everything one call produced.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// Always a response: the plugin's own, or the error response plugd made for a
    /// failure (with the right code and a message naming the cause).
    pub response: Response,
    /// The answer to the start-up `health` probe, when one came.
    pub health: Option<Response>,
    /// Wall-clock time from spawn to exit.
    pub duration: Duration,
    /// The end of the plugin's stderr.
    pub stderr_tail: String,
    /// What was seen on stdout.
    pub stats: WorkerStats,
    /// How the process ended; `None` when it never started.
    pub exit: Option<ExitReport>,
    /// The sandbox's accounting (CPU time, peak memory, why it ended); `None`
    /// without a sandbox or when the helper left no report (it was killed).
    pub accounting: Option<plugd_sandbox::Outcome>,
}

/// Runs one call: spawn `spec`, `health` (must answer `ok` within
/// `opts.health_timeout`), `exec` with [`ExecCall::to_payload`] (within
/// `opts.timeout`), then `shutdown` with `opts.shutdown_grace` before the process
/// group is killed. A plugin that timed out is killed at once.
///
/// Never panics and never waits much beyond the timeouts: every failure becomes an
/// error [`Response`] in the report, with the exec request's id.
pub async fn call_once(spec: &LaunchSpec, call: &ExecCall, opts: &CallOptions) -> CallReport {
    call_once_in(spec, &Isolation::Direct, call, opts).await
}

/// [`call_once`], with the process started as `isolation` says. A sandbox that
/// cannot be set up gives an error response naming the failed step.
pub async fn call_once_in(
    spec: &LaunchSpec,
    isolation: &Isolation,
    call: &ExecCall,
    opts: &CallOptions,
) -> CallReport {
    let started = Instant::now();
    let exec_id = uuid::Uuid::new_v4().to_string();
    let label = spec.label();
    let launched = match launch(spec, isolation) {
        Ok(mut launched) => launched.wait_started(&label).await.map(|()| launched),
        Err(err) => Err(err),
    };
    let (child, monitor) = match launched {
        Ok(launched) => (launched.child, launched.monitor),
        Err(err) => {
            let mut response = Response::error(&exec_id, codes::INTERNAL, error_chain(&err));
            response.meta = Some(serde_json::json!({"origin": "plugd", "error": "spawn"}));
            return CallReport {
                response,
                health: None,
                duration: started.elapsed(),
                stderr_tail: String::new(),
                stats: WorkerStats::default(),
                exit: None,
                accounting: None,
            };
        }
    };
    let worker = Worker::start(child, label.clone(), opts.limits);

    let mut kill = false;
    let mut health = None;
    let response = match worker
        .request(RequestType::Health, None, opts.health_timeout)
        .await
    {
        Err(err) => {
            kill = must_kill(&err);
            failed(err, &exec_id, "the health check failed: ", kill)
        }
        Ok(probe) if !probe.is_ok() => {
            let code = probe
                .code
                .filter(|c| *c != codes::OK)
                .unwrap_or(codes::INTERNAL);
            let said = probe
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let mut response = Response::error(
                &exec_id,
                code,
                format!(
                    "plugin {label} answered the health check with status {}{said}; the exec request was not sent",
                    probe.status
                ),
            );
            response.meta = Some(serde_json::json!({"origin": "plugd", "error": "unhealthy"}));
            health = Some(probe);
            response
        }
        Ok(probe) => {
            health = Some(probe);
            match worker
                .request_with_id(
                    exec_id.clone(),
                    RequestType::Exec,
                    Some(call.to_payload()),
                    opts.timeout,
                )
                .await
            {
                Ok(response) => response,
                Err(err) => {
                    kill = must_kill(&err);
                    failed(err, &exec_id, "", kill)
                }
            }
        }
    };

    let exit = if kill {
        worker.kill().await
    } else {
        worker.shutdown(opts.shutdown_grace).await
    };
    if exit.killed && !kill {
        tracing::warn!(
            plugin = %label,
            "plugin did not exit within {} of shutdown and was killed",
            human_duration(opts.shutdown_grace)
        );
    }
    let mut response = response;
    let accounting = match accounting(monitor).await {
        Some(Ok(outcome)) => {
            explain_limit(&mut response, &outcome);
            Some(outcome)
        }
        Some(Err(err)) => {
            tracing::debug!(plugin = %label, "no sandbox accounting: {err}");
            None
        }
        None => None,
    };
    CallReport {
        response,
        health,
        duration: started.elapsed(),
        stderr_tail: exit.stderr_tail.clone(),
        stats: exit.stats,
        exit: Some(exit),
        accounting,
    }
}

/// A plugin that let a call time out is stuck or lost: shutting it down politely
/// would only add the grace period to the wait.
fn must_kill(err: &CallError) -> bool {
    matches!(err, CallError::Timeout { .. })
}

fn failed(mut err: CallError, id: &str, prefix: &str, kill: bool) -> Response {
    if let CallError::Timeout { killed, .. } = &mut err {
        *killed = kill;
    }
    let mut response = err.into_response(id);
    if let Some(message) = &mut response.message {
        message.insert_str(0, prefix);
    }
    response
}

/// The error's message followed by its causes: "could not start …: No such file".
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
