//! The escape suite: small hostile plugins (Python and Bash, in
//! `tests/plugins/`) try every escape issue 4 lists, against the real
//! kernel. Each attempt must be stopped or contained under `sandboxed`; the
//! same plugin run `trusted` must show the attempt succeeding where that is
//! meaningful, so a "blocked" proves the sandbox, not a broken plugin.
//!
//! The suite runs twice: as `tests/escape.rs`, every plugin spawned by
//! re-executing the helper; and included by `tests/escape_fork_server.rs`,
//! every plugin spawned through a [`ForkServer`] — both paths must contain
//! every attempt.
//!
//! The tests need the layers to exist: they run as root on the CI machine,
//! where `plugd doctor` reports every layer active (checked first, in
//! `doctor_reports_every_layer_active`). Every run is bounded by a wall-clock
//! timeout in its policy plus a watchdog here.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plugd_sandbox::{
    EndReason, ForkServer, Helper, Layer, LayerStatus, Monitor, MonitorError, Network,
    OperatorSettings, Outcome, PluginGrant, Policy, ResourceRequest, Sandbox, ServerChild,
    ServerStdio, SpawnError, Step, Target, TrustLevel,
};

const HOSTILE_PY: &str = include_str!("plugins/hostile.py");
const HOSTILE_SH: &str = include_str!("plugins/hostile.sh");
const SECRET: &str = "the-host-secret-7d1f";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

fn helper() -> Helper {
    Helper::at(env!("CARGO_BIN_EXE_plugd-sandbox-init"))
}

fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| Sandbox::new(helper()).expect("probing the sandbox layers"))
}

/// The real Python interpreter (the `python3` on PATH may be a pyenv shim,
/// a shell script that would need all of pyenv inside the sandbox).
fn python() -> &'static PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 on PATH");
        assert!(out.status.success(), "python3 failed: {out:?}");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A plugin installation: plugin dir with the hostile scripts, a work dir,
/// a secret file outside both, and a directory outside them to write into.
/// Everything is world-readable, so only the sandbox can be what stops a read.
struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    plugin: PathBuf,
    work: PathBuf,
    secret: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let plugin = root.join("plugin");
    let work = root.join("work");
    let outside = root.join("outside");
    for d in [&plugin, &work, &outside] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(plugin.join("hostile.py"), HOSTILE_PY).unwrap();
    std::fs::write(plugin.join("hostile.sh"), HOSTILE_SH).unwrap();
    std::fs::write(plugin.join("data.txt"), "plugin data\n").unwrap();
    let secret = outside.join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    for (p, mode) in [
        (&root, 0o755),
        (&plugin, 0o755),
        (&outside, 0o777),
        (&plugin.join("hostile.sh"), 0o755),
        (&secret, 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    Fx {
        _dir: dir,
        root,
        plugin,
        work,
        secret,
        outside,
    }
}

fn policy_for(
    fx: &Fx,
    trust: TrustLevel,
    permissions: &[&str],
    resources: ResourceRequest,
) -> Policy {
    policy_with(fx, trust, permissions, resources, false)
}

fn policy_with(
    fx: &Fx,
    trust: TrustLevel,
    permissions: &[&str],
    resources: ResourceRequest,
    http: bool,
) -> Policy {
    let perms: Vec<String> = permissions.iter().map(|s| s.to_string()).collect();
    let runtime = plugd_sandbox::interpreter_paths(python()).unwrap();
    let mut op = OperatorSettings::default();
    // Generous ceilings so tests can also ask for more than the defaults.
    op.ceilings.memory_bytes = 1 << 30;
    op.ceilings.wall_timeout = None;
    let grant = PluginGrant {
        trust,
        permissions: &perms,
        resources,
        plugin_dir: &fx.plugin,
        work_dir: &fx.work,
        runtime_paths: &runtime,
        http_server: http,
    };
    Policy::for_plugin(&grant, &op)
        .unwrap()
        .with_timeout(Some(Duration::from_secs(20)))
}

fn policy(fx: &Fx, trust: TrustLevel) -> Policy {
    policy_for(fx, trust, &[], ResourceRequest::default())
}

fn py(mode: &str, arg: impl ToString) -> Target {
    Target::new(python())
        .args([
            "/plugin/hostile.py".to_string(),
            mode.to_string(),
            arg.to_string(),
        ])
        .cwd("/work")
}

fn sh(mode: &str, arg: impl ToString) -> Target {
    Target::new("/bin/bash")
        .args([
            "/plugin/hostile.sh".to_string(),
            mode.to_string(),
            arg.to_string(),
        ])
        .cwd("/work")
}

/// A stand-in for plugd itself: a process outside the sandbox whose
/// environment holds a secret. Killed when dropped.
struct Decoy(Child);

impl Decoy {
    fn new() -> Decoy {
        Decoy(
            Command::new("sleep")
                .arg("60")
                .env("PLUGD_TEST_SECRET", SECRET)
                .spawn()
                .unwrap(),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run produced.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    stdout_bytes: u64,
    outcome: Result<Outcome, MonitorError>,
    elapsed: Duration,
}

impl Run {
    /// The verdict line `name=ok|blocked …` for `name`.
    fn verdict(&self, name: &str) -> bool {
        let line = self
            .stdout
            .lines()
            .find(|l| l.split_once('=').is_some_and(|(n, _)| n == name))
            .unwrap_or_else(|| panic!("no verdict for {name:?}: {}", self.explain()));
        match line.split_once('=').unwrap().1.split_whitespace().next() {
            Some("ok") => true,
            Some("blocked") => false,
            other => panic!("bad verdict {other:?} in {line:?}"),
        }
    }

    fn outcome(&self) -> &Outcome {
        self.outcome.as_ref().unwrap_or_else(|e| {
            panic!(
                "no outcome: {e}\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn explain(&self) -> String {
        format!(
            "status {:?}, outcome {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.outcome, self.stdout, self.stderr
        )
    }
}

/// Reads at most `keep` bytes of a stream and counts the rest, so a
/// flooding plugin cannot exhaust the test's memory.
fn drain(mut r: impl Read + Send + 'static, keep: usize) -> std::thread::JoinHandle<(String, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = [0u8; 65536];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            if kept.len() < keep {
                kept.extend_from_slice(&buf[..n.min(keep - kept.len())]);
            }
        }
        (String::from_utf8_lossy(&kept).into_owned(), total)
    })
}

/// Whether this copy of the suite spawns through the fork server (it is
/// compiled into the `escape_fork_server` test crate).
fn via_server() -> bool {
    module_path!().starts_with("escape_fork_server")
}

/// One fork server per test process, started lazily by whoever needs it
/// first (also the unprivileged test process).
fn fork_server() -> &'static ForkServer {
    static SERVER: OnceLock<ForkServer> = OnceLock::new();
    SERVER.get_or_init(|| ForkServer::start(&helper()).expect("starting the fork server"))
}

/// A spawned helper, whichever way it was started.
enum Proc {
    Std(Child),
    Server {
        child: ServerChild,
        stdout: Option<std::io::PipeReader>,
        stderr: Option<std::io::PipeReader>,
    },
}

impl Proc {
    fn id(&self) -> u32 {
        match self {
            Proc::Std(c) => c.id(),
            Proc::Server { child, .. } => child.id(),
        }
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Proc::Std(c) => c.wait(),
            Proc::Server { child, .. } => child.wait(),
        }
    }

    fn take_output(&mut self) -> (Box<dyn Read + Send>, Box<dyn Read + Send>) {
        match self {
            Proc::Std(c) => (
                Box::new(c.stdout.take().unwrap()),
                Box::new(c.stderr.take().unwrap()),
            ),
            Proc::Server { stdout, stderr, .. } => (
                Box::new(stdout.take().unwrap()),
                Box::new(stderr.take().unwrap()),
            ),
        }
    }
}

fn spawn(sb: &Sandbox, policy: &Policy, target: &Target) -> (Proc, Monitor) {
    let mut cmd = sb
        .command(policy, target)
        .expect("building the sandboxed command");
    if via_server() {
        let (out_r, out_w) = std::io::pipe().unwrap();
        let (err_r, err_w) = std::io::pipe().unwrap();
        let stdio = ServerStdio {
            stdin: None,
            stdout: Some(out_w.into()),
            stderr: Some(err_w.into()),
        };
        let (child, monitor) = cmd
            .spawn_in(fork_server(), stdio)
            .expect("spawning through the fork server");
        let proc = Proc::Server {
            child,
            stdout: Some(out_r),
            stderr: Some(err_r),
        };
        return (proc, monitor);
    }
    cmd.command_mut()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (child, monitor) = cmd.spawn().expect("spawning the helper");
    (Proc::Std(child), monitor)
}

fn run_with(sb: &Sandbox, policy: &Policy, target: &Target) -> Run {
    let start = Instant::now();
    let (mut child, monitor) = spawn(sb, policy, target);
    let (stdout, stderr) = child.take_output();
    let out = drain(stdout, 256 * 1024);
    let err = drain(stderr, 64 * 1024);
    // Watchdog: no test may hang CI, whatever the sandbox does.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let dog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let status = child.wait().unwrap();
    let _ = tx.send(());
    dog.join().unwrap();
    let outcome = monitor.finish();
    let (stdout, stdout_bytes) = out.join().unwrap();
    let (stderr, _) = err.join().unwrap();
    Run {
        status,
        stdout,
        stderr,
        stdout_bytes,
        outcome,
        elapsed: start.elapsed(),
    }
}

fn run(policy: &Policy, target: &Target) -> Run {
    run_with(sandbox(), policy, target)
}

/// Is any process still running whose command line contains `marker`?
fn processes_with(marker: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(marker)
        {
            v.push(pid);
        }
    }
    v
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

#[test]
fn doctor_reports_every_layer_active() {
    let layers = sandbox().layers();
    assert_eq!(layers.len(), Layer::ALL.len());
    let inactive: Vec<&LayerStatus> = layers.iter().filter(|l| !l.active).collect();
    assert!(
        inactive.is_empty(),
        "layers unavailable on this machine: {inactive:#?}"
    );
    for l in layers {
        assert!(!l.detail.is_empty(), "{} has no detail", l.layer);
    }
}

#[test]
fn a_well_behaved_plugin_runs_and_is_accounted() {
    let fx = fixture();
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("hello", ""));
    assert!(r.verdict("hello"), "{}", r.explain());
    assert!(r.stdout.contains("plugin data"));
    assert!(r.status.success());
    assert_eq!(r.outcome().reason, EndReason::Exit { code: 0 });

    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("burn", ""));
    assert!(r.verdict("burn"), "{}", r.explain());
    let o = r.outcome();
    assert!(o.cpu_time >= Duration::from_millis(250), "{o:?}");
    assert!(o.peak_memory_bytes.unwrap() >= 48 << 20, "{o:?}");
    assert!(o.wall_time >= Duration::from_millis(250), "{o:?}");
}

// ---------------------------------------------------------------------------
// Reading what is not the plugin's
// ---------------------------------------------------------------------------

#[test]
fn secret_file_outside_the_plugin_dir() {
    let fx = fixture();
    let secret = fx.secret.to_str().unwrap();
    for target in [py("secret", secret).arg("0"), sh("secret", secret)] {
        let r = run(&policy(&fx, TrustLevel::Sandboxed), &target);
        assert!(!r.verdict("secret"), "{}", r.explain());
        assert!(!r.stdout.contains(SECRET), "{}", r.explain());
        let t = run(&policy(&fx, TrustLevel::Trusted), &target);
        assert!(
            t.verdict("secret"),
            "trusted could not read it: {}",
            t.explain()
        );
        assert!(t.stdout.contains(SECRET));
    }
    let decoy = Decoy::new();
    let via_proc = py("secret", secret).arg(decoy.pid().to_string());
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &via_proc);
    assert!(!r.verdict("secret_via_proc_root"), "{}", r.explain());
    let t = run(&policy(&fx, TrustLevel::Trusted), &via_proc);
    assert!(t.verdict("secret_via_proc_root"), "{}", t.explain());
}

#[test]
fn proc_1_environ_and_the_host_environment() {
    let fx = fixture();
    let decoy = Decoy::new();
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("env", decoy.pid()));
    assert!(!r.verdict("proc1_env"), "{}", r.explain());
    assert!(!r.verdict("host_env"), "{}", r.explain());
    assert!(!r.verdict("own_env"), "{}", r.explain());
    // Pid 1 is the plugin itself: the pid namespace hides the host.
    assert!(
        r.stdout.contains("pid1_cmdline") && r.stdout.contains("hostile.py env"),
        "{}",
        r.explain()
    );

    let t = run(&policy(&fx, TrustLevel::Trusted), &py("env", decoy.pid()));
    assert!(
        t.verdict("host_env"),
        "trusted could not read the decoy's environment: {}",
        t.explain()
    );
    assert!(!t.stdout.contains("pid1_cmdline python"), "{}", t.explain());
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

#[test]
fn writes_outside_the_work_dir() {
    let fx = fixture();
    let target_file = fx.outside.join("pwned");
    let arg = target_file.to_str().unwrap();
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("write", arg));
    for name in [
        "/etc/pwned",
        "/usr/pwned",
        "/plugin/pwned",
        "/pwned",
        "/proc/sys/kernel/pwned",
    ] {
        assert!(
            !r.verdict(&format!("write {name}")),
            "{name}: {}",
            r.explain()
        );
    }
    assert!(!r.verdict(&format!("write {arg}")), "{}", r.explain());
    assert!(
        r.verdict("write_work"),
        "the work dir must stay writable: {}",
        r.explain()
    );
    assert!(
        r.verdict("write_tmp"),
        "/tmp must stay writable: {}",
        r.explain()
    );
    assert!(!target_file.exists());
    assert!(
        !fx.plugin.join("pwned").exists(),
        "the installed copy was modified"
    );
    assert_eq!(
        std::fs::read_to_string(fx.work.join("ok.txt")).unwrap(),
        "fine"
    );

    let r = run(&policy(&fx, TrustLevel::Sandboxed), &sh("write", arg));
    assert!(
        !r.verdict("write_outside") && !r.verdict("write_etc"),
        "{}",
        r.explain()
    );
    assert!(r.verdict("write_work"), "{}", r.explain());
    assert!(!target_file.exists());

    let t = run(&policy(&fx, TrustLevel::Trusted), &py("write", arg));
    assert!(t.verdict(&format!("write {arg}")), "{}", t.explain());
    assert_eq!(std::fs::read_to_string(&target_file).unwrap(), "pwned");
}

// ---------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------

fn accepted_within(listener: &TcpListener, wait: Duration) -> bool {
    listener.set_nonblocking(true).unwrap();
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if listener.accept().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn tcp_connect_to_a_host_listener() {
    let fx = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for target in [py("tcp", port), sh("tcp", port)] {
        let r = run(&policy(&fx, TrustLevel::Sandboxed), &target);
        assert!(!r.verdict("tcp"), "{}", r.explain());
        assert!(!accepted_within(&listener, Duration::from_millis(200)));
        let t = run(&policy(&fx, TrustLevel::Trusted), &target);
        assert!(t.verdict("tcp"), "{}", t.explain());
        assert!(accepted_within(&listener, Duration::from_secs(2)));
    }
    // A verified plugin that declares net:connect keeps the network.
    let v = run(
        &policy_for(
            &fx,
            TrustLevel::Verified,
            &["net:connect"],
            ResourceRequest::default(),
        ),
        &py("tcp", port),
    );
    assert!(v.verdict("tcp"), "{}", v.explain());
    assert!(accepted_within(&listener, Duration::from_secs(2)));
}

#[test]
fn dns_resolution() {
    let fx = fixture();
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    resolver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = resolver.local_addr().unwrap().port();
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("dns", port));
    assert!(!r.verdict("getaddrinfo"), "{}", r.explain());
    assert!(!r.verdict("udp_resolver"), "{}", r.explain());
    let mut buf = [0u8; 512];
    assert!(
        resolver.recv_from(&mut buf).is_err(),
        "a query left the sandbox"
    );

    let t = run(&policy(&fx, TrustLevel::Trusted), &py("dns", port));
    assert!(t.verdict("udp_resolver"), "{}", t.explain());
    resolver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (n, _) = resolver
        .recv_from(&mut buf)
        .expect("the trusted plugin's query");
    assert!(buf[..n].windows(7).any(|w| w == b"example"));
}

#[test]
fn http_plugins_get_their_own_port_space() {
    let fx = fixture();
    let policy = policy_with(
        &fx,
        TrustLevel::Sandboxed,
        &[],
        ResourceRequest::default(),
        true,
    );
    assert_eq!(policy.network, Network::PrivateLoopback);
    // Two instances, both on the hard-coded port 8080.
    let (mut a, ma) = spawn(sandbox(), &policy, &py("serve", "A"));
    let (mut b, mb) = spawn(sandbox(), &policy, &py("serve", "B"));
    let get = |pid: u32| -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = plugd_sandbox::connect_loopback(pid, 8080) {
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut body = String::new();
                s.read_to_string(&mut body).unwrap();
                return body;
            }
            assert!(Instant::now() < until, "the server never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(get(a.id()).ends_with("instance A"));
    assert!(get(b.id()).ends_with("instance B"));
    plugd_sandbox::terminate(a.id()).unwrap();
    plugd_sandbox::terminate(b.id()).unwrap();
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    assert!(!sa.success() && !sb.success());
    let oa = ma.finish().unwrap();
    assert!(matches!(oa.reason, EndReason::Signal { .. }), "{oa:?}");
    mb.finish().unwrap();
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

#[test]
fn fork_bomb_is_contained_and_the_host_keeps_serving() {
    let fx = fixture();
    let mut p = policy_for(
        &fx,
        TrustLevel::Sandboxed,
        &[],
        ResourceRequest {
            processes: Some(20),
            ..Default::default()
        },
    );
    p.limits.wall_timeout = Some(Duration::from_secs(3));
    let bomb = {
        let p = p.clone();
        std::thread::spawn(move || run(&p, &sh("forkbomb", "")))
    };
    // Meanwhile another plugin is served normally.
    std::thread::sleep(Duration::from_millis(500));
    let other = run(&policy(&fx, TrustLevel::Sandboxed), &py("hello", ""));
    assert!(other.verdict("hello"), "{}", other.explain());
    let r = bomb.join().unwrap();
    let o = r.outcome();
    assert!(o.pids_limit_hit, "{}", r.explain());
    assert_eq!(o.reason, EndReason::Pids, "{}", r.explain());
    assert!(r.elapsed < Duration::from_secs(10));
    assert!(
        processes_with("hostile.sh forkbomb").is_empty(),
        "fork bomb survived the sandbox"
    );
}

#[test]
fn memory_hog_is_killed_at_the_limit() {
    let fx = fixture();
    let small = ResourceRequest {
        memory_bytes: Some(64 << 20),
        ..Default::default()
    };
    let r = run(
        &policy_for(&fx, TrustLevel::Sandboxed, &[], small.clone()),
        &py("memory", 1024),
    );
    assert_eq!(r.outcome().reason, EndReason::Memory, "{}", r.explain());
    assert!(!r.stdout.contains("memory=ok"));
    // The same request with room to spare succeeds, so it is the limit.
    let big = ResourceRequest {
        memory_bytes: Some(512 << 20),
        ..Default::default()
    };
    let t = run(
        &policy_for(&fx, TrustLevel::Trusted, &[], big),
        &py("memory", 256),
    );
    assert!(t.verdict("memory"), "{}", t.explain());
    // Trusted plugins get limits too.
    let t = run(
        &policy_for(&fx, TrustLevel::Trusted, &[], small),
        &py("memory", 1024),
    );
    assert_eq!(t.outcome().reason, EndReason::Memory, "{}", t.explain());
}

#[test]
fn cpu_spin_is_stopped_by_timeout_and_by_cpu_limit() {
    let fx = fixture();
    let mut p = policy(&fx, TrustLevel::Sandboxed);
    p.limits.wall_timeout = Some(Duration::from_secs(1));
    for target in [py("spin", ""), sh("spin", "")] {
        let r = run(&p, &target);
        assert_eq!(r.outcome().reason, EndReason::Timeout, "{}", r.explain());
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    }
    let mut p = policy(&fx, TrustLevel::Sandboxed);
    p.limits.cpu_time = Duration::from_secs(1);
    p.limits.cpu_cores = None;
    p.limits.wall_timeout = Some(Duration::from_secs(15));
    let r = run(&p, &py("spin", ""));
    assert_eq!(r.outcome().reason, EndReason::CpuTime, "{}", r.explain());
    assert!(r.outcome().cpu_time >= Duration::from_millis(900));
}

#[test]
fn stdout_and_stderr_floods_are_bounded() {
    let fx = fixture();
    let mut p = policy(&fx, TrustLevel::Sandboxed);
    p.limits.wall_timeout = Some(Duration::from_secs(1));
    for target in [py("flood", ""), sh("flood", "")] {
        let r = run(&p, &target);
        assert_eq!(
            r.outcome().reason,
            EndReason::Timeout,
            "{}",
            r.outcome.is_ok()
        );
        assert!(
            r.stdout_bytes > 1 << 20,
            "the flood did not happen ({} bytes)",
            r.stdout_bytes
        );
        assert!(r.elapsed < Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------------------
// Kernel attack surface
// ---------------------------------------------------------------------------

#[test]
fn ptrace_is_denied() {
    let fx = fixture();
    let decoy = Decoy::new();
    let r = run(
        &policy(&fx, TrustLevel::Sandboxed),
        &py("ptrace", decoy.pid()),
    );
    assert!(!r.verdict("ptrace_traceme"), "{}", r.explain());
    assert!(!r.verdict("ptrace_attach_host"), "{}", r.explain());
    let t = run(
        &policy(&fx, TrustLevel::Trusted),
        &py("ptrace", decoy.pid()),
    );
    assert!(t.verdict("ptrace_traceme"), "{}", t.explain());
    assert!(t.verdict("ptrace_attach_host"), "{}", t.explain());
}

#[test]
fn mount_is_denied() {
    let fx = fixture();
    for target in [py("mount", ""), sh("mount", "")] {
        let r = run(&policy(&fx, TrustLevel::Sandboxed), &target);
        assert!(!r.verdict("mount"), "{}", r.explain());
        // Trusted runs in its own mount namespace, so this is harmless.
        let t = run(&policy(&fx, TrustLevel::Trusted), &target);
        assert!(t.verdict("mount"), "{}", t.explain());
    }
}

#[test]
fn kernel_module_load_is_denied() {
    let fx = fixture();
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("module", ""));
    assert!(!r.verdict("module"), "{}", r.explain());
    let t = run(&policy(&fx, TrustLevel::Trusted), &py("module", ""));
    assert!(t.verdict("module"), "{}", t.explain());
}

#[test]
fn namespace_creation_is_denied() {
    let fx = fixture();
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &py("namespace", ""));
    for n in ["unshare_user", "unshare_mount", "unshare_net"] {
        assert!(!r.verdict(n), "{n}: {}", r.explain());
    }
    let r = run(&policy(&fx, TrustLevel::Sandboxed), &sh("unshare", ""));
    assert!(!r.verdict("unshare"), "{}", r.explain());
    let t = run(&policy(&fx, TrustLevel::Trusted), &py("namespace", ""));
    for n in ["unshare_user", "unshare_mount", "unshare_net"] {
        assert!(t.verdict(n), "{n}: {}", t.explain());
    }
}

#[test]
fn killing_the_host_is_impossible() {
    let fx = fixture();
    for target in [|pid: u32| py("kill", pid), |pid: u32| sh("kill", pid)] {
        let mut decoy = Decoy::new();
        let r = run(&policy(&fx, TrustLevel::Sandboxed), &target(decoy.pid()));
        assert!(!r.verdict("kill_host"), "{}", r.explain());
        assert!(decoy.alive());
        // plugd's own pid too.
        let r = run(
            &policy(&fx, TrustLevel::Sandboxed),
            &target(std::process::id()),
        );
        assert!(!r.verdict("kill_host"), "{}", r.explain());
        let t = run(&policy(&fx, TrustLevel::Trusted), &target(decoy.pid()));
        assert!(t.verdict("kill_host"), "{}", t.explain());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!decoy.alive());
    }
}

// ---------------------------------------------------------------------------
// Errors, degradation and control
// ---------------------------------------------------------------------------

#[test]
fn setup_failures_arrive_as_data() {
    let fx = fixture();
    let mut p = policy(&fx, TrustLevel::Sandboxed);
    p.binds.push(plugd_sandbox::Bind::read_only(
        fx.root.join("missing"),
        "/data",
    ));
    let r = run(&p, &py("hello", ""));
    assert_eq!(r.status.code(), Some(plugd_sandbox::SETUP_FAILED_EXIT));
    match r.outcome {
        Err(MonitorError::Setup(f)) => {
            assert_eq!(f.step, Step::Mounts);
            assert!(
                f.detail.contains("missing") && f.detail.contains("/data"),
                "{f}"
            );
            assert_eq!(f.errno, Some(libc::ENOENT));
        }
        other => panic!("expected a setup failure, got {other:?}"),
    }
    // wait_started and finish agree on the failure.
    let (mut child, mut monitor) = spawn(sandbox(), &p, &py("hello", ""));
    assert!(matches!(
        monitor.wait_started(),
        Err(MonitorError::Setup(_))
    ));
    child.wait().unwrap();
    assert!(matches!(monitor.finish(), Err(MonitorError::Setup(f)) if f.step == Step::Mounts));
    let r = run(
        &policy(&fx, TrustLevel::Sandboxed),
        &Target::new("/plugin/nope"),
    );
    match r.outcome {
        Err(MonitorError::Setup(f)) => assert_eq!(f.step, Step::Exec, "{f}"),
        other => panic!("expected an exec failure, got {other:?}"),
    }
}

fn without(layers: &[Layer]) -> Sandbox {
    Sandbox::with_layers(
        helper(),
        sandbox()
            .layers()
            .iter()
            .map(|l| LayerStatus {
                active: l.active && !layers.contains(&l.layer),
                detail: if layers.contains(&l.layer) {
                    "disabled by the test".into()
                } else {
                    l.detail.clone()
                },
                ..*l
            })
            .collect(),
    )
}

#[test]
fn full_isolation_can_be_required() {
    let fx = fixture();
    let sb = without(&[Layer::Seccomp]);
    let mut p = policy(&fx, TrustLevel::Sandboxed);
    p.require_full_isolation = true;
    match sb.command(&p, &py("hello", "")) {
        Err(SpawnError::IncompleteIsolation { missing, .. }) => {
            assert_eq!(missing.len(), 1);
            assert_eq!(missing[0].layer, Layer::Seccomp);
        }
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|c| c.plan().clone())
        ),
    }
    // Without the flag the plugin runs on the remaining layers.
    p.require_full_isolation = false;
    let r = run_with(&sb, &p, &py("hello", ""));
    assert!(r.verdict("hello"), "{}", r.explain());
}

#[test]
fn landlock_alone_still_confines_without_a_mount_namespace() {
    let fx = fixture();
    let sb = without(&[Layer::MountNamespace, Layer::MinimalRoot]);
    let p = policy(&fx, TrustLevel::Sandboxed);
    // Bash, not the pyenv Python: without a mount namespace the plugin runs
    // as the sandbox uid on the host tree, where /root is not traversable.
    // Sandbox paths are mapped to host paths: the plugin still works.
    let r = run_with(&sb, &p, &sh("hello", ""));
    assert!(r.verdict("hello"), "{}", r.explain());
    assert!(r.stdout.contains("plugin data"));
    // The host tree is visible, but Landlock refuses what the policy does not list.
    let r = run_with(&sb, &p, &sh("secret", fx.secret.to_str().unwrap()));
    assert!(!r.verdict("secret"), "{}", r.explain());
    assert!(r.stdout.contains("Permission denied"), "{}", r.explain());
    let out = fx.outside.join("pwned");
    let r = run_with(&sb, &p, &sh("write", out.to_str().unwrap()));
    assert!(!r.verdict("write_outside"), "{}", r.explain());
    assert!(r.verdict("write_work"), "{}", r.explain());
    assert!(!out.exists());
}

#[test]
fn terminate_forwards_then_escalates() {
    let fx = fixture();
    let p = policy(&fx, TrustLevel::Sandboxed);
    let (mut child, monitor) = spawn(sandbox(), &p, &py("spin", ""));
    let mut monitor = monitor;
    monitor.wait_started().unwrap();
    let start = Instant::now();
    plugd_sandbox::terminate(child.id()).unwrap();
    let status = child.wait().unwrap();
    // Pid 1 ignores SIGTERM without a handler: killed after the grace period.
    assert!(start.elapsed() < p.kill_grace + Duration::from_secs(3));
    assert!(!status.success());
    let o = monitor.finish().unwrap();
    assert_eq!(
        o.reason,
        EndReason::Signal {
            signal: libc::SIGKILL
        },
        "{o:?}"
    );
}

#[test]
fn no_cgroup_or_process_is_left_behind() {
    let fx = fixture();
    let mut p = policy(&fx, TrustLevel::Trusted);
    p.limits.wall_timeout = Some(Duration::from_secs(1));
    // A trusted plugin that leaves a daemon behind.
    let t = Target::new("/bin/bash")
        .args([
            "-c",
            "setsid sleep 300 </dev/null >/dev/null 2>&1 & sleep 0.3; echo started",
        ])
        .cwd("/work");
    let (mut child, monitor) = spawn(sandbox(), &p, &t);
    let helper_pid = child.id();
    child.wait().unwrap();
    monitor.finish().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let left: Vec<u32> = processes_with("sleep 300");
    assert!(left.is_empty(), "the daemon survived: {left:?}");
    // The same without cgroups: the helper hunts down its adopted orphans.
    let sb = without(&[Layer::CgroupMemory, Layer::CgroupPids, Layer::CgroupCpu]);
    let (mut child, monitor) = spawn(&sb, &p, &t);
    child.wait().unwrap();
    monitor.finish().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        processes_with("sleep 300").is_empty(),
        "the daemon survived without cgroups"
    );
    let name = format!("plugd-sbx-{helper_pid}");
    for h in ["memory", "pids", "cpu", "unified"] {
        let found = std::process::Command::new("find")
            .args([
                &format!("/sys/fs/cgroup/{h}"),
                "-maxdepth",
                "3",
                "-name",
                &name,
            ])
            .output()
            .unwrap();
        assert!(found.stdout.is_empty(), "cgroup {name} left in {h}");
    }
}

// ---------------------------------------------------------------------------
// Without root: user namespaces instead of a uid switch, no cgroups
// ---------------------------------------------------------------------------

/// Runs `unprivileged_host` below as uid 65534 (plugd started by an
/// ordinary user) and requires it to pass.
#[test]
fn an_unprivileged_plugd_still_confines() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            &unprivileged_test_name(),
            "--nocapture",
        ])
        .env("PLUGD_TEST_UNPRIVILEGED", "1")
        .output()
        .expect("setpriv (util-linux) runs the test binary as an ordinary user");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

/// The test's full name in this test binary (`escape::unprivileged_host`
/// when the suite is a module of the fork-server copy).
fn unprivileged_test_name() -> String {
    match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::unprivileged_host"),
        None => "unprivileged_host".to_string(),
    }
}

#[test]
#[ignore = "run by an_unprivileged_plugd_still_confines as an ordinary user"]
fn unprivileged_host() {
    assert_eq!(std::env::var("PLUGD_TEST_UNPRIVILEGED").as_deref(), Ok("1"));
    assert_ne!(rustix_euid(), 0, "must run unprivileged");
    let sb = Sandbox::new(helper()).unwrap();
    let active = |l: Layer| sb.layers().iter().any(|s| s.layer == l && s.active);
    assert!(active(Layer::User) && active(Layer::MinimalRoot) && active(Layer::Seccomp));
    // This machine gives ordinary users no cgroup: reported, not hidden.
    let mem = sb
        .layers()
        .iter()
        .find(|s| s.layer == Layer::CgroupMemory)
        .unwrap();
    assert!(
        !mem.active && mem.detail.contains("Permission denied"),
        "{mem:?}"
    );

    let fx = fixture();
    let mut p = policy(&fx, TrustLevel::Sandboxed);
    p.binds.retain(|b| !b.source.starts_with("/root"));
    let r = run_with(&sb, &p, &sh("hello", ""));
    assert!(r.verdict("hello"), "{}", r.explain());
    assert_eq!(r.outcome().peak_memory_source, "rusage");
    let r = run_with(&sb, &p, &sh("secret", fx.secret.to_str().unwrap()));
    assert!(!r.verdict("secret"), "{}", r.explain());
    let out = fx.outside.join("pwned");
    let r = run_with(&sb, &p, &sh("write", out.to_str().unwrap()));
    assert!(
        !r.verdict("write_outside") && r.verdict("write_work"),
        "{}",
        r.explain()
    );
    assert!(!out.exists());
    let r = run_with(&sb, &p, &sh("unshare", ""));
    assert!(!r.verdict("unshare"), "{}", r.explain());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = run_with(&sb, &p, &sh("tcp", listener.local_addr().unwrap().port()));
    assert!(!r.verdict("tcp"), "{}", r.explain());
}

fn rustix_euid() -> u32 {
    // The test crate has no rustix; /proc tells the effective uid.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------
// The two spawn paths
// ---------------------------------------------------------------------------

#[test]
fn each_copy_of_the_suite_tests_its_own_spawn_path() {
    assert_eq!(via_server(), module_path!() != "escape");
    let fx = fixture();
    let (mut child, monitor) = spawn(
        sandbox(),
        &policy(&fx, TrustLevel::Sandboxed),
        &py("hello", ""),
    );
    assert_eq!(matches!(child, Proc::Server { .. }), via_server());
    // Either way the helper is this process's child (the fork server forks
    // it with CLONE_PARENT), so it can be waited for like any child.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let ppid: u32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, std::process::id());
    let (out, _err) = child.take_output();
    let out = drain(out, 4096);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        monitor.finish().unwrap().reason,
        EndReason::Exit { code: 0 }
    );
    assert!(out.join().unwrap().0.contains("hello=ok"));
}

#[test]
fn a_dead_fork_server_is_an_error_not_a_hang() {
    let server = ForkServer::start(&helper()).unwrap();
    let fx = fixture();
    let p = policy(&fx, TrustLevel::Sandboxed);
    let cmd = sandbox().command(&p, &py("hello", "")).unwrap();
    let (mut child, monitor) = cmd.spawn_in(&server, ServerStdio::null()).unwrap();
    assert!(child.wait().unwrap().success());
    monitor.finish().unwrap();
    let pid = server.pid();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let cmd = sandbox().command(&p, &py("hello", "")).unwrap();
    let err = cmd
        .spawn_in(&server, ServerStdio::null())
        .expect_err("the server is dead");
    assert!(
        matches!(err, plugd_sandbox::ForkServerError::Gone { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ForkServer::start"), "{err}");
    // Dropping it reaps the dead server.
    drop(server);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // A fresh one works.
    let server = ForkServer::start(&helper()).unwrap();
    let cmd = sandbox().command(&p, &py("hello", "")).unwrap();
    let (mut child, monitor) = cmd.spawn_in(&server, ServerStdio::null()).unwrap();
    assert!(child.wait().unwrap().success());
    monitor.finish().unwrap();
}

#[test]
fn every_sandbox_gets_a_network_namespace_of_its_own() {
    let fx = fixture();
    let p = policy(&fx, TrustLevel::Sandboxed);
    let sleeper = Target::new("/bin/sleep").arg("30").cwd("/work");
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut seen = vec![host];
    let mut running = Vec::new();
    // More than the fork server's pool, so pooled and freshly made ones both
    // show up.
    for _ in 0..6 {
        let (child, mut monitor) = spawn(sandbox(), &p, &sleeper);
        let pid = monitor.wait_started().unwrap();
        let mine = ns(pid);
        assert!(!seen.contains(&mine), "{mine:?} is shared: {seen:?}");
        seen.push(mine);
        running.push((child, monitor));
    }
    for (mut child, monitor) in running {
        plugd_sandbox::terminate(child.id()).unwrap();
        child.wait().unwrap();
        monitor.finish().unwrap();
    }
}
