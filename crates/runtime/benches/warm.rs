//! Warm-call benchmark of plugd-runtime, against the floor, in one run.
//!
//! ```text
//! cargo build --release -p plugd-example-rust-echo
//! cargo bench -p plugd-runtime --bench warm            # a table
//! cargo bench -p plugd-runtime --bench warm -- --json  # one JSON object
//! ```
//!
//! The Rust echo plugin is `target/release/rust-echo` (`PLUGD_BENCH_RUST_ECHO`
//! overrides the path); the bench stops with a message saying how to build it when
//! it is absent. The Python echo plugin is `examples/python-echo/plugin.py`, run by
//! the real interpreter behind `python3` (the pyenv shim is resolved once).
//!
//! Measured, side by side on the same machine and in the same process:
//!
//! * **raw pipe**: the floor. `cat` as the echo process, one line written and one
//!   line read back with blocking std I/O, no JSON, no runtime;
//! * **raw rust-echo**: the same blocking loop against rust-echo, i.e. the floor
//!   plus the plugin's own JSON work;
//! * **worker** / **pool** warm call: one `exec echo` at a time through
//!   [`Worker::request`] and [`Pool::exec`]: p50 and p99, and their ratio to the
//!   raw pipe;
//! * **throughput**: calls/s with 64 callers on a pool of 2 rust-echo workers;
//! * **python-echo**: warm call p50/p99 through a worker, and one `python3`
//!   process per call (spawn, health, exec, shutdown), the way the source
//!   documents' hosts call plugins;
//! * **host RSS**: this process's VmRSS after a pool started 10 warm workers.
//!
//! Timings are medians of many calls after a warm-up; nothing is asserted.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugd_runtime::protocol::{ExecCall, RequestType};
use plugd_runtime::{
    CallOptions, Interpreters, LaunchSpec, Limits, PluginRef, Pool, PoolConfig, Worker,
    WorkerFactory, call_once, ndjson_launch, spawn,
};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let rust_echo = rust_echo_path();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let interp = Interpreters::discover();

    let mut rows: Vec<(&str, Value)> = Vec::new();

    let raw = raw_round_trip(Path::new("cat"), 20_000 / scale);
    rows.push(("raw_pipe_cat", raw.to_json()));
    let raw_echo = raw_round_trip_json(&rust_echo, 20_000 / scale);
    rows.push(("raw_pipe_rust_echo", raw_echo.to_json()));

    // Inside a spawned task, as a server's handlers are: `block_on` would run the
    // callers on the main thread and add a cross-thread wake-up to every call.
    let results = runtime.block_on(async {
        tokio::spawn(async move {
            let spec = rust_echo_spec(&rust_echo);
            let worker = Worker::start(
                spawn(&spec).expect("rust-echo starts"),
                "rust-echo".into(),
                Limits::default(),
            );
            let worker_lat = latency(20_000 / scale, || async {
                let r = worker
                    .request(RequestType::Exec, Some(echo_payload()), TIMEOUT)
                    .await
                    .expect("echo answers");
                assert!(r.is_ok(), "{r:?}");
            })
            .await;
            worker.shutdown(Duration::from_secs(1)).await;

            let pool = Pool::new("rust-echo".into(), config(1, 1), factory(spec.clone()));
            pool.warm().await.expect("the pool warms up");
            let call = echo_call();
            let pool_lat = latency(20_000 / scale, || async {
                let r = pool.exec(&call, TIMEOUT).await;
                assert!(r.is_ok(), "{r:?}");
            })
            .await;
            pool.shutdown(Duration::from_secs(1)).await;

            let pool = Pool::new("rust-echo".into(), config(2, 2), factory(spec.clone()));
            pool.warm().await.expect("the pool warms up");
            let rate = throughput(&pool, 64, 400_000 / scale).await;
            let violations = pool.stats().protocol_violations;
            pool.shutdown(Duration::from_secs(1)).await;

            let py_spec = python_echo_spec(&interp);
            let worker = Worker::start(
                spawn(&py_spec).expect("python-echo starts"),
                "python-echo".into(),
                Limits::default(),
            );
            let py_lat = latency(5_000 / scale, || async {
                let r = worker
                    .request(RequestType::Exec, Some(echo_payload()), TIMEOUT)
                    .await
                    .expect("echo answers");
                assert!(r.is_ok(), "{r:?}");
            })
            .await;
            worker.shutdown(Duration::from_secs(1)).await;

            let spawn_lat = latency(30 / scale.min(3), || async {
                let report = call_once(&py_spec, &echo_call(), &CallOptions::default()).await;
                assert!(report.response.is_ok(), "{:?}", report.response);
            })
            .await;

            let rss_before = vm_rss_kib();
            let mut cfg = config(10, 10);
            cfg.idle_timeout = None;
            let pool = Pool::new("rust-echo".into(), cfg, factory(spec.clone()));
            pool.warm().await.expect("10 workers start");
            for _ in 0..100 {
                let r = pool.exec(&call, TIMEOUT).await;
                assert!(r.is_ok());
            }
            let rss_after = vm_rss_kib();
            let live = pool.stats().workers_live;
            pool.shutdown(Duration::from_secs(1)).await;
            (
                worker_lat, pool_lat, rate, violations, py_lat, spawn_lat, rss_before, rss_after,
                live,
            )
        })
        .await
        .expect("the benchmark task panicked")
    });
    let (worker_lat, pool_lat, rate, violations, py_lat, spawn_lat, rss_before, rss_after, live) =
        results;
    rows.push(("worker_rust_echo", worker_lat.to_json()));
    rows.push(("pool_rust_echo", pool_lat.to_json()));
    rows.push((
        "pool_throughput",
        json!({"workers": 2, "concurrency": 64, "calls": rate.0, "calls_per_sec": rate.1.round(), "protocol_violations": violations}),
    ));
    rows.push(("worker_python_echo", py_lat.to_json()));
    rows.push(("spawn_per_call_python_echo", spawn_lat.to_json()));
    rows.push((
        "host_rss",
        json!({"warm_workers": live, "vm_rss_kib_before": rss_before, "vm_rss_kib": rss_after}),
    ));
    let ratios = json!({
        "worker_p50_over_raw": worker_lat.p50 / raw.p50,
        "pool_p50_over_raw": pool_lat.p50 / raw.p50,
        "spawn_over_python_warm": spawn_lat.p50 / py_lat.p50,
    });

    if json_out {
        let mut out = serde_json::Map::new();
        for (name, value) in rows {
            out.insert(name.into(), value);
        }
        out.insert("ratios".into(), ratios);
        println!("{}", Value::Object(out));
        return;
    }
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>12}",
        "measure", "calls", "p50 µs", "p99 µs", "calls/s"
    );
    for (name, value) in &rows {
        if let (Some(p50), Some(p99)) = (value["p50_us"].as_f64(), value["p99_us"].as_f64()) {
            println!(
                "{name:<28} {:>8} {p50:>10.1} {p99:>10.1} {:>12.0}",
                value["calls"],
                value["calls_per_sec"].as_f64().unwrap_or(0.0)
            );
        }
    }
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>12}",
        "pool_throughput (2w, c=64)",
        rate.0,
        "",
        "",
        rate.1.round()
    );
    println!(
        "host VmRSS with {live} warm rust-echo workers: {:.1} MiB (before starting them: {:.1} MiB)",
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    println!(
        "ratios: worker p50 / raw pipe p50 = {:.2}; pool p50 / raw = {:.2}; python spawn-per-call / warm = {:.0}×",
        ratios["worker_p50_over_raw"].as_f64().unwrap_or(0.0),
        ratios["pool_p50_over_raw"].as_f64().unwrap_or(0.0),
        ratios["spawn_over_python_warm"].as_f64().unwrap_or(0.0),
    );
}

/// Latency summary, in microseconds.
#[derive(Clone, Copy)]
struct Lat {
    calls: usize,
    p50: f64,
    p99: f64,
    per_sec: f64,
}

impl Lat {
    fn from(mut samples: Vec<Duration>, total: Duration) -> Lat {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_secs_f64() * 1e6
        };
        Lat {
            calls: samples.len(),
            p50: at(0.5),
            p99: at(0.99),
            per_sec: samples.len() as f64 / total.as_secs_f64(),
        }
    }

    fn to_json(self) -> Value {
        json!({"calls": self.calls, "p50_us": round1(self.p50), "p99_us": round1(self.p99), "calls_per_sec": self.per_sec.round()})
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One call at a time: a tenth of `n` (at least one) to warm up, then `n` timed.
async fn latency<F, Fut>(n: usize, mut call: F) -> Lat
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..(n / 10).max(1) {
        call().await;
    }
    let mut samples = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed());
    }
    Lat::from(samples, all.elapsed())
}

async fn throughput(pool: &Pool, concurrency: usize, calls: usize) -> (usize, f64) {
    let call = Arc::new(echo_call());
    let per_task = calls / concurrency;
    // Warm-up: every task shape once.
    run_tasks(pool, &call, concurrency, per_task / 10 + 1).await;
    let t = Instant::now();
    run_tasks(pool, &call, concurrency, per_task).await;
    let done = per_task * concurrency;
    (done, done as f64 / t.elapsed().as_secs_f64())
}

async fn run_tasks(pool: &Pool, call: &Arc<ExecCall>, concurrency: usize, per_task: usize) {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let pool = pool.clone();
            let call = call.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let r = pool.exec(&call, TIMEOUT).await;
                    assert!(r.is_ok(), "{r:?}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a caller task panicked");
    }
}

/// The floor: write a line, read it back, blocking, against `program` as a pure
/// line echo (`cat`).
fn raw_round_trip(program: &Path, n: usize) -> Lat {
    let line = format!("{}\n", request_line());
    blocking_loop(Command::new(program), n, &line)
}

/// The same loop against rust-echo speaking the protocol (answers a health probe).
fn raw_round_trip_json(program: &Path, n: usize) -> Lat {
    let line = format!("{}\n", request_line());
    blocking_loop(Command::new(program), n, &line)
}

fn blocking_loop(mut cmd: Command, n: usize, line: &str) -> Lat {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the echo process starts");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut buf = String::new();
    let mut once = || {
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.flush().expect("flush");
        buf.clear();
        stdout.read_line(&mut buf).expect("read");
        assert!(!buf.is_empty(), "the echo process closed its stdout");
    };
    for _ in 0..(n / 10).max(1) {
        once();
    }
    let mut samples = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        once();
        samples.push(t.elapsed());
    }
    let total = all.elapsed();
    drop(stdin);
    let _ = child.wait();
    Lat::from(samples, total)
}

/// What a warm call sends, so the floor carries the same bytes.
fn request_line() -> String {
    json!({"id": "bench-1", "type": "exec", "timestamp": "2026-01-01T00:00:00.000Z", "payload": echo_payload()}).to_string()
}

fn echo_payload() -> Value {
    json!({"action": "echo", "args": {"message": "hello"}, "message": "hello"})
}

fn echo_call() -> ExecCall {
    let args = json!({"message": "hello"});
    ExecCall::new("echo", args.as_object().cloned().unwrap_or_default())
}

fn config(min: usize, max: usize) -> PoolConfig {
    PoolConfig {
        min_workers: min,
        max_workers: max,
        ..PoolConfig::default()
    }
}

fn factory(spec: LaunchSpec) -> WorkerFactory {
    Arc::new(move || {
        let spec = spec.clone();
        Box::pin(async move {
            let child = spawn(&spec)?;
            Ok(Worker::start(child, spec.label(), Limits::default()))
        })
    })
}

fn rust_echo_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PLUGD_BENCH_RUST_ECHO") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/rust-echo");
    if !path.is_file() {
        eprintln!(
            "error: the Rust echo plugin is not built: {} does not exist.\n\
             Build it with `cargo build --release -p plugd-example-rust-echo`, \
             or point PLUGD_BENCH_RUST_ECHO at a rust-echo binary.",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

fn rust_echo_spec(program: &Path) -> LaunchSpec {
    LaunchSpec {
        program: program.to_path_buf(),
        args: Vec::new(),
        cwd: std::env::temp_dir(),
        env: vec![
            ("PLUGD_PLUGIN_ID".into(), "rust-echo".into()),
            ("PLUGD_PLUGIN_VERSION".into(), "1.0.0".into()),
        ],
    }
}

fn python_echo_spec(interp: &Interpreters) -> LaunchSpec {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let plugin = PluginRef {
        id: "python-echo".into(),
        version: "1.0.0".into(),
        entry_point: "plugin.py".into(),
        language: Some("python".into()),
    };
    ndjson_launch(
        &plugin,
        &examples.join("python-echo"),
        &std::env::temp_dir(),
        interp,
    )
    .expect("python-echo can be launched")
}

/// This process's resident set size, KiB, from /proc/self/status.
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
