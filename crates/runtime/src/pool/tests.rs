//! The pool over real plugin processes: small bash plugins written per test, so
//! crashes, hangs, `busy`, noise and slow exits are real process behaviour.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::json;

use super::*;
use crate::LaunchSpec;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn bash() -> &'static PathBuf {
    static BASH: OnceLock<PathBuf> = OnceLock::new();
    BASH.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        crate::find_program(&path, &["bash"]).expect("bash is needed by these tests")
    })
}

/// A bash plugin: a prelude with `next` (reads a request into $line, $id, $type,
/// $action, $message; exits 0 at EOF; appends the line to $LOG), `reply STATUS
/// [BODY]`, then `body`. Every request's line is logged, so tests can see what
/// the plugin received.
struct Plugin {
    dir: tempfile::TempDir,
    spec: LaunchSpec,
}

impl Plugin {
    fn new(body: &str) -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        let prelude = r#"
next() {
  IFS= read -r line || exit 0
  printf '%s\n' "$line" >> "$LOG"
  id=; type=; action=; message=
  [[ $line =~ \"id\":\"([^\"]*)\" ]] && id=${BASH_REMATCH[1]}
  [[ $line =~ \"type\":\"([^\"]*)\" ]] && type=${BASH_REMATCH[1]}
  [[ $line =~ \"action\":\"([^\"]*)\" ]] && action=${BASH_REMATCH[1]}
  [[ $line =~ \"message\":\"([^\"]*)\" ]] && message=${BASH_REMATCH[1]}
  return 0
}
reply() { printf '{"id":"%s","status":"%s","body":%s}\n' "$id" "$1" "${2:-null}"; }
"#;
        let file = dir.path().join("plugin.sh");
        std::fs::write(&file, format!("{prelude}\n{body}\n")).unwrap();
        let spec = LaunchSpec {
            program: bash().clone(),
            args: vec![file.into_os_string()],
            cwd: dir.path().to_path_buf(),
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                (
                    "LOG".into(),
                    dir.path().join("requests.log").into_os_string(),
                ),
                ("PLUGD_PLUGIN_ID".into(), "test-plugin".into()),
                ("PLUGD_PLUGIN_VERSION".into(), "0.0.1".into()),
            ],
        };
        Plugin { dir, spec }
    }

    /// A plugin whose `exec` runs `on_exec` (a bash `case $action` body); health,
    /// shutdown (answer, then exit) and cancel (answered with an error, as a plugin
    /// that does not know it would) are handled.
    fn serving(on_exec: &str) -> Plugin {
        Plugin::new(&format!(
            r#"
while next; do
  case $type in
    health) reply ok ;;
    shutdown) reply ok; exit 0 ;;
    cancel) printf '{{"id":"%s","status":"error","code":400,"message":"unknown type cancel"}}\n' "$id" ;;
    exec) case $action in
{on_exec}
      *) reply ok "{{\"pid\":$$,\"message\":\"$message\"}}" ;;
      esac ;;
    *) reply error ;;
  esac
done
"#
        ))
    }

    fn factory(&self) -> WorkerFactory {
        let spec = self.spec.clone();
        Arc::new(move || {
            let spec = spec.clone();
            Box::pin(async move {
                let child = crate::spawn(&spec)?;
                Ok(Worker::start(child, spec.label(), Limits::default()))
            })
        })
    }

    fn pool(&self, config: PoolConfig) -> Pool {
        Pool::new("test-plugin@0.0.1".into(), config, self.factory())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default()
    }
}

fn config(min: usize, max: usize, in_flight: usize) -> PoolConfig {
    PoolConfig {
        min_workers: min,
        max_workers: max,
        max_in_flight: in_flight,
        health_timeout: LONG,
        ..PoolConfig::default()
    }
}

fn exec(action: &str, message: &str) -> ExecCall {
    let args = json!({"message": message});
    ExecCall::new(action, args.as_object().cloned().unwrap())
}

fn pid(response: &Response) -> u64 {
    response
        .body
        .as_ref()
        .and_then(|b| b["pid"].as_u64())
        .unwrap_or_else(|| panic!("no pid in {response:?}"))
}

fn message(response: &Response) -> &str {
    response.message.as_deref().unwrap_or("")
}

/// Polls `check` until it holds or 5 s pass.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn concurrency_spreads_over_workers_up_to_max() {
    let plugin = Plugin::serving(r#"      slow) sleep 0.2; reply ok "{\"pid\":$$}" ;;"#);
    let pool = plugin.pool(config(1, 3, 1));
    pool.warm().await.unwrap();
    assert_eq!(pool.stats().workers_live, 1);
    let calls: Vec<_> = (0..9)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.exec(&exec("slow", ""), LONG).await })
        })
        .collect();
    let mut pids = HashSet::new();
    for call in calls {
        let response = call.await.unwrap();
        assert!(response.is_ok(), "{response:?}");
        pids.insert(pid(&response));
    }
    assert_eq!(
        pids.len(),
        3,
        "9 calls, one in flight per worker, at most 3 workers"
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.workers_live, stats.started, stats.in_flight),
        (3, 3, 0)
    );
    assert_eq!(stats.calls, 9);
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn the_least_loaded_worker_is_picked_before_a_new_one_starts() {
    let plugin = Plugin::serving("");
    let pool = plugin.pool(config(2, 4, 8));
    pool.warm().await.unwrap();
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.exec(&exec("echo", &format!("m{i}")), LONG).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap();
        assert_eq!(response.body.as_ref().unwrap()["message"], format!("m{i}"));
    }
    // 40 calls fit in 2 × 8 slots only if spread; never more than max.
    let stats = pool.stats();
    assert!(stats.started <= 4, "{stats:?}");
    assert_eq!(stats.protocol_violations, 0);
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn a_crash_fails_its_call_and_the_worker_is_replaced() {
    let plugin = Plugin::serving(r#"      crash) echo "fatal: out of widgets" >&2; exit 3 ;;"#);
    let pool = plugin.pool(config(1, 1, 4));
    pool.warm().await.unwrap();
    let first = pool.exec(&exec("echo", "a"), LONG).await;
    let crashed = pool.exec(&exec("crash", ""), LONG).await;
    assert_eq!(crashed.code, Some(codes::INTERNAL));
    let text = message(&crashed);
    assert!(text.contains("test-plugin@0.0.1"), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("out of widgets"), "{text}");
    let after = pool.exec(&exec("echo", "b"), LONG).await;
    assert!(after.is_ok(), "{after:?}");
    assert_ne!(
        pid(&first),
        pid(&after),
        "a new process serves the next call"
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.crashed, stats.started, stats.replaced),
        (1, 2, 1),
        "{stats:?}"
    );
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn a_timeout_kills_only_that_worker() {
    // `hang` never answers; `slow` answers after a while on the other worker.
    let plugin = Plugin::serving(
        r#"      hang) ;;
      slow) sleep 0.4; reply ok "{\"pid\":$$}" ;;"#,
    );
    let pool = plugin.pool(config(2, 2, 1));
    pool.warm().await.unwrap();
    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(&exec("slow", ""), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let hung = pool.exec(&exec("hang", ""), SHORT).await;
    assert_eq!(hung.code, Some(codes::TIMEOUT), "{hung:?}");
    assert!(message(&hung).contains("was killed"), "{}", message(&hung));
    let slow = slow.await.unwrap();
    assert!(
        slow.is_ok(),
        "the other worker's call is unaffected: {slow:?}"
    );
    let stats = pool.stats();
    assert_eq!((stats.timeouts, stats.workers_live), (1, 1), "{stats:?}");
    let again = pool.exec(&exec("echo", ""), LONG).await;
    assert!(again.is_ok(), "{again:?}");
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn busy_is_retried_on_another_worker() {
    // Each process says busy to its first exec, then serves.
    let plugin = Plugin::serving(
        r#"      *) if [[ -z $served ]]; then served=1; reply busy; else reply ok "{\"pid\":$$}"; fi ;;"#,
    );
    let pool = plugin.pool(config(1, 2, 4));
    pool.warm().await.unwrap();
    let response = pool.exec(&exec("echo", ""), LONG).await;
    assert!(response.is_ok(), "{response:?}");
    let stats = pool.stats();
    // Worker A: busy; a new worker B: busy; back to A, which now serves.
    assert_eq!((stats.busy_retries, stats.started), (2, 2), "{stats:?}");
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn busy_is_returned_when_the_retries_are_spent() {
    let plugin = Plugin::serving(r#"      *) reply busy ;;"#);
    let pool = plugin.pool(PoolConfig {
        busy_retries: 2,
        ..config(1, 1, 4)
    });
    let started = Instant::now();
    let response = pool.exec(&exec("echo", ""), LONG).await;
    assert_eq!(response.status, Status::Busy);
    assert_eq!(pool.stats().busy_retries, 2);
    // Backoff 2 ms then 4 ms: waited, but briefly.
    assert!(started.elapsed() >= Duration::from_millis(6));
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn idle_workers_are_stopped_and_the_next_call_starts_one() {
    let plugin = Plugin::serving("");
    let pool = plugin.pool(PoolConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..config(1, 2, 4)
    });
    pool.warm().await.unwrap();
    assert!(pool.exec(&exec("echo", ""), LONG).await.is_ok());
    eventually("the idle worker is stopped", || {
        pool.stats().workers_live == 0
    })
    .await;
    assert_eq!(pool.stats().reaped, 1);
    let response = pool.exec(&exec("echo", ""), LONG).await;
    assert!(response.is_ok(), "{response:?}");
    assert_eq!(pool.stats().started, 2);
    // The stopped worker got a graceful shutdown, not a kill.
    eventually("the plugin saw shutdown", || {
        plugin.log().contains("\"type\":\"shutdown\"")
    })
    .await;
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn workers_above_min_are_reaped_while_the_pool_is_in_use() {
    let plugin = Plugin::serving(r#"      slow) sleep 0.2; reply ok "{\"pid\":$$}" ;;"#);
    let pool = plugin.pool(PoolConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..config(1, 2, 1)
    });
    let a = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(&exec("slow", ""), LONG).await })
    };
    let b = pool.exec(&exec("slow", ""), LONG).await;
    assert!(a.await.unwrap().is_ok() && b.is_ok());
    assert_eq!(pool.stats().workers_live, 2);
    // Keep one worker busy: the pool is in use, so only the extra one goes.
    let keep_busy = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for _ in 0..6 {
                assert!(pool.exec(&exec("slow", ""), LONG).await.is_ok());
            }
        })
    };
    eventually("the extra worker is stopped", || pool.stats().reaped == 1).await;
    assert_eq!(pool.stats().workers_live, 1);
    keep_busy.await.unwrap();
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn shutdown_is_graceful_and_later_calls_fail_clearly() {
    let plugin = Plugin::serving("");
    let pool = plugin.pool(config(2, 2, 4));
    pool.warm().await.unwrap();
    let started = Instant::now();
    pool.shutdown(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(plugin.log().matches("\"type\":\"shutdown\"").count(), 2);
    let stats = pool.stats();
    assert_eq!((stats.workers_live, stats.crashed), (0, 0), "{stats:?}");
    let response = pool.exec(&exec("echo", ""), LONG).await;
    assert_eq!(response.code, Some(codes::INTERNAL));
    assert!(
        message(&response).contains("pool was shut down"),
        "{}",
        message(&response)
    );
    assert!(matches!(
        pool.request(RequestType::Health, None, LONG).await,
        Err(PoolError::ShutDown { .. })
    ));
}

#[tokio::test]
async fn shutdown_kills_what_remains_at_the_deadline() {
    // Answers shutdown but never exits; ignores EOF on stdin.
    let plugin = Plugin::new(
        r#"
trap '' TERM
while true; do
  IFS= read -r line || { sleep 30; continue; }
  [[ $line =~ \"id\":\"([^\"]*)\" ]] && id=${BASH_REMATCH[1]}
  reply ok
done
"#,
    );
    let pool = plugin.pool(config(1, 1, 4));
    pool.warm().await.unwrap();
    let started = Instant::now();
    pool.shutdown(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn shutdown_waits_for_calls_in_flight() {
    let plugin = Plugin::serving(r#"      slow) sleep 0.3; reply ok "{\"pid\":$$}" ;;"#);
    let pool = plugin.pool(config(1, 1, 4));
    pool.warm().await.unwrap();
    let call = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(&exec("slow", ""), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    pool.shutdown(Duration::from_secs(5)).await;
    let response = call.await.unwrap();
    assert!(
        response.is_ok(),
        "the call in flight finished: {response:?}"
    );
}

#[tokio::test]
async fn a_worker_that_cannot_start_fails_the_call_with_its_stderr() {
    let plugin = Plugin::new(r#"echo "config.yaml: missing key 'token'" >&2; exit 1"#);
    let pool = plugin.pool(config(1, 2, 4));
    let err = pool.warm().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("could not be started") && text.contains("missing key 'token'"),
        "{text}"
    );
    let response = pool.exec(&exec("echo", ""), LONG).await;
    assert_eq!(response.code, Some(codes::INTERNAL));
    assert!(
        message(&response).contains("missing key 'token'"),
        "{}",
        message(&response)
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.workers_live, stats.started, stats.start_failures),
        (0, 0, 2)
    );
}

#[tokio::test]
async fn an_unhealthy_worker_gets_no_calls() {
    let plugin = Plugin::new(
        r#"
while next; do
  case $type in
    health) printf '{"id":"%s","status":"error","code":500,"message":"database unreachable"}\n' "$id" ;;
    *) reply ok ;;
  esac
done
"#,
    );
    let pool = plugin.pool(config(0, 1, 4));
    let response = pool.exec(&exec("echo", ""), LONG).await;
    let text = message(&response);
    assert!(
        text.contains("health check") && text.contains("database unreachable"),
        "{text}"
    );
    assert!(
        !plugin.log().contains("\"type\":\"exec\""),
        "exec was sent to an unhealthy worker"
    );
    // Without the check the same plugin serves.
    let pool = plugin.pool(PoolConfig {
        health_check_on_start: false,
        ..config(0, 1, 4)
    });
    assert!(pool.exec(&exec("echo", ""), LONG).await.is_ok());
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn calls_wait_for_room_and_give_up_with_300() {
    let plugin = Plugin::serving(
        r#"      hang) ;;
      slow) sleep 0.3; reply ok "{\"pid\":$$}" ;;"#,
    );
    let pool = plugin.pool(config(1, 1, 1));
    pool.warm().await.unwrap();
    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(&exec("slow", ""), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Waits for the slow call to finish, then runs.
    let waited = pool.exec(&exec("echo", ""), LONG).await;
    assert!(waited.is_ok(), "{waited:?}");
    assert!(slow.await.unwrap().is_ok());
    // Now a call that occupies the only slot longer than the next one may wait.
    let blocker = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(&exec("slow", ""), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = pool
        .exec(&exec("echo", ""), Duration::from_millis(100))
        .await;
    assert_eq!(refused.code, Some(codes::RESOURCE_EXHAUSTED), "{refused:?}");
    assert!(
        message(&refused).contains(ENV_POOL_MAX),
        "{}",
        message(&refused)
    );
    assert_eq!(pool.stats().saturated, 1);
    assert!(blocker.await.unwrap().is_ok());
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn cancel_is_sent_when_a_caller_gives_up() {
    let plugin = Plugin::serving("      hang) ;;");
    let pool = plugin.pool(config(1, 1, 4));
    pool.warm().await.unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        pool.request_with_id(
            "call-1".into(),
            RequestType::Exec,
            Some(exec("hang", "").to_payload()),
            LONG,
        ),
    )
    .await;
    assert!(gave_up.is_err(), "the call should still be waiting");
    eventually("the plugin saw the cancel", || {
        plugin.log().lines().any(|l| {
            l.contains("\"type\":\"cancel\"") && l.contains("\"payload\":{\"id\":\"call-1\"}")
        })
    })
    .await;
    // The plugin answered the cancel with an error; that answer is neither
    // noise nor fatal, and the worker keeps serving.
    let response = pool.exec(&exec("echo", ""), LONG).await;
    assert!(response.is_ok(), "{response:?}");
    let stats = pool.stats();
    assert_eq!(
        (
            stats.protocol_violations,
            stats.workers.cancels,
            stats.in_flight
        ),
        (0, 1, 0),
        "{stats:?}"
    );
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn cancel_is_sent_when_a_call_times_out() {
    let plugin = Plugin::serving("      hang) ;;");
    let child = crate::spawn(&plugin.spec).unwrap();
    let worker = Worker::start(child, "test-plugin@0.0.1".into(), Limits::default());
    let err = worker
        .request_with_id(
            "slow-1".into(),
            RequestType::Exec,
            Some(exec("hang", "").to_payload()),
            SHORT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    eventually("the plugin saw the cancel", || {
        plugin.log().lines().any(|l| {
            l.contains("\"type\":\"cancel\"") && l.contains("\"payload\":{\"id\":\"slow-1\"}")
        })
    })
    .await;
    assert!(
        worker
            .request(RequestType::Health, None, LONG)
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(worker.stats().violations(), 0);
    // Nothing to cancel for a call that was answered.
    assert_eq!(plugin.log().matches("\"type\":\"cancel\"").count(), 1);
    worker.shutdown(LONG).await;
}

#[tokio::test]
async fn answers_out_of_order_reach_their_callers() {
    // Reads two requests, answers the second first.
    let plugin = Plugin::new(
        r#"
next; reply ok
while next; do
  id1=$id; m1=$message
  next
  reply ok "{\"message\":\"$message\"}"
  id=$id1; reply ok "{\"message\":\"$m1\"}"
done
"#,
    );
    let pool = plugin.pool(config(1, 1, 2));
    pool.warm().await.unwrap();
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(&exec("echo", "first"), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = pool.exec(&exec("echo", "second"), LONG).await;
    let first = first.await.unwrap();
    assert_eq!(first.body.unwrap()["message"], "first");
    assert_eq!(second.body.unwrap()["message"], "second");
    assert_eq!(pool.stats().protocol_violations, 0);
}

#[tokio::test]
async fn stdout_noise_is_counted_not_fatal() {
    let plugin = Plugin::serving(
        r#"      noisy) echo "DEBUG: computing"; echo '{"id":"nobody","status":"ok"}'; reply ok "{\"pid\":$$}" ;;"#,
    );
    let pool = plugin.pool(config(1, 1, 4));
    pool.warm().await.unwrap();
    let first = pool.exec(&exec("noisy", ""), LONG).await;
    assert!(first.is_ok(), "{first:?}");
    let second = pool.exec(&exec("noisy", ""), LONG).await;
    assert_eq!(pid(&first), pid(&second), "the same worker keeps serving");
    let stats = pool.stats();
    assert_eq!(
        (stats.workers.stray_lines, stats.workers.unknown_ids),
        (2, 2),
        "{stats:?}"
    );
    assert_eq!((stats.protocol_violations, stats.crashed), (4, 0));
    pool.shutdown(LONG).await;
}

#[tokio::test]
async fn the_reaper_ends_with_the_pool() {
    let plugin = Plugin::serving("");
    let pool = plugin.pool(PoolConfig {
        idle_timeout: Some(Duration::from_millis(50)),
        ..config(0, 1, 1)
    });
    let weak = Arc::downgrade(&pool.inner);
    drop(pool);
    assert!(
        weak.upgrade().is_none(),
        "the reaper must not keep the pool alive"
    );
}

#[test]
fn config_from_the_environment() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let config = PoolConfig::from_lookup(vars(&[])).unwrap();
    assert_eq!(config, PoolConfig::default());
    assert!(config.max_workers >= 1 && config.min_workers == 1 && config.max_in_flight == 32);

    let config = PoolConfig::from_lookup(vars(&[
        (ENV_POOL_MIN, "2"),
        (ENV_POOL_MAX, " 8 "),
        (ENV_POOL_IN_FLIGHT, "4"),
        (ENV_POOL_IDLE_SECS, "0"),
    ]))
    .unwrap();
    assert_eq!(
        (
            config.min_workers,
            config.max_workers,
            config.max_in_flight,
            config.idle_timeout
        ),
        (2, 8, 4, None)
    );
    let config = PoolConfig::from_lookup(vars(&[(ENV_POOL_MIN, "300")])).unwrap();
    assert_eq!((config.min_workers, config.max_workers), (300, 300));

    for (pairs, name) in [
        (&[(ENV_POOL_MAX, "0")][..], ENV_POOL_MAX),
        (&[(ENV_POOL_MAX, "-1")][..], ENV_POOL_MAX),
        (&[(ENV_POOL_MAX, "many")][..], ENV_POOL_MAX),
        (&[(ENV_POOL_IN_FLIGHT, "0")][..], ENV_POOL_IN_FLIGHT),
        (&[(ENV_POOL_IN_FLIGHT, "1e3")][..], ENV_POOL_IN_FLIGHT),
        (&[(ENV_POOL_IDLE_SECS, "60s")][..], ENV_POOL_IDLE_SECS),
        (
            &[(ENV_POOL_IDLE_SECS, "99999999999999999999")][..],
            ENV_POOL_IDLE_SECS,
        ),
        (
            &[(ENV_POOL_MIN, "5"), (ENV_POOL_MAX, "2")][..],
            ENV_POOL_MIN,
        ),
    ] {
        let pairs: &'static [(&str, &str)] = pairs;
        let err = PoolConfig::from_lookup(vars(pairs)).unwrap_err();
        assert_eq!(err.name, name);
        let text = err.to_string();
        assert!(
            text.contains(name) && text.contains("fix or unset"),
            "{text}"
        );
    }
}

#[test]
fn errors_map_to_the_taxonomy() {
    let saturated = PoolError::Saturated {
        plugin: "p@1".into(),
        workers: 2,
        max_in_flight: 32,
        waited: Duration::from_secs(10),
    };
    assert_eq!(saturated.code(), codes::RESOURCE_EXHAUSTED);
    let response = saturated.into_response("r1");
    assert_eq!(
        (response.id.as_str(), response.code),
        ("r1", Some(codes::RESOURCE_EXHAUSTED))
    );
    assert_eq!(response.meta.unwrap()["error"], "saturated");
    let timeout = PoolError::Call(CallError::Timeout {
        plugin: "p@1".into(),
        kind: RequestType::Exec,
        after: Duration::from_secs(1),
        killed: true,
        noise: Default::default(),
    });
    assert_eq!(
        (timeout.code(), timeout.kind_name()),
        (codes::TIMEOUT, "timeout")
    );
}
