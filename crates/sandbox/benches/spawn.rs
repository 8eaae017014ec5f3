//! Spawn overhead of the sandbox: the median added cost of a sandboxed
//! spawn of `/bin/true` over a plain fork/exec of it, measured side by side
//! (interleaved, so drift affects every variant alike).
//!
//! Run: `cargo bench -p plugd-sandbox --bench spawn` (as root for the full
//! sandbox). `PLUGD_BENCH_ITERS` sets the number of spawns per variant
//! (default 200). Timings are printed, never asserted.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugd_sandbox::{Helper, Layer, LayerStatus, Policy, Sandbox, Target, TrustLevel};

fn spawn_sandboxed(sb: &Sandbox, policy: &Policy) -> Duration {
    let start = Instant::now();
    let mut cmd = sb
        .command(policy, &Target::new("/bin/true").cwd("/"))
        .expect("command");
    cmd.command_mut().stdin(Stdio::null()).stdout(Stdio::null());
    let (mut child, monitor) = cmd.spawn().expect("spawn");
    let status = child.wait().expect("wait");
    let outcome = monitor.finish().expect("outcome");
    let took = start.elapsed();
    assert!(
        status.success(),
        "sandboxed /bin/true failed: {status:?} {outcome:?}"
    );
    took
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

    let (mut plain, mut full, mut nocg, mut tr, mut bw) = (vec![], vec![], vec![], vec![], vec![]);
    let have_bwrap = spawn_bwrap().is_some();
    for _ in 0..3 {
        spawn_plain();
        spawn_sandboxed(&sb, &sandboxed);
    }
    for _ in 0..iters {
        plain.push(spawn_plain());
        full.push(spawn_sandboxed(&sb, &sandboxed));
        nocg.push(spawn_sandboxed(&no_cgroups, &sandboxed));
        tr.push(spawn_sandboxed(&sb, &trusted));
        if have_bwrap {
            bw.extend(spawn_bwrap());
        }
    }
    println!("spawn of /bin/true, {iters} runs each, interleaved:");
    let base = stats("plain fork/exec", plain, None);
    stats("sandboxed (every layer)", full, Some(base));
    stats("sandboxed without cgroups", nocg, Some(base));
    stats("trusted (helper, rlimits, cgroups)", tr, Some(base));
    if bw.is_empty() {
        println!("bubblewrap: not installed (apt-get install bubblewrap for the comparison)");
    } else {
        stats("bubblewrap (namespaces, ro /usr)", bw, Some(base));
    }
}
