//! [`Pool`]: warm [`Worker`]s for one plugin version (DESIGN §4, `ndjson` and
//! `python-function`).
//!
//! The pool knows nothing of sandboxes or launch specs: the host hands it a
//! [`WorkerFactory`] that starts one ready-to-use worker, and the pool decides
//! when to call it. One mutex guards the table of workers and their in-flight
//! counts; it is held only to pick or update a slot, never across an `await`, so
//! a call costs two short lock sections on top of [`Worker::request`].
//!
//! Behaviour, in the order a call meets it:
//!
//! * **pick**: the least-loaded live worker under `max_in_flight`; workers that
//!   ended (crashed, killed) are dropped from the table on sight and replaced
//!   lazily, by the next call that needs one;
//! * **grow**: when every worker is at capacity and fewer than `max_workers` run
//!   (or are starting), a new one is started on its own task, so a caller that
//!   gives up does not abandon a half-started worker; with
//!   `health_check_on_start` it must answer `health` with `ok` first. A start
//!   that fails is an error for every call waiting for it, with the reason and
//!   the plugin's stderr tail;
//! * **backpressure**: otherwise the call waits for a free slot, at most its own
//!   timeout, then fails with 300 (resource exhausted). Waiting callers are
//!   bounded by the callers themselves: the pool keeps no queue of its own;
//! * **busy**: a `busy` answer is retried on another worker (starting one when
//!   allowed) after 2 ms, 4 ms, 8 ms…, `busy_retries` times, then returned;
//! * **timeout**: the worker that let a call time out is killed (its other calls
//!   fail with a clear error, other workers are untouched) and the caller gets 301.
//!   The worker queues a `cancel` for the call just before (a stuck plugin may
//!   never read it); a caller that drops the call's future leaves the worker
//!   alive and the `cancel` does reach the plugin;
//! * **idle**: a background task (it ends with the pool) stops workers idle
//!   longer than `idle_timeout`: those above `min_workers` at once, the last ones
//!   when the whole pool has been idle that long; the next call starts one again.
//!
//! [`Pool::shutdown`] sends `shutdown` to every worker once its calls are done and
//! kills whatever remains at the deadline; later calls fail with
//! [`PoolError::ShutDown`].

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::call::error_chain;
use crate::protocol::{ExecCall, RequestType, Response, Status, codes};
use crate::worker::human_duration;
use crate::{CallError, Limits, RuntimeError, Worker, WorkerStats};

/// Starts one worker for the pool's plugin: spawn (sandboxed or not, as the host
/// decides) and wrap it with [`Worker::start`]. The pool probes it with `health`
/// itself when [`PoolConfig::health_check_on_start`] is set.
pub type WorkerFactory =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Worker, RuntimeError>> + Send + Sync>;

/// `PLUGD_POOL_MIN`: workers started by [`Pool::warm`] and kept while calls flow.
pub const ENV_POOL_MIN: &str = "PLUGD_POOL_MIN";
/// `PLUGD_POOL_MAX`: the most workers per plugin version.
pub const ENV_POOL_MAX: &str = "PLUGD_POOL_MAX";
/// `PLUGD_POOL_IN_FLIGHT`: the most calls in flight on one worker.
pub const ENV_POOL_IN_FLIGHT: &str = "PLUGD_POOL_IN_FLIGHT";
/// `PLUGD_POOL_IDLE_SECS`: seconds a worker may sit idle before it is stopped
/// (`0`: never).
pub const ENV_POOL_IDLE_SECS: &str = "PLUGD_POOL_IDLE_SECS";

/// Beyond these the setting is a typo, not a plan (and the arithmetic stays small).
const MAX_WORKERS_LIMIT: usize = 1024;
const MAX_IN_FLIGHT_LIMIT: usize = 65_536;
const MAX_IDLE_SECS: u64 = 7 * 86_400;
/// How often the reaper looks, at most and at least.
const REAP_TICK_MAX: Duration = Duration::from_secs(1);
const REAP_TICK_MIN: Duration = Duration::from_millis(10);
/// How often shutdown checks whether a worker's last calls have let go of it.
const RELEASE_POLL: Duration = Duration::from_millis(5);

/// How a [`Pool`] sizes and treats its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Workers [`Pool::warm`] starts and the pool keeps while calls flow (default 1).
    pub min_workers: usize,
    /// The most workers at once (default: the machine's cores, at least 1).
    pub max_workers: usize,
    /// The most calls in flight on one worker (default 32); more wait.
    pub max_in_flight: usize,
    /// Idle workers are stopped after this long (default 60 s); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How often a `busy` answer is retried on another worker (default 3).
    pub busy_retries: u32,
    /// The first retry's delay, doubled for each next one (default 2 ms).
    pub busy_backoff: Duration,
    /// How long a worker gets to exit after `shutdown` when it is stopped
    /// (idle, or a pool shutdown without its own deadline) (default 2 s).
    pub shutdown_grace: Duration,
    /// Whether a new worker must answer `health` with `ok` before it gets calls
    /// (default true).
    pub health_check_on_start: bool,
    /// How long that probe may take, interpreter start included (default 10 s).
    pub health_timeout: Duration,
    /// The line limit the host's [`WorkerFactory`] should give its workers
    /// ([`Worker::start`]); the pool itself never frames lines, but one
    /// configuration describes the whole pool.
    pub limits: Limits,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            min_workers: 1,
            max_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_in_flight: 32,
            idle_timeout: Some(Duration::from_secs(60)),
            busy_retries: 3,
            busy_backoff: Duration::from_millis(2),
            shutdown_grace: crate::DEFAULT_SHUTDOWN_GRACE,
            health_check_on_start: true,
            health_timeout: crate::DEFAULT_EXEC_TIMEOUT,
            limits: Limits::default(),
        }
    }
}

/// A pool setting from the environment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is not usable: {reason}; fix or unset it")]
pub struct PoolConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is expected.
    pub reason: String,
}

impl PoolConfig {
    /// The defaults, overridden by `PLUGD_POOL_MIN`, `PLUGD_POOL_MAX`,
    /// `PLUGD_POOL_IN_FLIGHT` and `PLUGD_POOL_IDLE_SECS`, with the line limit from
    /// `OMNIFLOW_PLUGIN_MAX_LINE`.
    pub fn from_env() -> Result<PoolConfig, PoolConfigError> {
        let mut config = PoolConfig::from_lookup(|name| std::env::var(name).ok())?;
        config.limits = Limits::from_env();
        Ok(config)
    }

    /// [`PoolConfig::from_env`] over any source of variables (tests cannot set
    /// the environment: that is `unsafe` in this edition).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<PoolConfig, PoolConfigError> {
        let mut config = PoolConfig::default();
        let read = |name: &'static str, min: u64, max: u64, example: &str| {
            let Some(raw) = lookup(name) else {
                return Ok(None);
            };
            let value = raw.trim();
            if value.is_empty() {
                return Ok(None);
            }
            let bad = |reason: String| PoolConfigError {
                name,
                value: raw.clone(),
                reason,
            };
            let n: u64 = value
                .parse()
                .map_err(|_| bad(format!("expected a whole number, e.g. {example}")))?;
            if !(min..=max).contains(&n) {
                return Err(bad(format!("must be between {min} and {max}")));
            }
            Ok(Some(n))
        };
        let min = read(ENV_POOL_MIN, 0, MAX_WORKERS_LIMIT as u64, "1")?;
        let max = read(ENV_POOL_MAX, 1, MAX_WORKERS_LIMIT as u64, "4")?;
        let in_flight = read(ENV_POOL_IN_FLIGHT, 1, MAX_IN_FLIGHT_LIMIT as u64, "32")?;
        let idle = read(ENV_POOL_IDLE_SECS, 0, MAX_IDLE_SECS, "60")?;
        if let Some(n) = min {
            config.min_workers = n as usize;
        }
        if let Some(n) = max {
            config.max_workers = n as usize;
        }
        if let Some(n) = in_flight {
            config.max_in_flight = n as usize;
        }
        if let Some(secs) = idle {
            config.idle_timeout = (secs > 0).then(|| Duration::from_secs(secs));
        }
        match (min, max) {
            (Some(min), Some(max)) if min > max => {
                return Err(PoolConfigError {
                    name: ENV_POOL_MIN,
                    value: min.to_string(),
                    reason: format!("it is above {ENV_POOL_MAX}={max}"),
                });
            }
            // Only one was set: the other default gives way.
            (Some(_), None) => config.max_workers = config.max_workers.max(config.min_workers),
            (None, Some(_)) => config.min_workers = config.min_workers.min(config.max_workers),
            _ => {}
        }
        Ok(config)
    }
}

/// Why a pool call failed. Each becomes an error [`Response`] through
/// [`PoolError::into_response`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The call reached a worker and failed there (timeout, crash, bad output…).
    #[error(transparent)]
    Call(#[from] CallError),
    /// A worker could not be started or failed its start-up health check, so the
    /// calls waiting for it could not run.
    #[error("plugin {plugin}: a new worker could not be started: {reason}")]
    StartFailed {
        /// The plugin's label.
        plugin: String,
        /// Why, with the causes and the plugin's stderr tail.
        reason: String,
    },
    /// Every worker stayed at capacity for the whole timeout.
    #[error(
        "plugin {plugin}: all {workers} worker(s) had {max_in_flight} call(s) in flight for {}, so the call was not sent; raise {ENV_POOL_MAX} or {ENV_POOL_IN_FLIGHT}, or send fewer calls at once",
        human_duration(*waited)
    )]
    Saturated {
        /// The plugin's label.
        plugin: String,
        /// Workers running.
        workers: usize,
        /// The per-worker limit.
        max_in_flight: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// The pool was shut down.
    #[error(
        "plugin {plugin}: its worker pool was shut down, so the {kind} request was not sent; the plugin is being stopped or plugd is exiting"
    )]
    ShutDown {
        /// The plugin's label.
        plugin: String,
        /// The request.
        kind: RequestType,
    },
}

impl PoolError {
    /// The OmniFlow code for this failure (DESIGN §2).
    pub fn code(&self) -> i64 {
        match self {
            PoolError::Call(err) => err.code(),
            PoolError::Saturated { .. } => codes::RESOURCE_EXHAUSTED,
            PoolError::StartFailed { .. } | PoolError::ShutDown { .. } => codes::INTERNAL,
        }
    }

    /// A short machine name: `timeout`, `exited`, `start_failed`, `saturated`, …
    pub fn kind_name(&self) -> &'static str {
        match self {
            PoolError::Call(err) => err.kind_name(),
            PoolError::StartFailed { .. } => "start_failed",
            PoolError::Saturated { .. } => "saturated",
            PoolError::ShutDown { .. } => "shut_down",
        }
    }

    /// The error response for request `id`, marked as made by plugd
    /// (`"meta":{"origin":"plugd","error":…}`).
    pub fn into_response(self, id: impl Into<String>) -> Response {
        let mut response = Response::error(id, self.code(), self.to_string());
        response.meta = Some(serde_json::json!({"origin": "plugd", "error": self.kind_name()}));
        response
    }
}

/// What a pool has done, for `plugd serve` metrics and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Workers running now.
    pub workers_live: usize,
    /// Workers being started now.
    pub workers_starting: usize,
    /// Workers started (and healthy) since the pool was made.
    pub started: u64,
    /// Of those, how many replaced a worker that crashed or was killed.
    pub replaced: u64,
    /// Workers that ended on their own (crash, exit) while in the pool.
    pub crashed: u64,
    /// Workers that failed to start or failed the start-up health check.
    pub start_failures: u64,
    /// Workers stopped for being idle.
    pub reaped: u64,
    /// Calls made through the pool (each counted once, whatever its retries).
    pub calls: u64,
    /// `busy` answers retried.
    pub busy_retries: u64,
    /// Calls that timed out (their workers were killed).
    pub timeouts: u64,
    /// Calls refused because every worker stayed at capacity.
    pub saturated: u64,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Protocol violations (stray lines, over-long lines, unknown and duplicate
    /// ids), summed over every worker the pool has had.
    pub protocol_violations: u64,
    /// The workers' counters, summed over every worker the pool has had.
    pub workers: WorkerStats,
}

/// Warm workers for one plugin version (see the module docs). Cheap to clone:
/// every clone is a handle on the same pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("plugin", &self.inner.label)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Inner {
    label: String,
    config: PoolConfig,
    factory: WorkerFactory,
    state: Mutex<State>,
    /// Woken when a slot frees up, a worker arrives, a start fails or the pool
    /// shuts down; only when someone waits (see [`State::waiting`]).
    changed: Notify,
    counters: Counters,
    /// Request ids: a random pool prefix and a counter (see [`Pool::next_id`]).
    id_prefix: String,
    next_id: AtomicU64,
    reaper: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.get_mut().ok().and_then(Option::take) {
            reaper.abort();
        }
    }
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    replaced: AtomicU64,
    crashed: AtomicU64,
    start_failures: AtomicU64,
    reaped: AtomicU64,
    calls: AtomicU64,
    busy_retries: AtomicU64,
    timeouts: AtomicU64,
    saturated: AtomicU64,
}

struct Slot {
    id: u64,
    worker: Arc<Worker>,
    in_flight: usize,
    idle_since: Instant,
}

struct State {
    slots: Vec<Slot>,
    starting: usize,
    /// Callers waiting for a slot; nobody is notified while this is 0.
    waiting: usize,
    shut_down: bool,
    /// Workers lost (crashed or killed) and not yet replaced.
    lost: u64,
    /// Start failures so far and the latest reason: a waiter that sees the count
    /// move fails with that reason instead of starting yet another doomed worker.
    failures: u64,
    last_failure: Option<String>,
    /// When the last call ended or began: the pool is idle when this is old and
    /// nothing is in flight.
    last_activity: Instant,
    /// Counters of workers no longer in the table.
    retired: WorkerStats,
    next_slot: u64,
}

fn add_stats(total: &mut WorkerStats, more: WorkerStats) {
    total.requests += more.requests;
    total.responses += more.responses;
    total.stray_lines += more.stray_lines;
    total.oversized_lines += more.oversized_lines;
    total.unknown_ids += more.unknown_ids;
    total.duplicate_ids += more.duplicate_ids;
    total.late_responses += more.late_responses;
    total.cancels += more.cancels;
}

impl State {
    /// Takes workers that ended out of the table (the crash was already reported
    /// to their callers by the worker itself).
    fn drop_closed(&mut self, inner: &Inner) {
        if !self.slots.iter().any(|s| s.worker.is_closed()) {
            return;
        }
        let mut kept = Vec::with_capacity(self.slots.len());
        for slot in self.slots.drain(..) {
            if slot.worker.is_closed() {
                tracing::warn!(plugin = %inner.label, "a worker ended on its own; it will be replaced when needed");
                inner.counters.crashed.fetch_add(1, Ordering::Relaxed);
                self.lost += 1;
                add_stats(&mut self.retired, slot.worker.stats());
            } else {
                kept.push(slot);
            }
        }
        self.slots = kept;
    }

    /// Removes worker `id` from the table, if still there.
    fn remove(&mut self, id: u64) -> Option<Slot> {
        let at = self.slots.iter().position(|s| s.id == id)?;
        let slot = self.slots.swap_remove(at);
        add_stats(&mut self.retired, slot.worker.stats());
        Some(slot)
    }
}

/// A claim on one call's room on one worker; dropping it gives the room back.
struct Lease<'a> {
    inner: &'a Inner,
    slot: u64,
    worker: Option<Arc<Worker>>,
}

impl Lease<'_> {
    fn worker(&self) -> &Worker {
        self.worker.as_ref().expect("held until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // The worker handle goes first: once `in_flight` reads 0 nobody but the
        // table holds it, so a stopping pool can take it back and shut it down.
        drop(self.worker.take());
        let mut state = self.inner.state();
        let now = Instant::now();
        state.last_activity = now;
        if let Some(slot) = state.slots.iter_mut().find(|s| s.id == self.slot) {
            slot.in_flight -= 1;
            if slot.in_flight == 0 {
                slot.idle_since = now;
            }
        }
        let wake = state.waiting > 0 || state.shut_down;
        drop(state);
        if wake {
            self.inner.changed.notify_waiters();
        }
    }
}

/// Counts a caller among the waiters for as long as it waits (also when its
/// future is dropped mid-wait).
struct Waiting<'a> {
    inner: &'a Inner,
    /// The start-failure count when it began waiting.
    failures_seen: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.inner.state().waiting -= 1;
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The table stays consistent between statements: a panic elsewhere must
        // not take every later call down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shut_down_error(&self, kind: RequestType) -> PoolError {
        PoolError::ShutDown {
            plugin: self.label.clone(),
            kind,
        }
    }

    /// Starts one worker and adds it to the table. Runs on its own task; the
    /// caller already counted it in `starting`.
    async fn start_worker(self: Arc<Inner>) -> Result<(), String> {
        let result = self.start_and_probe().await;
        let mut state = self.state();
        state.starting -= 1;
        let outcome = match result {
            Ok(worker) if state.shut_down => {
                drop(state);
                tokio::spawn(worker.shutdown(self.config.shutdown_grace));
                self.changed.notify_waiters();
                return Err("the pool was shut down while the worker started".into());
            }
            Ok(worker) => {
                let id = state.next_slot;
                state.next_slot += 1;
                state.slots.push(Slot {
                    id,
                    worker: Arc::new(worker),
                    in_flight: 0,
                    idle_since: Instant::now(),
                });
                self.counters.started.fetch_add(1, Ordering::Relaxed);
                if state.lost > 0 {
                    state.lost -= 1;
                    self.counters.replaced.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(reason) => {
                state.failures += 1;
                state.last_failure = Some(reason.clone());
                self.counters.start_failures.fetch_add(1, Ordering::Relaxed);
                Err(reason)
            }
        };
        drop(state);
        self.changed.notify_waiters();
        outcome
    }

    async fn start_and_probe(&self) -> Result<Worker, String> {
        let worker = (self.factory)().await.map_err(|e| error_chain(&e))?;
        if !self.config.health_check_on_start {
            return Ok(worker);
        }
        let probe = worker
            .request(RequestType::Health, None, self.config.health_timeout)
            .await;
        let reason = match probe {
            Ok(response) if response.is_ok() => return Ok(worker),
            Ok(response) => format!(
                "it answered the health check with status {}{}{}",
                response.status,
                response
                    .code
                    .map(|c| format!(" (code {c})"))
                    .unwrap_or_default(),
                response
                    .message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            Err(err) => format!("the health check failed: {err}"),
        };
        let tail = worker.stderr_tail();
        let exit = worker.kill().await;
        let mut reason = reason;
        // An `Exited` error already quotes the stderr tail.
        if !reason.contains("stderr") {
            let tail = tail.trim_end();
            if tail.is_empty() {
                reason.push_str("; it wrote nothing to stderr");
            } else {
                let cut = tail.char_indices().rev().nth(1023).map_or(0, |(at, _)| at);
                reason.push_str("; last stderr: ");
                reason.push_str(&tail[cut..]);
            }
        }
        tracing::warn!(plugin = %self.label, "new worker refused ({}): {reason}", exit.describe());
        Err(reason)
    }

    /// Stops idle workers (see the module docs); returns when the next look is due.
    fn reap(self: &Arc<Inner>, idle: Duration) {
        let now = Instant::now();
        let mut stopped = Vec::new();
        {
            let mut state = self.state();
            if state.shut_down {
                return;
            }
            state.drop_closed(self);
            let pool_idle = state.slots.iter().all(|s| s.in_flight == 0)
                && now.duration_since(state.last_activity) >= idle;
            let mut live = state.slots.len();
            // Oldest idle first, so the most recently used stay warm.
            let mut candidates: Vec<(Instant, u64)> = state
                .slots
                .iter()
                .filter(|s| s.in_flight == 0 && now.duration_since(s.idle_since) >= idle)
                .map(|s| (s.idle_since, s.id))
                .collect();
            candidates.sort();
            for (_, id) in candidates {
                if (live > self.config.min_workers || pool_idle)
                    && let Some(slot) = state.remove(id)
                {
                    stopped.push(slot.worker);
                    live -= 1;
                }
            }
        }
        for worker in stopped {
            self.counters.reaped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(plugin = %self.label, "stopping a worker idle for {}", human_duration(idle));
            let deadline = Instant::now() + self.config.shutdown_grace;
            tokio::spawn(retire(worker, deadline));
        }
    }
}

/// Shuts a worker down once the last call lets go of it, killing it at `deadline`
/// if that does not happen or the plugin does not exit in time.
async fn retire(mut worker: Arc<Worker>, deadline: Instant) {
    loop {
        match Arc::try_unwrap(worker) {
            Ok(owned) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // A zero grace would mean "kill now": keep a token grace instead.
                owned.shutdown(left.max(Duration::from_millis(1))).await;
                return;
            }
            Err(shared) if Instant::now() >= deadline => {
                shared.kill_now();
                return;
            }
            Err(shared) => {
                worker = shared;
                tokio::time::sleep(RELEASE_POLL).await;
            }
        }
    }
}

async fn reap_loop(pool: Weak<Inner>, idle: Duration) {
    let tick = (idle / 4).clamp(REAP_TICK_MIN, REAP_TICK_MAX);
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = pool.upgrade() else { return };
        if inner.state().shut_down {
            return;
        }
        inner.reap(idle);
    }
}

impl Pool {
    /// A pool for the plugin `label` (`id@version`, used in logs and messages)
    /// whose workers come from `factory`. Starts nothing yet: see [`Pool::warm`].
    /// Must be called inside a tokio runtime (the idle reaper is a task).
    ///
    /// `max_workers` and `max_in_flight` below 1 are raised to 1, and
    /// `min_workers` is capped at `max_workers`.
    pub fn new(label: String, mut config: PoolConfig, factory: WorkerFactory) -> Pool {
        config.max_workers = config.max_workers.max(1);
        config.max_in_flight = config.max_in_flight.max(1);
        config.min_workers = config.min_workers.min(config.max_workers);
        let idle = config.idle_timeout;
        let inner = Arc::new(Inner {
            label,
            config,
            factory,
            state: Mutex::new(State {
                slots: Vec::new(),
                starting: 0,
                waiting: 0,
                shut_down: false,
                lost: 0,
                failures: 0,
                last_failure: None,
                last_activity: Instant::now(),
                retired: WorkerStats::default(),
                next_slot: 0,
            }),
            changed: Notify::new(),
            counters: Counters::default(),
            id_prefix: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            next_id: AtomicU64::new(0),
            reaper: Mutex::new(None),
        });
        if let Some(idle) = idle.filter(|d| !d.is_zero()) {
            let task = tokio::spawn(reap_loop(Arc::downgrade(&inner), idle));
            *inner.reaper.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        Pool { inner }
    }

    /// The plugin's label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The configuration in use.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Starts workers, concurrently, until `min_workers` run; the first start
    /// failure is returned (the workers that did start stay).
    pub async fn warm(&self) -> Result<(), PoolError> {
        let inner = &self.inner;
        let missing = {
            let mut state = inner.state();
            if state.shut_down {
                return Err(inner.shut_down_error(RequestType::Health));
            }
            state.drop_closed(inner);
            let have = state.slots.len() + state.starting;
            let missing = inner.config.min_workers.saturating_sub(have);
            state.starting += missing;
            missing
        };
        let starts: Vec<_> = (0..missing)
            .map(|_| tokio::spawn(inner.clone().start_worker()))
            .collect();
        let mut first_error = None;
        for start in futures_util::future::join_all(starts).await {
            let outcome = start.unwrap_or_else(|e| Err(format!("the start task failed: {e}")));
            if let Err(reason) = outcome {
                first_error.get_or_insert(reason);
            }
        }
        match first_error {
            None => Ok(()),
            Some(reason) => Err(PoolError::StartFailed {
                plugin: inner.label.clone(),
                reason,
            }),
        }
    }

    /// A request id unique in this pool (and, by its random prefix, across pools
    /// and restarts), so plugd's error responses carry the id that was sent.
    fn next_id(&self) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.inner.id_prefix)
    }

    /// Sends one request to a worker and waits for its answer, at most `timeout`
    /// per attempt (see the module docs for retries, timeouts and backpressure).
    pub async fn request(
        &self,
        kind: RequestType,
        payload: Option<Value>,
        timeout: Duration,
    ) -> Result<Response, PoolError> {
        self.request_with_id(self.next_id(), kind, payload, timeout)
            .await
    }

    /// [`Pool::request`] with a caller-chosen id (unique among calls in flight).
    pub async fn request_with_id(
        &self,
        id: String,
        kind: RequestType,
        payload: Option<Value>,
        timeout: Duration,
    ) -> Result<Response, PoolError> {
        let inner = &*self.inner;
        inner.counters.calls.fetch_add(1, Ordering::Relaxed);
        let mut avoid = None;
        let mut attempt = 0;
        loop {
            let lease = self.acquire(kind, avoid, timeout).await?;
            let worker = lease.worker();
            let result = worker
                .request_borrowed(id.clone(), kind, payload.as_ref(), timeout)
                .await;
            match result {
                Ok(response)
                    if response.status == Status::Busy && attempt < inner.config.busy_retries =>
                {
                    inner.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                    avoid = Some(lease.slot);
                    drop(lease);
                    let delay = inner
                        .config
                        .busy_backoff
                        .saturating_mul(1 << attempt.min(16));
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                Ok(response) => return Ok(response),
                Err(CallError::Timeout {
                    plugin,
                    kind,
                    after,
                    noise,
                    ..
                }) => {
                    inner.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    {
                        let mut state = inner.state();
                        if state.remove(lease.slot).is_some() {
                            state.lost += 1;
                        }
                    }
                    tracing::warn!(plugin = %plugin, "a call timed out after {}; killing its worker", human_duration(after));
                    worker.kill_now();
                    return Err(PoolError::Call(CallError::Timeout {
                        plugin,
                        kind,
                        after,
                        killed: true,
                        noise,
                    }));
                }
                Err(err @ (CallError::Exited { .. } | CallError::Io { .. })) => {
                    // The worker is gone or cannot be written to: take it out now
                    // rather than when its monitor finishes closing, so the next
                    // call cannot land on it.
                    let removed = {
                        let mut state = inner.state();
                        let removed = state.remove(lease.slot).is_some();
                        if removed {
                            state.lost += 1;
                        }
                        removed
                    };
                    if removed {
                        inner.counters.crashed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(plugin = %inner.label, "a worker failed a call and was taken out of the pool: {err}");
                    }
                    worker.kill_now();
                    return Err(PoolError::Call(err));
                }
                Err(err) => return Err(PoolError::Call(err)),
            }
        }
    }

    /// Claims room for one call on a worker: the least-loaded one with room
    /// (other than `avoid` when possible), a new one, or the first to free up
    /// within `timeout`.
    async fn acquire(
        &self,
        kind: RequestType,
        avoid: Option<u64>,
        timeout: Duration,
    ) -> Result<Lease<'_>, PoolError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + timeout;
        let max_in_flight = inner.config.max_in_flight;
        let mut waiting: Option<Waiting<'_>> = None;
        // Created only when the first look finds no room: registering with the
        // `Notify` costs a lock, which the common call (a slot is free) skips.
        let mut notified: Option<Pin<Box<Notified<'_>>>> = None;
        loop {
            let start = {
                let mut state = inner.state();
                if state.shut_down {
                    return Err(inner.shut_down_error(kind));
                }
                state.drop_closed(inner);
                let pick = |state: &State, avoid: Option<u64>| {
                    state
                        .slots
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.in_flight < max_in_flight && Some(s.id) != avoid)
                        .min_by_key(|(_, s)| s.in_flight)
                        .map(|(at, _)| at)
                };
                let room = state.slots.len() + state.starting < inner.config.max_workers;
                let mut chosen = pick(&state, avoid);
                if chosen.is_none() && avoid.is_some() && !room {
                    // Nowhere else to go: the busy worker may be free by now.
                    chosen = pick(&state, None);
                }
                if let Some(at) = chosen {
                    let slot = &mut state.slots[at];
                    slot.in_flight += 1;
                    let lease = Lease {
                        inner,
                        slot: slot.id,
                        worker: Some(slot.worker.clone()),
                    };
                    state.last_activity = Instant::now();
                    return Ok(lease);
                }
                if let Some(w) = &waiting
                    && state.failures != w.failures_seen
                    && state.starting == 0
                {
                    let reason = state.last_failure.clone().unwrap_or_default();
                    return Err(PoolError::StartFailed {
                        plugin: inner.label.clone(),
                        reason,
                    });
                }
                let demand = state.waiting + usize::from(waiting.is_none());
                let start = room && state.starting * max_in_flight < demand;
                if start {
                    state.starting += 1;
                }
                if waiting.is_none() {
                    state.waiting += 1;
                    waiting = Some(Waiting {
                        inner,
                        failures_seen: state.failures,
                    });
                }
                start
            };
            if start {
                // On its own task: the worker arrives even if this caller leaves.
                let task = tokio::spawn(self.inner.clone().start_worker());
                match tokio::time::timeout_at(deadline, task).await {
                    Ok(Ok(Ok(()))) => continue,
                    Ok(Ok(Err(reason))) => {
                        return Err(PoolError::StartFailed {
                            plugin: inner.label.clone(),
                            reason,
                        });
                    }
                    Ok(Err(join)) => {
                        return Err(PoolError::StartFailed {
                            plugin: inner.label.clone(),
                            reason: format!("the start task failed: {join}"),
                        });
                    }
                    Err(_) => {
                        return Err(PoolError::StartFailed {
                            plugin: inner.label.clone(),
                            reason: format!(
                                "no worker was ready within the call's timeout of {} (the start goes on, for later calls); a slow start-up counts against each call's timeout",
                                human_duration(timeout)
                            ),
                        });
                    }
                }
            }
            if let Some(wake) = notified.take()
                && tokio::time::timeout_at(deadline, wake).await.is_err()
            {
                return Err(self.saturated(timeout));
            }
            // Registered before the table is read again, so a slot freed between
            // that look and the wait wakes this caller.
            let mut wake = Box::pin(inner.changed.notified());
            wake.as_mut().enable();
            notified = Some(wake);
        }
    }

    fn saturated(&self, waited: Duration) -> PoolError {
        let inner = &*self.inner;
        inner.counters.saturated.fetch_add(1, Ordering::Relaxed);
        let workers = inner.state().slots.len();
        PoolError::Saturated {
            plugin: inner.label.clone(),
            workers,
            max_in_flight: inner.config.max_in_flight,
            waited,
        }
    }

    /// Runs one action on a worker. Never fails: every failure becomes an error
    /// [`Response`] with the taxonomy code and the request's id, as
    /// [`crate::call_once`] does.
    pub async fn exec(&self, call: &ExecCall, timeout: Duration) -> Response {
        let id = self.next_id();
        match self
            .request_with_id(
                id.clone(),
                RequestType::Exec,
                Some(call.to_payload()),
                timeout,
            )
            .await
        {
            Ok(response) => response,
            Err(err) => err.into_response(id),
        }
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let state = inner.state();
        let mut workers = state.retired;
        for slot in &state.slots {
            add_stats(&mut workers, slot.worker.stats());
        }
        let in_flight = state.slots.iter().map(|s| s.in_flight).sum();
        PoolStats {
            workers_live: state.slots.iter().filter(|s| !s.worker.is_closed()).count(),
            workers_starting: state.starting,
            started: c.started.load(Ordering::Relaxed),
            replaced: c.replaced.load(Ordering::Relaxed),
            crashed: c.crashed.load(Ordering::Relaxed),
            start_failures: c.start_failures.load(Ordering::Relaxed),
            reaped: c.reaped.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            busy_retries: c.busy_retries.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            saturated: c.saturated.load(Ordering::Relaxed),
            in_flight,
            protocol_violations: workers.violations(),
            workers,
        }
    }

    /// Stops the pool: new calls fail with [`PoolError::ShutDown`] at once; each
    /// worker gets `shutdown` as soon as its calls in flight are done, and
    /// whatever still runs at `deadline` (from now) is killed. Returns when every
    /// worker is gone. Calling it again does nothing more.
    pub async fn shutdown(&self, deadline: Duration) {
        let inner = &*self.inner;
        let until = Instant::now() + deadline;
        let workers: Vec<Arc<Worker>> = {
            let mut state = inner.state();
            state.shut_down = true;
            let slots: Vec<Slot> = state.slots.drain(..).collect();
            for slot in &slots {
                add_stats(&mut state.retired, slot.worker.stats());
            }
            slots.into_iter().map(|s| s.worker).collect()
        };
        inner.changed.notify_waiters();
        if let Some(reaper) = inner
            .reaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            reaper.abort();
        }
        futures_util::future::join_all(workers.into_iter().map(|w| retire(w, until))).await;
    }
}

#[cfg(test)]
mod tests;
