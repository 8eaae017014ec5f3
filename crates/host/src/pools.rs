//! Warm worker pools, one per plugin version, for callers that make many calls
//! in one process (`plugd bench`, and `plugd serve` later). `plugd exec` does
//! not use them: a CLI process makes one call and exits.
//!
//! Each pool's workers are started exactly as `plugd exec` starts a plugin
//! (same launch spec, same sandbox policy), from a factory the pool calls when
//! it needs a worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugd_manifest::Runtime;
use plugd_runtime::protocol::{ExecCall, Status};
use plugd_runtime::{CallOptions, Isolation, LaunchSpec, Pool, PoolConfig, Worker, WorkerFactory};
use serde::Serialize;

use crate::confine::ProcessShape;
use crate::{Host, HostError};

/// A pool and the work directory its workers share (removed with it).
pub(crate) struct PoolEntry {
    pool: Pool,
    _work_dir: tempfile::TempDir,
}

/// The pools of one host, by `id@version`.
#[derive(Default)]
pub(crate) struct Pools {
    by_version: Mutex<HashMap<String, Arc<PoolEntry>>>,
}

/// What `plugd bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The plugin.
    pub plugin_id: String,
    /// The version measured.
    pub version: String,
    /// The action called.
    pub action: Option<String>,
    /// Calls made (after warm-up).
    pub calls: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Workers in the pool.
    pub workers: usize,
    /// Median latency of one call, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
    /// Fastest call.
    pub min_us: f64,
    /// Calls per second over the whole run.
    pub calls_per_sec: f64,
    /// Calls that did not answer `ok`.
    pub errors: usize,
    /// The first error's message, when there was one.
    pub first_error: Option<String>,
}

impl Host {
    /// The warm pool of the active version of `id`, made on first use with
    /// `config` (later calls get the existing pool).
    pub async fn pool(&self, id: &str, config: PoolConfig) -> Result<Pool, HostError> {
        let plugin = self.require_plugin(id)?;
        if !plugin.enabled {
            return Err(HostError::Disabled { id: id.to_string() });
        }
        let version = plugin.active_version;
        let key = format!("{id}@{version}");
        if let Some(entry) = self
            .pools
            .by_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(entry.pool.clone());
        }
        let manifest = self.stored_manifest(id, &version)?;
        let plugin_dir = self.store.version_dir(id, &version);
        let work_dir = self.work_dir(&format!("pool-{id}-{version}"))?;
        let call_options = CallOptions::from_env();
        let (spec, extra_paths) = self.warm_launch(&manifest, &plugin_dir, work_dir.path())?;
        let isolation = self.isolation_for(
            &manifest,
            &ProcessShape {
                plugin_dir: &plugin_dir,
                work_dir: work_dir.path(),
                program: &spec.program,
                extra_paths: &extra_paths,
                // A warm worker lives across calls; per-call timeouts are the
                // pool's, so the sandbox's wall clock is off.
                timeout: Duration::ZERO,
                http_server: false,
            },
        )?;
        let isolation = without_wall_clock(isolation);
        let factory = worker_factory(spec, isolation, call_options);
        let pool = Pool::new(key.clone(), config, factory);
        let entry = Arc::new(PoolEntry {
            pool: pool.clone(),
            _work_dir: work_dir,
        });
        self.pools
            .by_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(entry);
        Ok(pool)
    }

    /// Stops every pool's workers, each within `deadline`.
    pub async fn shutdown_pools(&self, deadline: Duration) {
        let entries: Vec<Arc<PoolEntry>> = self
            .pools
            .by_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, e)| e)
            .collect();
        for entry in entries {
            entry.pool.shutdown(deadline).await;
        }
    }

    /// `plugd bench`: `calls` calls of `call` through a warm pool with
    /// `concurrency` in flight, after a warm-up, timing each.
    pub async fn bench(
        &self,
        id: &str,
        mut call: ExecCall,
        calls: usize,
        concurrency: usize,
    ) -> Result<BenchReport, HostError> {
        let plugin = self.require_plugin(id)?;
        let manifest = self.stored_manifest(id, &plugin.active_version)?;
        call.action = crate::exec::resolve_action(&manifest, call.action.take())?;
        call.context = Some(crate::exec::call_context(
            &manifest,
            &plugin.active_version,
            None,
        ));
        let concurrency = concurrency.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let config = PoolConfig {
            min_workers: concurrency.min(cores),
            max_workers: concurrency.min(cores),
            max_in_flight: concurrency.div_ceil(concurrency.min(cores)).max(1),
            ..PoolConfig::from_env().map_err(|e| HostError::Settings(e.to_string()))?
        };
        let workers = config.max_workers;
        let pool = self.pool(id, config).await?;
        pool.warm()
            .await
            .map_err(|e| HostError::Settings(e.to_string()))?;
        let timeout = CallOptions::from_env().timeout;
        let call = Arc::new(call);
        // Warm-up: interpreter caches, branch predictors, the first allocation
        // of every buffer.
        let warmup = (calls / 10).clamp(10, 1000);
        run_calls(&pool, &call, warmup, concurrency, timeout).await;

        let started = Instant::now();
        let (mut latencies, errors, first_error) =
            run_calls(&pool, &call, calls, concurrency, timeout).await;
        let elapsed = started.elapsed();
        self.shutdown_pools(Duration::from_secs(2)).await;

        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[i]
        };
        Ok(BenchReport {
            plugin_id: id.to_string(),
            version: plugin.active_version,
            action: call.action.clone(),
            calls,
            concurrency,
            workers,
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            min_us: latencies.first().copied().unwrap_or(0.0),
            calls_per_sec: calls as f64 / elapsed.as_secs_f64(),
            errors,
            first_error,
        })
    }

    /// The launch of a warm worker: `ndjson` and `python-function` plugins only.
    pub(crate) fn warm_launch(
        &self,
        manifest: &plugd_manifest::Manifest,
        plugin_dir: &std::path::Path,
        work_dir: &std::path::Path,
    ) -> Result<(LaunchSpec, Vec<std::path::PathBuf>), HostError> {
        match manifest.runtime {
            Runtime::Ndjson => self.ndjson_spec(manifest, plugin_dir, work_dir),
            Runtime::PythonFunction => self.python_function_spec(manifest, plugin_dir, work_dir),
            other => Err(HostError::NoWarmWorkers {
                id: manifest.id.clone(),
                runtime: other.to_string(),
            }),
        }
    }
}

/// `calls` calls spread over `concurrency` tasks; latencies in µs, errors
/// counted.
async fn run_calls(
    pool: &Pool,
    call: &Arc<ExecCall>,
    calls: usize,
    concurrency: usize,
    timeout: Duration,
) -> (Vec<f64>, usize, Option<String>) {
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let share = calls / concurrency + usize::from(task < calls % concurrency);
        let pool = pool.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            let mut errors = 0;
            let mut first_error = None;
            for _ in 0..share {
                let t = Instant::now();
                let response = pool.exec(&call, timeout).await;
                latencies.push(t.elapsed().as_secs_f64() * 1e6);
                if response.status != Status::Ok {
                    errors += 1;
                    if first_error.is_none() {
                        first_error = response.message;
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut all = Vec::with_capacity(calls);
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        if let Ok((l, e, f)) = task.await {
            all.extend(l);
            errors += e;
            first_error = first_error.or(f);
        }
    }
    (all, errors, first_error)
}

/// Warm workers outlive any one call: the pool times calls out itself.
fn without_wall_clock(isolation: Isolation) -> Isolation {
    match isolation {
        Isolation::Sandboxed { sandbox, policy } => Isolation::Sandboxed {
            sandbox,
            policy: Box::new(policy.with_timeout(None)),
        },
        direct => direct,
    }
}

/// Starts one worker: launch (sandboxed as the policy says), wait until the
/// plugin runs, wrap it. The sandbox's accounting is read when the worker ends,
/// on a blocking thread, so the report pipe stays open as long as the helper
/// lives.
fn worker_factory(spec: LaunchSpec, isolation: Isolation, options: CallOptions) -> WorkerFactory {
    let spec = Arc::new(spec);
    Arc::new(move || {
        let spec = spec.clone();
        let isolation = isolation.clone();
        Box::pin(async move {
            let label = spec.label();
            let mut launched = plugd_runtime::launch(&spec, &isolation)?;
            launched.wait_started(&label).await?;
            if let Some(monitor) = launched.monitor.take() {
                let label = label.clone();
                tokio::task::spawn_blocking(move || {
                    if let Ok(outcome) = monitor.finish() {
                        tracing::debug!(plugin = %label, reason = %outcome.reason, "warm worker ended");
                    }
                });
            }
            Ok(Worker::start(launched.child, label, options.limits))
        })
    })
}
