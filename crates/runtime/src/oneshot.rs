//! One process per call: the engine under the `file`, `stdio-batch` and `command`
//! runtimes (DESIGN §4).
//!
//! [`run_oneshot`] starts a [`LaunchSpec`] through [`launch`] (so the sandbox
//! decision stays in one place), writes the whole stdin and closes it, reads
//! stdout and stderr at the same time (a child blocked on a full stderr pipe
//! would otherwise never finish its stdout), and waits for the exit under a
//! wall-clock deadline. It returns a typed [`OneshotOutput`] that each runtime
//! interprets in its own way; the failures every runtime shares (timeout,
//! runaway stdout) become responses through [`OneshotOutput::common_failure`].
//!
//! Hostile children are expected: stdout beyond [`OneshotOptions::stdout_cap`]
//! kills the process group at once (nothing is buffered beyond the cap); only
//! the last [`STDERR_TAIL_BYTES`] of stderr are kept however much is written; a
//! child that closes its stdout and keeps running is killed at the deadline; a
//! child that exits while something it started still holds the pipes open does
//! not hold the call: the group is killed and the readers get a short grace.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::isolation::{Isolation, accounting, launch};
use crate::protocol::{Response, codes};
use crate::worker::human_duration;
use crate::{CallReport, ExitReport, LaunchSpec, RuntimeError, STDERR_TAIL_BYTES, WorkerStats};

/// The default stdout cap: far above any real result, far below the host's memory.
pub const DEFAULT_STDOUT_CAP: usize = 16 * 1024 * 1024;

/// How long the pipes may stay open after the process itself exited (something
/// it started in the background may still hold them) before plugd stops reading.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// How [`run_oneshot`] runs one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneshotOptions {
    /// Wall-clock time from start to exit before the process group is killed.
    pub timeout: Duration,
    /// The most stdout bytes kept; one byte more kills the process.
    pub stdout_cap: usize,
}

impl Default for OneshotOptions {
    fn default() -> OneshotOptions {
        OneshotOptions {
            timeout: crate::DEFAULT_EXEC_TIMEOUT,
            stdout_cap: DEFAULT_STDOUT_CAP,
        }
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneshotEnd {
    /// It exited (or was killed by a signal it did not get from plugd).
    Exited(ExitStatus),
    /// It was still running at the deadline; plugd killed its process group.
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// It wrote more than the stdout cap; plugd killed its process group.
    StdoutOverflow {
        /// The cap.
        cap: usize,
    },
}

/// What one process produced.
#[derive(Debug, Clone)]
pub struct OneshotOutput {
    /// Who ran (`id@version`), for messages.
    pub label: String,
    /// Everything written to stdout, at most the cap.
    pub stdout: Vec<u8>,
    /// The end of stderr (at most [`STDERR_TAIL_BYTES`], starting at a line).
    pub stderr_tail: String,
    /// How it ended.
    pub end: OneshotEnd,
    /// Start to exit.
    pub duration: Duration,
    /// The sandbox's accounting, when there was a sandbox and it reported.
    pub accounting: Option<plugd_sandbox::Outcome>,
}

impl OneshotOutput {
    /// The exit status, when the process exited on its own.
    pub fn status(&self) -> Option<ExitStatus> {
        match self.end {
            OneshotEnd::Exited(status) => Some(status),
            _ => None,
        }
    }

    /// Whether it exited on its own with status 0.
    pub fn succeeded(&self) -> bool {
        self.status().is_some_and(|s| s.success())
    }

    /// "exited with status 3", "was killed by signal 9 (SIGKILL)", "was killed
    /// after 2 s", …
    pub fn describe_end(&self) -> String {
        match self.end {
            OneshotEnd::Exited(status) => describe_status(status),
            OneshotEnd::TimedOut { after } => {
                format!("was killed after {}", human_duration(after))
            }
            OneshotEnd::StdoutOverflow { cap } => {
                format!("was killed for writing more than {} to stdout", bytes(cap))
            }
        }
    }

    /// The error response for the failures every one-shot runtime treats alike:
    /// a timeout (301) and a runaway stdout (300). `None` when the process
    /// exited on its own and its runtime must judge the output.
    pub fn common_failure(&self, id: &str) -> Option<Response> {
        let label = &self.label;
        let (code, message) = match self.end {
            OneshotEnd::Exited(_) => return None,
            OneshotEnd::TimedOut { after } => (
                codes::TIMEOUT,
                format!(
                    "plugin {label} did not finish within {} and was killed{}; raise the timeout (--timeout, OMNIFLOW_EXEC_TIMEOUT) if it needs longer",
                    human_duration(after),
                    quote_stderr(&self.stderr_tail)
                ),
            ),
            OneshotEnd::StdoutOverflow { cap } => (
                codes::RESOURCE_EXHAUSTED,
                format!(
                    "plugin {label} wrote more than {} to stdout and was killed; plugd reads at most that much of a one-shot plugin's output",
                    bytes(cap)
                ),
            ),
        };
        let mut response = Response::error(id, code, message);
        response.meta = Some(serde_json::json!({"origin": "plugd"}));
        Some(response)
    }

    /// The error response for a process that did not exit with status 0:
    /// code 400, the way it ended and its last stderr.
    pub fn crash_response(&self, id: &str, what: &str) -> Response {
        let mut response = Response::error(
            id,
            codes::INTERNAL,
            format!(
                "plugin {} {}{what}{}",
                self.label,
                self.describe_end(),
                quote_stderr(&self.stderr_tail)
            ),
        );
        response.meta = Some(serde_json::json!({"origin": "plugd", "error": "exit"}));
        response
    }

    /// The [`ExitReport`] the host's history expects.
    pub fn exit_report(&self) -> ExitReport {
        ExitReport {
            status: self.status(),
            acknowledged_shutdown: false,
            killed: !matches!(self.end, OneshotEnd::Exited(_)),
            stderr_tail: self.stderr_tail.clone(),
            stats: WorkerStats::default(),
        }
    }

    /// The call's report with `response` as its answer. When the sandbox ended
    /// the process for a limit, an error plugd made says which one
    /// ([`crate::explain_limit`]).
    pub fn into_report(self, mut response: Response) -> CallReport {
        if let Some(outcome) = &self.accounting {
            crate::explain_limit(&mut response, outcome);
        }
        CallReport {
            response,
            health: None,
            duration: self.duration,
            exit: Some(self.exit_report()),
            stderr_tail: self.stderr_tail,
            stats: WorkerStats::default(),
            accounting: self.accounting,
        }
    }
}

/// `response` marked as made by plugd (`meta.origin`), so that
/// [`crate::explain_limit`] may name the sandbox limit that caused it.
pub(crate) fn with_origin(mut response: Response) -> Response {
    response.meta = Some(serde_json::json!({"origin": "plugd"}));
    response
}

/// The report of a call whose process never started (or whose input could not
/// be prepared): an error response with `code` and the error's whole chain.
pub fn not_started_report(id: &str, code: i64, err: &dyn std::error::Error) -> CallReport {
    refused_report(id, code, crate::call::error_chain(err))
}

/// The report of a call refused before any process started (bad arguments).
pub fn refused_report(id: &str, code: i64, message: impl Into<String>) -> CallReport {
    let mut response = Response::error(id, code, message);
    response.meta = Some(serde_json::json!({"origin": "plugd"}));
    CallReport {
        response,
        health: None,
        duration: Duration::ZERO,
        stderr_tail: String::new(),
        stats: WorkerStats::default(),
        exit: None,
        accounting: None,
    }
}

/// Runs `spec` once as `isolation` says: `stdin` is written and closed, stdout
/// (up to `opts.stdout_cap`) and the stderr tail are collected, and the process
/// group is killed at `opts.timeout`. Errors only when the process could not be
/// started (or its sandbox set up); every way a started process can misbehave is
/// in the [`OneshotOutput`].
pub async fn run_oneshot(
    spec: &LaunchSpec,
    isolation: &Isolation,
    stdin: Vec<u8>,
    opts: &OneshotOptions,
) -> Result<OneshotOutput, RuntimeError> {
    let started = Instant::now();
    let label = spec.label();
    let mut launched = launch(spec, isolation)?;
    // The deadline counts from the start, sandbox setup included, as the user sees it.
    let deadline = tokio::time::Instant::from_std(started) + opts.timeout;
    let pgid = launched
        .child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32));
    let kill_group = move || {
        if let Some(pgid) = pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    };
    if let Err(err) = launched.wait_started(&label).await {
        kill_group();
        let _ = launched.child.wait().await;
        return Err(err);
    }
    let mut child = launched.child;

    let writer = child.stdin.take().map(|mut pipe| {
        tokio::spawn(async move {
            // A plugin that does not read its input (or exits early) breaks the
            // pipe; that is its business, not an error of the call.
            let _ = pipe.write_all(&stdin).await;
            let _ = pipe.shutdown().await;
        })
    });
    let (overflow_tx, mut overflow_rx) = tokio::sync::oneshot::channel::<()>();
    let cap = opts.stdout_cap;
    let mut stdout_task = child
        .stdout
        .take()
        .map(|pipe| tokio::spawn(read_capped(pipe, cap, overflow_tx)));
    let mut stderr_task = child
        .stderr
        .take()
        .map(|pipe| tokio::spawn(read_tail(pipe)));

    let end = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => OneshotEnd::Exited(status),
            // The process cannot be waited for: treat it as killed by plugd.
            Err(err) => {
                tracing::warn!(plugin = %label, "waiting for the plugin failed: {err}");
                kill_group();
                OneshotEnd::Exited(ExitStatus::from_raw(9))
            }
        },
        _ = tokio::time::sleep_until(deadline) => {
            kill_group();
            let _ = child.wait().await;
            OneshotEnd::TimedOut { after: opts.timeout }
        }
        Ok(()) = &mut overflow_rx => {
            kill_group();
            let _ = child.wait().await;
            OneshotEnd::StdoutOverflow { cap }
        }
    };
    // Anything the plugin left behind in its group dies with the call.
    kill_group();
    if let Some(writer) = writer {
        writer.abort();
    }
    let stdout = match stdout_task.as_mut() {
        Some(task) => match tokio::time::timeout(PIPE_GRACE, task).await {
            Ok(Ok(bytes)) => bytes,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let stderr_tail = match stderr_task.as_mut() {
        Some(task) => match tokio::time::timeout(PIPE_GRACE, task).await {
            Ok(Ok(tail)) => tail,
            _ => String::new(),
        },
        None => String::new(),
    };
    for task in [
        stdout_task.map(|t| t.abort_handle()),
        stderr_task.map(|t| t.abort_handle()),
    ]
    .into_iter()
    .flatten()
    {
        task.abort();
    }
    // A stdout that overflowed while the process was exiting still counts.
    let end = match end {
        OneshotEnd::Exited(_) if stdout.len() > cap => OneshotEnd::StdoutOverflow { cap },
        other => other,
    };
    let mut stdout = stdout;
    stdout.truncate(cap);
    let accounting = match accounting(launched.monitor).await {
        Some(Ok(outcome)) => Some(outcome),
        Some(Err(err)) => {
            tracing::debug!(plugin = %label, "no sandbox accounting: {err}");
            None
        }
        None => None,
    };
    Ok(OneshotOutput {
        label,
        stdout,
        stderr_tail,
        end,
        duration: started.elapsed(),
        accounting,
    })
}

/// Reads up to `cap + 1` bytes; reaching `cap + 1` signals `overflow` and stops
/// reading (the caller kills the process).
async fn read_capped(
    mut pipe: impl AsyncRead + Unpin,
    cap: usize,
    overflow: tokio::sync::oneshot::Sender<()>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = (cap + 1).saturating_sub(out.len());
                out.extend_from_slice(&chunk[..n.min(room)]);
                if out.len() > cap {
                    let _ = overflow.send(());
                    return out;
                }
            }
        }
    }
}

/// Reads to the end, keeping only the last [`STDERR_TAIL_BYTES`], starting at a
/// line when the buffer was full.
async fn read_tail(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut cut = false;
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                // Trim in big steps so a flood of stderr costs linear time.
                if tail.len() > 2 * STDERR_TAIL_BYTES {
                    tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                    cut = true;
                }
            }
        }
    }
    if tail.len() > STDERR_TAIL_BYTES {
        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        cut = true;
    }
    let start = if cut {
        tail.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1)
    } else {
        0
    };
    String::from_utf8_lossy(&tail[start..]).into_owned()
}

/// "exited with status 3", "was killed by signal 11 (SIGSEGV)".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}{}", signal_name(sig)),
        (None, None) => format!("ended ({status})"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        6 => " (SIGABRT)",
        9 => " (SIGKILL, e.g. out of memory)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        24 => " (SIGXCPU, CPU time limit)",
        25 => " (SIGXFSZ, file size limit)",
        31 => " (SIGSYS, a blocked system call)",
        _ => "",
    }
}

/// The last stderr lines for a message: "; last stderr: …" (at most ~1 KiB).
pub(crate) fn quote_stderr(tail: &str) -> String {
    const QUOTED: usize = 1024;
    let tail = tail.trim_end();
    if tail.is_empty() {
        return "; it wrote nothing to stderr".to_string();
    }
    let mut start = tail.len().saturating_sub(QUOTED);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    let cut = if start > 0 { "…" } else { "" };
    format!("; last stderr: {cut}{}", &tail[start..])
}

/// "16 MiB", "512 KiB", "100 bytes".
pub(crate) fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, dir: &std::path::Path) -> LaunchSpec {
        LaunchSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        }
    }

    fn opts(timeout_ms: u64, cap: usize) -> OneshotOptions {
        OneshotOptions {
            timeout: Duration::from_millis(timeout_ms),
            stdout_cap: cap,
        }
    }

    #[tokio::test]
    async fn stdin_reaches_the_process_and_stdout_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_oneshot(
            &sh("cat; echo oops >&2; exit 3", dir.path()),
            &Isolation::Direct,
            b"hello".to_vec(),
            &opts(5000, 1024),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr_tail, "oops\n");
        assert_eq!(out.status().and_then(|s| s.code()), Some(3));
        assert!(!out.succeeded());
        assert!(out.common_failure("x").is_none());
        let crash = out.crash_response("x", "");
        assert_eq!(crash.code, Some(codes::INTERNAL));
        let message = crash.message.unwrap();
        assert!(
            message.contains("exited with status 3") && message.contains("oops"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_sleeper_is_killed_at_the_deadline_with_301() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        // The child closes stdout first, so only the deadline can end the call.
        let out = run_oneshot(
            &sh("exec >&-; sleep 30", dir.path()),
            &Isolation::Direct,
            Vec::new(),
            &opts(300, 1024),
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(out.end, OneshotEnd::TimedOut { .. }));
        let response = out.common_failure("x").unwrap();
        assert_eq!(response.code, Some(codes::TIMEOUT));
        assert!(response.message.unwrap().contains("killed"));
        assert!(out.exit_report().killed);
    }

    #[tokio::test]
    async fn runaway_stdout_is_cut_at_the_cap_and_killed_with_300() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = run_oneshot(
            &sh("yes", dir.path()),
            &Isolation::Direct,
            Vec::new(),
            &opts(10_000, 100_000),
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(out.end, OneshotEnd::StdoutOverflow { cap: 100_000 });
        assert!(out.stdout.len() <= 100_000);
        let response = out.common_failure("x").unwrap();
        assert_eq!(response.code, Some(codes::RESOURCE_EXHAUSTED));
    }

    #[tokio::test]
    async fn a_flood_of_stderr_keeps_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_oneshot(
            &sh(
                "head -c 3000000 /dev/zero | tr '\\0' 'x' >&2; echo >&2; echo last-line >&2; echo done",
                dir.path(),
            ),
            &Isolation::Direct,
            Vec::new(),
            &opts(10_000, 1024),
        )
        .await
        .unwrap();
        assert!(out.succeeded());
        assert_eq!(out.stdout, b"done\n");
        assert!(out.stderr_tail.len() <= STDERR_TAIL_BYTES);
        assert_eq!(out.stderr_tail, "last-line\n");
    }

    #[tokio::test]
    async fn a_background_child_holding_the_pipes_does_not_hold_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = run_oneshot(
            &sh("sleep 30 & echo ok", dir.path()),
            &Isolation::Direct,
            Vec::new(),
            &opts(10_000, 1024),
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(out.succeeded());
        assert_eq!(out.stdout, b"ok\n");
    }

    #[tokio::test]
    async fn a_process_that_ignores_its_big_stdin_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_oneshot(
            &sh("echo ignored", dir.path()),
            &Isolation::Direct,
            vec![b'a'; 4 * 1024 * 1024],
            &opts(10_000, 1024),
        )
        .await
        .unwrap();
        assert!(out.succeeded());
        assert_eq!(out.stdout, b"ignored\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh("", dir.path());
        spec.program = dir.path().join("nope");
        let err = run_oneshot(&spec, &Isolation::Direct, Vec::new(), &opts(1000, 10))
            .await
            .unwrap_err();
        assert!(matches!(err, RuntimeError::Spawn { .. }), "{err:?}");
        let report = not_started_report("x", codes::INTERNAL, &err);
        assert!(report.response.message.unwrap().contains("could not start"));
        assert!(report.exit.is_none());
    }

    #[test]
    fn byte_sizes_read_well() {
        assert_eq!(bytes(16 * 1024 * 1024), "16 MiB");
        assert_eq!(bytes(512 * 1024), "512 KiB");
        assert_eq!(bytes(100), "100 bytes");
    }
}
