//! [`Worker`]: one plugin process speaking NDJSON, with many requests in flight.
//!
//! A worker owns the plugin's three pipes through four small tasks:
//!
//! * the **writer** takes encoded request lines from a channel and writes them to
//!   stdin, flushing once per batch;
//! * the **reader** frames stdout with [`NdjsonCodec`] and routes each response to
//!   the caller waiting on its id (a `oneshot` per request), counting and logging
//!   everything else (stray lines, over-long lines, unknown and duplicate ids);
//! * the **stderr** task keeps the last 64 KiB of the plugin's log stream and
//!   forwards each line to `tracing` with the plugin's label;
//! * the **monitor** notices the end (stdout closed or the process exited), gives
//!   the other side a moment to finish, and fails every pending call at once with
//!   [`CallError::Exited`] and the stderr tail.
//!
//! A caller that gives up on a call it already sent (its timeout passed, or its
//! future was dropped) makes the worker queue a `cancel` request naming the
//! call's id; the answer to that, whatever it is (a plugin that does not know
//! `cancel` answers an error), is dropped without counting as noise. Request ids
//! are a random per-worker prefix and a counter: unique, and cheaper than a UUID
//! per call.
//!
//! The worker does not care how the child was started: [`Worker::start`] takes a
//! `tokio::process::Child`, [`Worker::from_streams`] any `AsyncRead`/`AsyncWrite`
//! (the tests drive it over in-memory duplex pipes). [`crate::Pool`] holds
//! `Worker`s; `request` takes `&self`, so one worker serves many callers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use crate::Limits;
use crate::codec::{CodecError, Frame, NdjsonCodec, encode_line};
use crate::protocol::{Request, RequestType, Response, codes};

/// How much of the plugin's stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 64 * 1024;
/// How much of the stderr tail an error message quotes.
const MESSAGE_TAIL_BYTES: usize = 1024;
/// stderr lines longer than this are cut in the log (the tail keeps their start).
const STDERR_LINE_MAX: usize = 8 * 1024;
/// After stdout closes or the process exits, how long to wait for the other end
/// (late answers, last stderr lines, the exit status) before failing pending calls.
const CLOSE_GRACE: Duration = Duration::from_millis(300);
/// After a write to stdin fails, how long to wait for the monitor to report the exit
/// (a better error than "broken pipe") before failing the request with the I/O error.
const WRITE_FAIL_GRACE: Duration = Duration::from_millis(300);
/// How long to wait for a killed process to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Answered / abandoned ids remembered to tell duplicates and late answers from
/// unknown ids; older ones are forgotten first.
const REMEMBERED_IDS: usize = 4096;
/// How much of a stray line is quoted in logs and messages.
const STRAY_SAMPLE_CHARS: usize = 120;
/// Requests queued for the writer before `request` waits.
const OUTBOX_CAPACITY: usize = 256;

/// Counters of what a worker saw, for the history and for debugging plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Requests sent.
    pub requests: u64,
    /// Responses routed to a waiting caller.
    pub responses: u64,
    /// stdout lines that were not a response envelope (not JSON, wrong shape).
    pub stray_lines: u64,
    /// stdout lines longer than the limit, discarded.
    pub oversized_lines: u64,
    /// Responses whose id was never sent.
    pub unknown_ids: u64,
    /// Second responses for an id already answered.
    pub duplicate_ids: u64,
    /// Responses arriving after their caller gave up (timeout).
    pub late_responses: u64,
    /// `cancel` requests sent for calls whose caller gave up (timed out or
    /// dropped the call); their answers are dropped quietly.
    pub cancels: u64,
}

impl WorkerStats {
    /// Protocol violations: everything on stdout that did not answer a waiting call.
    pub fn violations(&self) -> u64 {
        self.stray_lines + self.oversized_lines + self.unknown_ids + self.duplicate_ids
    }
}

/// What else a plugin wrote on stdout while a call waited, quoted in the call's error
/// so a person can see *why* no answer came ("it printed debug output to stdout").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Noise {
    /// stdout lines that were not protocol responses.
    pub stray_lines: u64,
    /// The first of them, shortened (boxed: this rides inside every `CallError`).
    pub first_stray: Option<Box<str>>,
    /// stdout lines over the limit.
    pub oversized_lines: u64,
    /// Responses naming a request id plugd never sent.
    pub unknown_ids: u64,
    /// The first such id, shortened.
    pub first_unknown_id: Option<Box<str>>,
}

impl Noise {
    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.stray_lines == 0 && self.oversized_lines == 0 && self.unknown_ids == 0
    }
}

impl fmt::Display for Noise {
    /// Empty, or "; the plugin also wrote …" to append to a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stray_lines > 0 {
            let what = if self.stray_lines == 1 {
                "line that is not a protocol response"
            } else {
                "lines that are not protocol responses"
            };
            write!(f, "; the plugin also wrote {} {what}", self.stray_lines)?;
            if let Some(first) = &self.first_stray {
                write!(f, "; first: '{first}'")?;
            }
            f.write_str(" (stdout is reserved for responses: log to stderr)")?;
        }
        if self.unknown_ids > 0 {
            write!(
                f,
                "; the plugin answered {} request id(s) plugd never sent",
                self.unknown_ids
            )?;
            if let Some(first) = &self.first_unknown_id {
                write!(
                    f,
                    " (first: '{first}'; a response must echo the id of its request)"
                )?;
            }
        }
        if self.oversized_lines > 0 {
            let (lines, verb) = plural(self.oversized_lines);
            write!(
                f,
                "; {} stdout {lines} over the line limit {verb} discarded",
                self.oversized_lines
            )?;
        }
        Ok(())
    }
}

fn plural(n: u64) -> (&'static str, &'static str) {
    if n == 1 {
        ("line", "was")
    } else {
        ("lines", "were")
    }
}

/// How a plugin process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// Its exit status; `None` when unknown (no process behind the streams, or it
    /// could not be reaped).
    pub status: Option<ExitStatus>,
    /// Whether it answered the `shutdown` request with `ok`.
    pub acknowledged_shutdown: bool,
    /// Whether plugd had to kill its process group.
    pub killed: bool,
    /// The end of its stderr.
    pub stderr_tail: String,
    /// The worker's counters at the end.
    pub stats: WorkerStats,
}

impl ExitReport {
    /// "exited with status 0", "was killed by signal 9 (SIGKILL)", …
    pub fn describe(&self) -> String {
        describe_exit(self.status)
    }
}

/// Why a call on a worker failed. Each becomes an error [`Response`] through
/// [`CallError::into_response`]; the messages name the plugin, the cause, and what
/// to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No answer within the timeout.
    #[error(
        "plugin {plugin} did not answer the {kind} request within {}{}{noise}",
        human_duration(*after), if *killed { " and was killed" } else { "" }
    )]
    Timeout {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
        /// The timeout.
        after: Duration,
        /// Whether plugd killed the plugin for it (set by the caller that did).
        killed: bool,
        /// What else it wrote meanwhile.
        noise: Noise,
    },
    /// The process ended (or closed stdout) before answering.
    #[error("plugin {plugin} {} before answering the {kind} request{noise}{}", describe_exit(*status), quote_tail(stderr_tail))]
    Exited {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
        /// Its exit status, when known.
        status: Option<ExitStatus>,
        /// The end of its stderr.
        stderr_tail: String,
        /// What else it wrote meanwhile.
        noise: Noise,
    },
    /// The answer (or what was probably the answer) was over the line limit.
    #[error(
        "plugin {plugin} answered the {kind} request with a stdout line over the {limit}-byte limit (OMNIFLOW_PLUGIN_MAX_LINE), so plugd discarded it; return less data or raise OMNIFLOW_PLUGIN_MAX_LINE{noise}"
    )]
    LineTooLong {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
        /// The limit.
        limit: usize,
        /// What else it wrote meanwhile.
        noise: Noise,
    },
    /// The request itself was over the line limit; it was not sent.
    #[error(
        "the {kind} request for plugin {plugin} would be a {size}-byte line, over the {limit}-byte limit (OMNIFLOW_PLUGIN_MAX_LINE), so it was not sent; pass smaller arguments or raise OMNIFLOW_PLUGIN_MAX_LINE"
    )]
    RequestTooLong {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request could not be written to the plugin.
    #[error("could not send the {kind} request to plugin {plugin}: {context}")]
    Io {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
        /// What plugd was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The request payload could not be encoded.
    #[error("the {kind} request for plugin {plugin} could not be encoded as JSON")]
    Encode {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The caller reused an id that is still waiting for its answer.
    #[error(
        "request id '{id}' is already waiting for an answer from plugin {plugin}; every request in flight needs its own id"
    )]
    DuplicateRequestId {
        /// The plugin's label.
        plugin: String,
        /// The id.
        id: String,
    },
}

impl CallError {
    /// The OmniFlow code for this failure (DESIGN §2).
    pub fn code(&self) -> i64 {
        match self {
            CallError::Timeout { .. } => codes::TIMEOUT,
            CallError::LineTooLong { .. } | CallError::RequestTooLong { .. } => {
                codes::LINE_TOO_LONG
            }
            CallError::Exited { .. }
            | CallError::Io { .. }
            | CallError::Encode { .. }
            | CallError::DuplicateRequestId { .. } => codes::INTERNAL,
        }
    }

    /// A short machine name: `timeout`, `exited`, `line_too_long`, …
    pub fn kind_name(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } => "timeout",
            CallError::Exited { .. } => "exited",
            CallError::LineTooLong { .. } => "line_too_long",
            CallError::RequestTooLong { .. } => "request_too_long",
            CallError::Io { .. } => "io",
            CallError::Encode { .. } => "encode",
            CallError::DuplicateRequestId { .. } => "duplicate_request_id",
        }
    }

    /// The error response for request `id`. Its `meta` says plugd made it
    /// (`{"origin":"plugd","error":"timeout"}`), so it is never mistaken for the
    /// plugin's own answer.
    pub fn into_response(self, id: impl Into<String>) -> Response {
        let mut response = Response::error(id, self.code(), self.to_string());
        response.meta = Some(serde_json::json!({"origin": "plugd", "error": self.kind_name()}));
        response
    }
}

/// "exited with status 3", "was killed by signal 9 (SIGKILL)", "closed its stdout".
fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "closed its stdout".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}{}", signal_name(sig)),
            (None, None) => format!("ended ({s})"),
        },
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        24 => " (SIGXCPU)",
        25 => " (SIGXFSZ)",
        31 => " (SIGSYS, a blocked system call)",
        _ => "",
    }
}

fn quote_tail(tail: &str) -> String {
    let tail = tail.trim_end();
    if tail.is_empty() {
        return "; it wrote nothing to stderr".to_string();
    }
    let mut start = tail.len().saturating_sub(MESSAGE_TAIL_BYTES);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    let cut = if start > 0 { "…" } else { "" };
    format!("; last stderr: {cut}{}", &tail[start..])
}

/// "10 s", "1.5 s", "250 ms".
pub(crate) fn human_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let secs = d.as_secs_f64();
        if d.subsec_millis() == 0 {
            format!("{} s", d.as_secs())
        } else {
            format!("{secs:.1} s")
        }
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// One running plugin (see the module docs).
///
/// Dropping a worker aborts its tasks and kills its process group; call
/// [`Worker::shutdown`] for an orderly end.
pub struct Worker {
    shared: Arc<Shared>,
    outbox: Option<mpsc::Sender<Outgoing>>,
    /// Set once the monitor has failed the pending calls: nothing more will come.
    closed: watch::Receiver<bool>,
    /// `Some(status)` once the process was reaped; never set without a process.
    exit: Option<watch::Receiver<Option<Option<ExitStatus>>>>,
    /// The child's process group (its pid: it leads its own group), until shutdown.
    pgid: Option<rustix::process::Pid>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("plugin", &self.shared.label)
            .field("pgid", &self.pgid)
            .field("closed", &*self.closed.borrow())
            .finish_non_exhaustive()
    }
}

/// [`Request`] with borrowed parts, serialised identically (same fields, same
/// order: `tests::borrowed_requests_encode_like_owned_ones` checks it).
#[derive(Serialize)]
struct RequestRef<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: RequestType,
    timestamp: String,
    payload: Option<&'a Value>,
}

struct Outgoing {
    id: String,
    kind: RequestType,
    line: Vec<u8>,
}

type Reply = Result<Response, CallError>;

struct Pending {
    tx: oneshot::Sender<Reply>,
    kind: RequestType,
    noise: Noise,
    /// An over-long stdout line passed while this call waited.
    saw_oversized: bool,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    answered: RecentIds,
    abandoned: RecentIds,
    /// `Some` once the end was seen: the exit status, if any.
    closed: Option<Option<ExitStatus>>,
    /// Set when writing to stdin failed: later requests fail at once.
    input_broken: Option<String>,
    /// Ids of the `cancel` requests plugd sent: their answers (an `ok`, or the
    /// error of a plugin that does not know `cancel`) are dropped quietly, since
    /// nobody waits for them and they are not the plugin's fault.
    cancels: RecentIds,
}

#[derive(Default)]
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    responses: AtomicU64,
    stray_lines: AtomicU64,
    oversized_lines: AtomicU64,
    unknown_ids: AtomicU64,
    duplicate_ids: AtomicU64,
    late_responses: AtomicU64,
    cancels: AtomicU64,
}

/// Adds one; returns whether this occurrence should still be logged as a warning.
/// A plugin flooding stdout with garbage must not flood plugd's log too: the first
/// [`LOUD_WARNINGS`] of each kind are warnings, later ones debug events (the
/// counters keep the full count).
fn bump(counter: &AtomicU64) -> bool {
    counter.fetch_add(1, Ordering::Relaxed) < LOUD_WARNINGS
}

/// Per worker and kind of violation, how many are logged at warning level.
const LOUD_WARNINGS: u64 = 20;

/// Logs a protocol violation: a warning while `loud`, else a debug event.
macro_rules! violation {
    ($loud:expr, $($arg:tt)+) => {
        if $loud {
            tracing::warn!($($arg)+);
        } else {
            tracing::debug!($($arg)+);
        }
    };
}

struct Shared {
    label: String,
    limits: Limits,
    /// See [`Shared::next_id`].
    id_prefix: String,
    next_id: AtomicU64,
    state: Mutex<State>,
    stats: Counters,
    stderr: Mutex<VecDeque<u8>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way
        // that matters more than losing the worker, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request id unique on this worker: a random per-worker prefix and a
    /// counter. Cheaper than a UUID per call (no entropy read on the hot path) and
    /// still unique across workers and restarts, so a late answer from an old
    /// process can never be mistaken for a new call's.
    fn next_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.id_prefix)
    }

    /// Queues `{"type":"cancel","payload":{"id":…}}` for the call `of`, without
    /// waiting: a full queue means the plugin is far behind, and the cancel is a
    /// courtesy the protocol does not require.
    fn send_cancel(&self, outbox: &mpsc::Sender<Outgoing>, cancel_id: String, of: &str) {
        let request = Request::new(
            cancel_id.clone(),
            RequestType::Cancel,
            Some(serde_json::json!({ "id": of })),
        );
        let Ok(line) = encode_line(&request, self.limits.max_line) else {
            return;
        };
        let out = Outgoing {
            id: cancel_id,
            kind: RequestType::Cancel,
            line,
        };
        match outbox.try_send(out) {
            Ok(()) => {
                let _ = bump(&self.stats.cancels);
            }
            Err(err) => {
                tracing::debug!(plugin = %self.label, id = %of, "cancel not sent: {err}");
            }
        }
    }

    fn stats(&self) -> WorkerStats {
        let s = &self.stats;
        WorkerStats {
            requests: s.requests.load(Ordering::Relaxed),
            responses: s.responses.load(Ordering::Relaxed),
            stray_lines: s.stray_lines.load(Ordering::Relaxed),
            oversized_lines: s.oversized_lines.load(Ordering::Relaxed),
            unknown_ids: s.unknown_ids.load(Ordering::Relaxed),
            duplicate_ids: s.duplicate_ids.load(Ordering::Relaxed),
            late_responses: s.late_responses.load(Ordering::Relaxed),
            cancels: s.cancels.load(Ordering::Relaxed),
        }
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        let mut bytes = Vec::with_capacity(tail.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        drop(tail);
        // A full buffer starts mid-line (maybe mid-character): start at a line.
        let start = if bytes.len() >= STDERR_TAIL_BYTES {
            bytes.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1)
        } else {
            0
        };
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    fn push_stderr(&self, line: &[u8]) {
        let mut tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend(line);
        tail.push_back(b'\n');
        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
        tail.drain(..excess);
    }

    fn exited_error(
        &self,
        kind: RequestType,
        status: Option<ExitStatus>,
        noise: Noise,
    ) -> CallError {
        CallError::Exited {
            plugin: self.label.clone(),
            kind,
            status,
            stderr_tail: self.stderr_tail(),
            noise,
        }
    }

    /// The error for a call that got no valid answer: an over-long line seen while it
    /// waited is the likeliest reason, so it wins over the generic cause.
    fn unanswered(
        &self,
        pending: Pending,
        otherwise: impl FnOnce(Noise) -> CallError,
    ) -> CallError {
        if pending.saw_oversized {
            CallError::LineTooLong {
                plugin: self.label.clone(),
                kind: pending.kind,
                limit: self.limits.max_line,
                noise: Noise {
                    oversized_lines: pending.noise.oversized_lines.saturating_sub(1),
                    ..pending.noise
                },
            }
        } else {
            otherwise(pending.noise)
        }
    }

    /// The end: fail everything pending, refuse everything new.
    fn close(&self, status: Option<ExitStatus>) {
        let pending: Vec<Pending> = {
            let mut state = self.state();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(status);
            let drained: Vec<(String, Pending)> = state.pending.drain().collect();
            drained
                .into_iter()
                .map(|(id, p)| {
                    state.abandoned.insert(id);
                    p
                })
                .collect()
        };
        if !pending.is_empty() {
            tracing::warn!(plugin = %self.label, pending = pending.len(), "plugin {} with calls pending", describe_exit(status));
        }
        for mut p in pending {
            let tx = std::mem::replace(&mut p.tx, oneshot::channel().0);
            let kind = p.kind;
            let err = self.unanswered(p, |noise| self.exited_error(kind, status, noise));
            let _ = tx.send(Err(err));
        }
    }

    fn route(&self, response: Response) {
        let mut state = self.state();
        if let Some(pending) = state.pending.remove(&response.id) {
            state.answered.insert(response.id.clone());
            drop(state);
            let _ = bump(&self.stats.responses);
            // The caller may have just given up; its guard then records nothing more.
            let _ = pending.tx.send(Ok(response));
        } else if state.cancels.contains(&response.id) {
            drop(state);
            tracing::debug!(plugin = %self.label, id = %response.id, status = %response.status, "answer to a cancel request dropped");
        } else if state.answered.contains(&response.id) {
            drop(state);
            let loud = bump(&self.stats.duplicate_ids);
            violation!(loud, plugin = %self.label, id = %response.id, "plugin answered the same request twice; the second answer was dropped");
        } else if state.abandoned.contains(&response.id) {
            drop(state);
            let loud = bump(&self.stats.late_responses);
            violation!(loud, plugin = %self.label, id = %response.id, "plugin answered after the caller gave up; the answer was dropped");
        } else {
            let sample = sample(response.id.as_bytes());
            for pending in state.pending.values_mut() {
                pending.noise.unknown_ids += 1;
                if pending.noise.first_unknown_id.is_none() {
                    pending.noise.first_unknown_id = Some(sample.as_str().into());
                }
            }
            drop(state);
            let loud = bump(&self.stats.unknown_ids);
            violation!(loud, plugin = %self.label, id = %response.id, "plugin answered a request id plugd never sent; the answer was dropped");
        }
    }

    fn stray(&self, line: &[u8], why: &str) {
        let loud = bump(&self.stats.stray_lines);
        let sample = sample(line);
        violation!(loud, plugin = %self.label, line = %sample, "plugin wrote a stdout line that is not a protocol response ({why})");
        let mut state = self.state();
        for pending in state.pending.values_mut() {
            pending.noise.stray_lines += 1;
            if pending.noise.first_stray.is_none() {
                pending.noise.first_stray = Some(sample.as_str().into());
            }
        }
    }

    /// An over-long line began: reported as soon as it passes the limit, because a
    /// plugin may never end it.
    fn oversized(&self, prefix: &[u8]) {
        let loud = bump(&self.stats.oversized_lines);
        violation!(
            loud,
            plugin = %self.label, limit = self.limits.max_line, start = %sample(prefix),
            "plugin is writing a stdout line over the line limit; it is being discarded"
        );
        let mut state = self.state();
        // The id is usually the first key: when it names a waiting call, that call
        // fails now with 101 instead of waiting for its timeout.
        let owner = sniff_id(prefix)
            .filter(|id| state.pending.contains_key(*id))
            .map(str::to_string);
        if let Some(id) = owner {
            let pending = state.pending.remove(&id).expect("checked above");
            state.answered.insert(id);
            drop(state);
            let err = CallError::LineTooLong {
                plugin: self.label.clone(),
                kind: pending.kind,
                limit: self.limits.max_line,
                noise: pending.noise,
            };
            let _ = pending.tx.send(Err(err));
            return;
        }
        for pending in state.pending.values_mut() {
            pending.noise.oversized_lines += 1;
            pending.saw_oversized = true;
        }
    }
}

/// A short, printable quote of a line.
fn sample(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out: String = text
        .chars()
        .take(STRAY_SAMPLE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > STRAY_SAMPLE_CHARS {
        out.push('…');
    }
    out
}

/// The string value of the first `"id"` key in the start of a JSON object, if it is
/// a plain string (no escapes). A heuristic over bytes plugd will not parse in full;
/// it only decides *which* waiting call an over-long line fails.
fn sniff_id(prefix: &[u8]) -> Option<&str> {
    let text = match std::str::from_utf8(prefix) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&prefix[..e.valid_up_to()]).ok()?,
    };
    let mut rest = text;
    while let Some(at) = rest.find("\"id\"") {
        rest = &rest[at + 4..];
        let Some(after_colon) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let Some(value) = after_colon.trim_start().strip_prefix('"') else {
            continue;
        };
        let end = value.find(['"', '\\'])?;
        if value[end..].starts_with('"') {
            return Some(&value[..end]);
        }
        return None;
    }
    None
}

/// Removes a call from the pending table if its caller goes away without an
/// answer (timeout, or the caller's future dropped), so nothing leaks, and tells
/// the plugin with a `cancel` request that the work is no longer wanted.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: String,
    /// Where the `cancel` goes; `None` until the request itself was queued (a
    /// request that never left needs no cancel) and for kinds nobody cancels.
    outbox: Option<&'a mpsc::Sender<Outgoing>>,
}

impl PendingGuard<'_> {
    /// Takes the call back; `None` when an answer or error was delivered meanwhile.
    fn take(&self) -> Option<Pending> {
        let mut state = self.shared.state();
        let pending = state.pending.remove(&self.id)?;
        state.abandoned.insert(self.id.clone());
        let cancel = match self.outbox {
            Some(outbox) if state.closed.is_none() && state.input_broken.is_none() => {
                let cancel_id = self.shared.next_id();
                state.cancels.insert(cancel_id.clone());
                Some((outbox, cancel_id))
            }
            _ => None,
        };
        drop(state);
        if let Some((outbox, cancel_id)) = cancel {
            self.shared.send_cancel(outbox, cancel_id, &self.id);
        }
        Some(pending)
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let _ = self.take();
    }
}

impl Worker {
    /// Takes over a spawned plugin (see [`crate::spawn`]): its piped stdin, stdout
    /// and stderr, and the process itself, whose exit ends the worker. `label`
    /// (`id@version`) names it in logs and messages. Must be called inside a tokio
    /// runtime.
    pub fn start(mut child: tokio::process::Child, label: String, limits: Limits) -> Worker {
        let pgid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw)
            // Never signal group 1 (init): "kill(-1)" would mean every process.
            .filter(|pid| !pid.is_init());
        let stdin: Box<dyn AsyncWrite + Send + Unpin> = match child.stdin.take() {
            Some(pipe) => Box::new(pipe),
            None => {
                tracing::warn!(plugin = %label, "plugin started without a stdin pipe; requests cannot reach it");
                Box::new(BrokenPipe)
            }
        };
        let stdout: Box<dyn AsyncRead + Send + Unpin> = match child.stdout.take() {
            Some(pipe) => Box::new(pipe),
            None => Box::new(tokio::io::empty()),
        };
        let stderr: Box<dyn AsyncRead + Send + Unpin> = match child.stderr.take() {
            Some(pipe) => Box::new(pipe),
            None => Box::new(tokio::io::empty()),
        };
        let (exit_tx, exit_rx) = watch::channel(None);
        let waiter = tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = exit_tx.send(Some(status));
            // `child` is dropped here, after the exit was observed.
        });
        let mut worker = Worker::build(stdin, stdout, stderr, label, limits, Some(exit_rx));
        worker.pgid = pgid;
        worker.tasks.push(waiter);
        worker
    }

    /// A worker over any streams: the plugin's stdin, stdout and stderr. Without a
    /// process, stdout reaching EOF is the end. Must be called inside a tokio runtime.
    pub fn from_streams<W, R, E>(
        stdin: W,
        stdout: R,
        stderr: E,
        label: String,
        limits: Limits,
    ) -> Worker
    where
        W: AsyncWrite + Send + Unpin + 'static,
        R: AsyncRead + Send + Unpin + 'static,
        E: AsyncRead + Send + Unpin + 'static,
    {
        Worker::build(
            Box::new(stdin),
            Box::new(stdout),
            Box::new(stderr),
            label,
            limits,
            None,
        )
    }

    fn build(
        stdin: Box<dyn AsyncWrite + Send + Unpin>,
        stdout: Box<dyn AsyncRead + Send + Unpin>,
        stderr: Box<dyn AsyncRead + Send + Unpin>,
        label: String,
        limits: Limits,
        exit: Option<watch::Receiver<Option<Option<ExitStatus>>>>,
    ) -> Worker {
        let shared = Arc::new(Shared {
            label,
            limits,
            id_prefix: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
            next_id: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            stats: Counters::default(),
            stderr: Mutex::new(VecDeque::new()),
        });
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let (closed_tx, closed_rx) = watch::channel(false);
        let (stdout_eof_tx, stdout_eof_rx) = watch::channel(false);
        let (stderr_eof_tx, stderr_eof_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(write_loop(shared.clone(), stdin, inbox, closed_rx.clone())),
            tokio::spawn(read_loop(shared.clone(), stdout, stdout_eof_tx)),
            tokio::spawn(stderr_loop(shared.clone(), stderr, stderr_eof_tx)),
            tokio::spawn(monitor(
                shared.clone(),
                stdout_eof_rx,
                stderr_eof_rx,
                exit.clone(),
                closed_tx,
            )),
        ];
        Worker {
            shared,
            outbox: Some(outbox),
            closed: closed_rx,
            exit,
            pgid: None,
            tasks,
        }
    }

    /// The plugin's label.
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Sends a request with a fresh id and waits for its answer, at most `timeout`.
    /// Any number of requests may be in flight; answers are matched by id.
    pub async fn request(
        &self,
        kind: RequestType,
        payload: Option<Value>,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.request_with_id(self.shared.next_id(), kind, payload, timeout)
            .await
    }

    /// [`Worker::request`] with a caller-chosen id, which must not be in flight.
    pub async fn request_with_id(
        &self,
        id: String,
        kind: RequestType,
        payload: Option<Value>,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.request_borrowed(id, kind, payload.as_ref(), timeout)
            .await
    }

    /// [`Worker::request_with_id`] with a borrowed payload: the pool keeps one
    /// payload for its `busy` retries instead of deep-cloning it for every call.
    pub(crate) async fn request_borrowed(
        &self,
        id: String,
        kind: RequestType,
        payload: Option<&Value>,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let shared = &*self.shared;
        let request = RequestRef {
            id: &id,
            kind,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            payload,
        };
        let line = encode_line(&request, shared.limits.max_line).map_err(|e| match e {
            CodecError::LineTooLong { len, limit } => CallError::RequestTooLong {
                plugin: shared.label.clone(),
                kind,
                size: len,
                limit,
            },
            CodecError::Json(source) => CallError::Encode {
                plugin: shared.label.clone(),
                kind,
                source,
            },
            CodecError::Io(source) => CallError::Io {
                plugin: shared.label.clone(),
                kind,
                context: "encoding".into(),
                source,
            },
        })?;

        let (tx, mut rx) = oneshot::channel();
        {
            let mut state = shared.state();
            if let Some(status) = state.closed {
                drop(state);
                return Err(shared.exited_error(kind, status, Noise::default()));
            }
            if let Some(reason) = &state.input_broken {
                return Err(CallError::Io {
                    plugin: shared.label.clone(),
                    kind,
                    context: "its stdin is closed".into(),
                    source: io::Error::new(io::ErrorKind::BrokenPipe, reason.clone()),
                });
            }
            if state.pending.contains_key(&id) {
                return Err(CallError::DuplicateRequestId {
                    plugin: shared.label.clone(),
                    id,
                });
            }
            state.pending.insert(
                id.clone(),
                Pending {
                    tx,
                    kind,
                    noise: Noise::default(),
                    saw_oversized: false,
                },
            );
        }
        let mut guard = PendingGuard {
            shared,
            id: id.clone(),
            outbox: None,
        };
        let _ = bump(&shared.stats.requests);

        let deadline = Instant::now() + timeout;
        let sent = match &self.outbox {
            // A queue with room (the usual case) takes the line without arming
            // a timer; only a full one makes the caller wait, within its deadline.
            Some(outbox) => match outbox.try_send(Outgoing { id, kind, line }) {
                Ok(()) => Ok(Ok(())),
                Err(mpsc::error::TrySendError::Full(out)) => {
                    tokio::time::timeout_at(deadline, outbox.send(out)).await
                }
                Err(mpsc::error::TrySendError::Closed(out)) => Ok(Err(mpsc::error::SendError(out))),
            },
            None => Ok(Err(mpsc::error::SendError(Outgoing { id, kind, line }))),
        };
        match sent {
            Ok(Ok(())) => {
                if !matches!(kind, RequestType::Shutdown | RequestType::Cancel) {
                    guard.outbox = self.outbox.as_ref();
                }
            }
            // The writer is gone: the worker is ending; its monitor has the reason.
            Ok(Err(_)) => {
                let status = shared.state().closed.flatten();
                drop(guard);
                return Err(shared.exited_error(kind, status, Noise::default()));
            }
            Err(_elapsed) => return self.timed_out(&guard, &mut rx, kind, timeout),
        }

        match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => {
                // Only the worker's own teardown drops a sender unanswered.
                let status = shared.state().closed.flatten();
                Err(shared.exited_error(kind, status, Noise::default()))
            }
            Err(_elapsed) => self.timed_out(&guard, &mut rx, kind, timeout),
        }
    }

    fn timed_out(
        &self,
        guard: &PendingGuard<'_>,
        rx: &mut oneshot::Receiver<Reply>,
        kind: RequestType,
        after: Duration,
    ) -> Reply {
        let timeout = |noise| CallError::Timeout {
            plugin: self.shared.label.clone(),
            kind,
            after,
            killed: false,
            noise,
        };
        match guard.take() {
            Some(pending) => Err(self.shared.unanswered(pending, timeout)),
            // Answered in the instant between the deadline and taking the lock: the
            // plugin did answer, and throwing the answer away would hide that.
            None => rx
                .try_recv()
                .unwrap_or_else(|_| Err(timeout(Noise::default()))),
        }
    }

    /// Counters of what was seen on stdout.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats()
    }

    /// The last 64 KiB (at most) of the plugin's stderr, starting at a line.
    pub fn stderr_tail(&self) -> String {
        self.shared.stderr_tail()
    }

    /// Whether the plugin has ended (stdout closed or process exited) and the worker
    /// refuses new requests.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Ends the plugin: sends `shutdown` (waiting at most `grace` for the answer),
    /// closes its stdin, waits for it to exit until `grace` has passed since the
    /// call, then kills its whole process group. With a zero grace nothing is sent:
    /// the group is killed at once.
    pub async fn shutdown(mut self, grace: Duration) -> ExitReport {
        let deadline = Instant::now() + grace;
        let mut acknowledged = false;
        if !grace.is_zero() && !self.is_closed() {
            match self.request(RequestType::Shutdown, None, grace).await {
                Ok(response) => acknowledged = response.is_ok(),
                Err(err) => tracing::debug!(plugin = %self.shared.label, "shutdown request: {err}"),
            }
        }
        // Closing stdin is the second, protocol-free way of saying "stop".
        self.outbox = None;
        let mut gone = self.wait_gone(deadline).await;
        let mut killed = false;
        if !gone {
            killed = true;
            self.kill_group();
            gone = self.wait_gone(Instant::now() + KILL_WAIT).await;
            if !gone {
                tracing::error!(plugin = %self.shared.label, "plugin process did not end even after SIGKILL");
            }
        }
        // Whatever the leader left behind in its group goes too.
        self.kill_group();
        self.pgid = None;
        // Let the monitor collect the last stderr lines and close.
        let _ = tokio::time::timeout(CLOSE_GRACE * 2, self.closed.wait_for(|c| *c)).await;
        let status = self.exit.as_ref().and_then(|rx| rx.borrow().flatten());
        ExitReport {
            status,
            acknowledged_shutdown: acknowledged,
            killed,
            stderr_tail: self.shared.stderr_tail(),
            stats: self.shared.stats(),
        }
    }

    /// Kills the plugin's process group now, without consuming the worker: the
    /// monitor then sees the exit and fails every call still in flight with
    /// [`CallError::Exited`]. For owners that share the worker (a pool whose calls
    /// hold it) and must stop a stuck plugin at once. Without a process (a worker
    /// over streams) nothing happens.
    pub fn kill_now(&self) {
        self.kill_group();
    }

    /// Kills the plugin's process group at once; see [`Worker::shutdown`].
    pub async fn kill(self) -> ExitReport {
        self.shutdown(Duration::ZERO).await
    }

    /// Waits until the process exited (or, without a process, the worker closed).
    async fn wait_gone(&mut self, deadline: Instant) -> bool {
        match &mut self.exit {
            Some(exit) => tokio::time::timeout_at(deadline, exit.wait_for(|s| s.is_some()))
                .await
                .is_ok_and(|r| r.is_ok()),
            None => tokio::time::timeout_at(deadline, self.closed.wait_for(|c| *c))
                .await
                .is_ok_and(|r| r.is_ok()),
        }
    }

    fn kill_group(&self) {
        if let Some(pgid) = self.pgid {
            match rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(err) => {
                    tracing::warn!(plugin = %self.shared.label, "could not kill process group {}: {err}", pgid.as_raw_nonzero())
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.kill_group();
    }
}

/// Stands in for a missing stdin pipe: every write fails.
struct BrokenPipe;

impl AsyncWrite for BrokenPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the plugin has no stdin pipe",
        )))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut stdin: Box<dyn AsyncWrite + Send + Unpin>,
    mut inbox: mpsc::Receiver<Outgoing>,
    mut closed: watch::Receiver<bool>,
) {
    let mut batch: Vec<Outgoing> = Vec::new();
    while let Some(first) = inbox.recv().await {
        batch.push(first);
        // Whatever else is already queued goes out with one flush.
        while batch.len() < 64 {
            match inbox.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut result = Ok(());
        for out in &batch {
            result = stdin.write_all(&out.line).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = stdin.flush().await;
        }
        if let Err(err) = result {
            let reason = err.to_string();
            shared.state().input_broken = Some(reason.clone());
            tracing::warn!(plugin = %shared.label, "writing to the plugin's stdin failed: {reason}");
            // A broken pipe usually means the plugin exited: give the monitor the
            // chance to report that (with stderr) before settling for the I/O error.
            let _ = tokio::time::timeout(WRITE_FAIL_GRACE, closed.wait_for(|c| *c)).await;
            inbox.close();
            while let Ok(out) = inbox.try_recv() {
                batch.push(out);
            }
            for out in batch.drain(..) {
                let pending = shared.state().pending.remove(&out.id);
                if let Some(pending) = pending {
                    let _ = pending.tx.send(Err(CallError::Io {
                        plugin: shared.label.clone(),
                        kind: out.kind,
                        context: "writing to its stdin failed (it stopped reading or exited)"
                            .into(),
                        source: io::Error::new(err.kind(), reason.clone()),
                    }));
                }
            }
            return;
        }
        batch.clear();
    }
    // The worker dropped its sender: close stdin so the plugin sees EOF.
    let _ = stdin.shutdown().await;
}

async fn read_loop(
    shared: Arc<Shared>,
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    eof: watch::Sender<bool>,
) {
    let mut frames = FramedRead::new(stdout, NdjsonCodec::new(shared.limits.max_line));
    while let Some(frame) = frames.next().await {
        match frame {
            Ok(Frame::Line(line)) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    // Blank lines carry nothing; tolerated rather than counted.
                    continue;
                }
                match serde_json::from_slice::<Response>(&line) {
                    Ok(response) => shared.route(response),
                    Err(err) if err.is_data() => {
                        shared.stray(&line, "JSON, but not a response envelope")
                    }
                    Err(_) => shared.stray(&line, "not JSON"),
                }
            }
            Ok(Frame::Oversized { prefix }) => shared.oversized(&prefix),
            Ok(Frame::Discarded { len }) => {
                tracing::debug!(plugin = %shared.label, bytes = len, "the over-long stdout line ended");
            }
            Err(err) => {
                tracing::warn!(plugin = %shared.label, "reading the plugin's stdout failed: {err}");
                break;
            }
        }
    }
    let _ = eof.send(true);
}

async fn stderr_loop(
    shared: Arc<Shared>,
    stderr: Box<dyn AsyncRead + Send + Unpin>,
    eof: watch::Sender<bool>,
) {
    let mut frames = FramedRead::new(stderr, NdjsonCodec::new(STDERR_LINE_MAX));
    while let Some(frame) = frames.next().await {
        match frame {
            Ok(Frame::Line(line)) => {
                shared.push_stderr(&line);
                log_stderr_line(&shared.label, &line);
            }
            Ok(Frame::Oversized { prefix }) => {
                let mut cut = prefix.to_vec();
                cut.extend_from_slice(
                    format!("… [line over {STDERR_LINE_MAX} bytes, cut]").as_bytes(),
                );
                shared.push_stderr(&cut);
                log_stderr_line(&shared.label, &cut);
            }
            Ok(Frame::Discarded { .. }) => {}
            Err(err) => {
                tracing::debug!(plugin = %shared.label, "reading the plugin's stderr failed: {err}");
                break;
            }
        }
    }
    let _ = eof.send(true);
}

/// Forwards one stderr line to `tracing`, at the level a JSON log line names.
fn log_stderr_line(label: &str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let level = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
        v.get("level")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    });
    match level.as_deref() {
        Some("error" | "critical" | "fatal") => {
            tracing::error!(target: "plugd::plugin", plugin = %label, "{text}")
        }
        Some("warn" | "warning") => {
            tracing::warn!(target: "plugd::plugin", plugin = %label, "{text}")
        }
        Some("debug" | "trace") => {
            tracing::debug!(target: "plugd::plugin", plugin = %label, "{text}")
        }
        _ => tracing::info!(target: "plugd::plugin", plugin = %label, "{text}"),
    }
}

async fn monitor(
    shared: Arc<Shared>,
    mut stdout_eof: watch::Receiver<bool>,
    mut stderr_eof: watch::Receiver<bool>,
    mut exit: Option<watch::Receiver<Option<Option<ExitStatus>>>>,
    closed: watch::Sender<bool>,
) {
    async fn exited(exit: &mut Option<watch::Receiver<Option<Option<ExitStatus>>>>) {
        match exit {
            Some(rx) => {
                if rx.wait_for(|s| s.is_some()).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = stdout_eof.wait_for(|e| *e) => {}
        _ = exited(&mut exit) => {}
    }
    // Either end came first; the rest (final answers still in the pipe, last stderr
    // lines, the exit status) follows within moments unless a grandchild holds a
    // pipe open, which the grace bounds.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = stdout_eof.wait_for(|e| *e).await;
        let _ = stderr_eof.wait_for(|e| *e).await;
        if exit.is_some() {
            exited(&mut exit).await;
        }
    })
    .await;
    let status = exit.as_ref().and_then(|rx| rx.borrow().flatten());
    shared.close(status);
    let _ = closed.send(true);
}

#[cfg(test)]
mod tests;
