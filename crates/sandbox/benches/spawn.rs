//! Spawn overhead of the sandbox: the median added cost of a sandboxed
//! spawn of `/bin/true` over a plain fork/exec of it, measured side by side
//! (interleaved, so drift affects every variant alike).
//!
//! Variants: plain `Command`; sandboxed and trusted through a
//! [`ForkServer`] (with and without its root templates) and by
//! re-executing the helper; sandboxed without cgroups;
//! bubblewrap when installed; and, last, the fork server with idle time
//! before each spawn (so its network-namespace pool is filled).
//!
//! Run: `cargo bench -p plugd-sandbox --bench spawn` (as root for the full
//! sandbox). `PLUGD_BENCH_ITERS` sets the number of spawns per variant
//! (default 200). With `PLUGD_SANDBOX_TRACE=1` it also prints the median
//! time of every setup step (see `plugd_sandbox::trace`). Timings are
//! printed, never asserted.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugd_sandbox::{
    ForkServer, Helper, Layer, LayerStatus, Policy, Sandbox, ServerStdio, StepMark, Target,
    TrustLevel, monotonic_ns,
};

/// Per-step durations of traced spawns: step name → samples.
type Steps = BTreeMap<(usize, String), Vec<Duration>>;

/// Spawns `/bin/true` sandboxed, through `server` when given (else by
/// re-executing the helper), and waits for it and its accounting.
fn spawn_sandboxed(
    sb: &Sandbox,
    policy: &Policy,
    server: Option<&ForkServer>,
    steps: Option<&mut Steps>,
) -> Duration {
    let t0 = monotonic_ns();
    let start = Instant::now();
    let mut cmd = sb
        .command(policy, &Target::new("/bin/true").cwd("/"))
        .expect("command");
    let built = StepMark {
        step: "host: command built".into(),
        at_ns: monotonic_ns(),
    };
    let (status, monitor) = match server {
        Some(server) => {
            let (mut child, monitor) = cmd.spawn_in(server, ServerStdio::null()).expect("spawn");
            (child.wait().expect("wait"), monitor)
        }
        None => {
            cmd.command_mut().stdin(Stdio::null()).stdout(Stdio::null());
            let (mut child, monitor) = cmd.spawn().expect("spawn");
            (child.wait().expect("wait"), monitor)
        }
    };
    let (outcome, marks) = monitor.finish_with_timings();
    let took = start.elapsed();
    let t_end = monotonic_ns();
    let outcome = outcome.expect("outcome");
    assert!(
        status.success(),
        "sandboxed /bin/true failed: {status:?} {outcome:?}"
    );
    if let Some(steps) = steps
        && !marks.is_empty()
    {
        // The critical path: the helper waits while its child sets up, so
        // sorted by time the marks form one chain; the helper's own "forked"
        // mark is the one taken in parallel with the child, and is left out.
        let mut marks: Vec<StepMark> = std::iter::once(built)
            .chain(marks)
            .filter(|m| m.step != "helper: forked")
            .collect();
        marks.sort_by_key(|m| m.at_ns);
        let mut prev = t0;
        for (i, m) in marks.iter().enumerate() {
            let d = Duration::from_nanos(m.at_ns.saturating_sub(prev));
            steps.entry((i, m.step.clone())).or_default().push(d);
            prev = m.at_ns;
        }
        steps
            .entry((marks.len(), "host: helper exit seen, report read".into()))
            .or_default()
            .push(Duration::from_nanos(t_end.saturating_sub(prev)));
    }
    took
}

fn print_steps(name: &str, steps: Steps) {
    if steps.is_empty() {
        return;
    }
    println!("\n{name}: median time of each step (ending at the named mark):");
    for ((_, step), mut v) in steps {
        v.sort();
        println!("  {:>7.3} ms  {step}", v[v.len() / 2].as_secs_f64() * 1e3);
    }
}

fn spawn_plain() -> Duration {
    let start = Instant::now();
    let status = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success());
    start.elapsed()
}

/// bubblewrap with a comparable (smaller) confinement, when installed: every
/// namespace, a read-only /usr, fresh /proc, /dev and /tmp. No Landlock,
/// seccomp, rlimits or cgroups.
fn spawn_bwrap() -> Option<Duration> {
    let start = Instant::now();
    let status = Command::new("bwrap")
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "/bin/true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| start.elapsed())
}

fn stats(name: &str, mut v: Vec<Duration>, base: Option<Duration>) -> Duration {
    v.sort();
    let pct = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    let med = pct(0.5);
    let added = base.map_or(String::new(), |b| {
        format!(
            "  added {:>7.3} ms",
            (med.as_secs_f64() - b.as_secs_f64()) * 1e3
        )
    });
    println!(
        "{name:<34} median {:>7.3} ms  p10 {:>7.3} ms  p90 {:>7.3} ms{added}",
        med.as_secs_f64() * 1e3,
        pct(0.1).as_secs_f64() * 1e3,
        pct(0.9).as_secs_f64() * 1e3
    );
    med
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too,
    // with few iterations.
    let testing =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let iters: usize = std::env::var("PLUGD_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if testing { 5 } else { 200 });
    let helper = Helper::at(env!("CARGO_BIN_EXE_plugd-sandbox-init"));
    let sb = Sandbox::new(helper.clone()).expect("probe");
    let inactive = sb
        .layers()
        .iter()
        .filter(|l| !l.active)
        .map(|l| l.layer.name())
        .collect::<Vec<_>>();
    println!(
        "layers inactive on this machine: {}",
        if inactive.is_empty() {
            "none".to_string()
        } else {
            inactive.join(", ")
        }
    );
    let no_cgroups = Sandbox::with_layers(
        helper,
        sb.layers()
            .iter()
            .map(|l| LayerStatus {
                active: l.active
                    && !matches!(
                        l.layer,
                        Layer::CgroupMemory | Layer::CgroupPids | Layer::CgroupCpu
                    ),
                ..l.clone()
            })
            .collect(),
    );

    let work = tempfile::tempdir().expect("tempdir");
    let mut sandboxed = Policy::sandboxed();
    sandboxed.work_dir = Some(work.path().to_path_buf());
    let mut trusted = sandboxed.clone();
    trusted.trust = TrustLevel::Trusted;
    trusted.binds.clear();
    trusted.work_dir = None;

    let server = ForkServer::start(sb.helper()).expect("starting the fork server");
    // The same server without root templates: what the template saves.
    let per_spawn = ForkServer::start_without_root_templates(sb.helper())
        .expect("starting the second fork server");
    let mut srv_per_spawn = vec![];
    let mut per_spawn_steps = Steps::new();
    let (mut plain, mut full, mut nocg, mut tr, mut bw) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut srv_full, mut srv_tr) = (vec![], vec![]);
    let have_bwrap = spawn_bwrap().is_some();
    for _ in 0..3 {
        spawn_plain();
        spawn_sandboxed(&sb, &sandboxed, None, None);
        spawn_sandboxed(&sb, &sandboxed, Some(&server), None);
        spawn_sandboxed(&sb, &sandboxed, Some(&per_spawn), None);
    }
    let (mut full_steps, mut tr_steps, mut srv_steps) = (Steps::new(), Steps::new(), Steps::new());
    for _ in 0..iters {
        plain.push(spawn_plain());
        full.push(spawn_sandboxed(
            &sb,
            &sandboxed,
            None,
            Some(&mut full_steps),
        ));
        srv_full.push(spawn_sandboxed(
            &sb,
            &sandboxed,
            Some(&server),
            Some(&mut srv_steps),
        ));
        srv_per_spawn.push(spawn_sandboxed(
            &sb,
            &sandboxed,
            Some(&per_spawn),
            Some(&mut per_spawn_steps),
        ));
        nocg.push(spawn_sandboxed(&no_cgroups, &sandboxed, None, None));
        tr.push(spawn_sandboxed(&sb, &trusted, None, Some(&mut tr_steps)));
        srv_tr.push(spawn_sandboxed(&sb, &trusted, Some(&server), None));
        if have_bwrap {
            bw.extend(spawn_bwrap());
        }
    }
    // The fork server makes network namespaces only in idle time (50 ms
    // without a request), so the back-to-back loop above runs its pool dry;
    // a host that spawns now and then gets this instead. Not interleaved
    // with the plain spawns: compare with the plain median above.
    let mut idle = vec![];
    let mut idle_steps = Steps::new();
    for _ in 0..iters.min(60) {
        std::thread::sleep(Duration::from_millis(60));
        idle.push(spawn_sandboxed(
            &sb,
            &sandboxed,
            Some(&server),
            Some(&mut idle_steps),
        ));
    }
    println!("spawn of /bin/true, {iters} runs each, interleaved:");
    let base = stats("plain fork/exec", plain, None);
    stats("sandboxed, fork server", srv_full, Some(base));
    stats(
        "sandboxed, fork server, root per spawn",
        srv_per_spawn,
        Some(base),
    );
    stats("trusted, fork server", srv_tr, Some(base));
    stats("sandboxed, fork server, idle before", idle, Some(base));
    stats("sandboxed (every layer)", full, Some(base));
    stats("sandboxed without cgroups", nocg, Some(base));
    stats("trusted (helper, rlimits, cgroups)", tr, Some(base));
    if bw.is_empty() {
        println!("bubblewrap: not installed (apt-get install bubblewrap for the comparison)");
    } else {
        stats("bubblewrap (namespaces, ro /usr)", bw, Some(base));
    }
    print_steps("sandboxed, fork server", srv_steps);
    print_steps("sandboxed, fork server, root per spawn", per_spawn_steps);
    print_steps("sandboxed, fork server, idle before", idle_steps);
    print_steps("sandboxed (every layer)", full_steps);
    print_steps("trusted", tr_steps);
}
