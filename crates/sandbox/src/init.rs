//! The re-exec helper: a hidden mode of the `plugd` binary
//! (`plugd __sandbox-init`) that turns a [`RunSpec`] into a confined plugin.
//!
//! Why a helper process instead of a `pre_exec` closure: the host is a
//! multithreaded tokio program, and between `fork` and `exec` a child of a
//! multithreaded process may only make async-signal-safe calls — no
//! allocation, no locks, no serde, no Landlock or seccomp builders. The
//! helper starts fresh and single-threaded, so all of that is safe there.
//!
//! ```text
//! host ──spawn──▶ helper (single-threaded)
//!                   1. read the spec, check it is alone (1 thread)
//!                   2. create the sandbox cgroup (limits written)
//!                   3. unshare(user?|pid|net|ipc|uts|cgroup), uid maps
//!                   4. block SIGCHLD/SIGTERM/…, fork ──▶ child = pid 1
//!                      (clone3 into the v2 cgroup)     5. PDEATHSIG, join v1
//!                   │                                     cgroups, setsid
//!                   │                                  6. unshare(mnt), minimal
//!                   │                                     root, pivot_root
//!                   │                                  7. hostname, loopback
//!                   │                                  8. build Landlock + seccomp
//!                   │                                  9. rlimits
//!                   │                                 10. caps/uid drop, NNP
//!                   │                                 11. chdir, Landlock, seccomp
//!                   │                                 12. unblock signals, execve
//!                   5'. read the child's error pipe (EOF on exec)
//!                   6'. report `started` or `setup_failed`
//!                   7'. wait: forward SIGTERM/INT/HUP/QUIT, escalate to
//!                       SIGKILL after the grace period, kill on timeout
//!                   8'. tear down the cgroup, report `finished`, exit with
//!                       the plugin's status (same code, or same signal)
//! ```
//!
//! Seccomp is loaded last because every step before it needs calls it
//! denies; Landlock goes right before it, after the identity switch, so the
//! ruleset is never weakened by a later privileged step.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroups::{self, Controller, SandboxCgroup};
use crate::message::{
    self, EndReason, InitRequest, LayerPlan, Outcome, Report, RunSpec, SPEC_ENV, SetupFailure, Step,
};
use crate::mounts::{self, Remap, RootOptions};
use crate::policy::{Policy, WORK_MOUNT};
use crate::rlimits::{self, CgroupCoverage};
use crate::sys::{self, Forked, LinuxSys, Sys, WaitStatus};
use crate::trace::Marks;
use crate::{caps, landlock, namespaces, seccomp};

/// Exit code of a helper whose setup failed (the plugin never ran). The
/// report pipe says why; a plugin may of course exit 125 itself.
pub const SETUP_FAILED_EXIT: i32 = 125;

/// The signals the helper handles itself.
const HANDLED: [i32; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
];

/// Entry point of the helper mode. Never returns.
///
/// The `plugd` binary calls this (through [`crate::run_helper_if_requested`])
/// first thing in `main`, before any thread or runtime is started.
pub fn init_main() -> ! {
    let entered = crate::trace::monotonic_ns();
    let raw = match std::env::var(SPEC_ENV) {
        Ok(raw) => raw,
        Err(_) => {
            eprintln!(
                "plugd sandbox helper: {SPEC_ENV} is not set; `{}` is an internal mode that plugd starts itself",
                crate::HELPER_ARG
            );
            sys::exit_now(SETUP_FAILED_EXIT)
        }
    };
    let request: InitRequest = match serde_json::from_str(&raw) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "plugd sandbox helper: unreadable request in {SPEC_ENV}: {e} (plugd and its helper binary differ?)"
            );
            sys::exit_now(SETUP_FAILED_EXIT)
        }
    };
    match request {
        InitRequest::Probe => {
            let statuses = crate::probe::run_checks();
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&message::encode_line(&statuses));
            let _ = out.flush();
            sys::exit_now(0)
        }
        InitRequest::Run(spec) => {
            let mut marks = Marks::new(spec.trace);
            marks.at("helper: entered main (exec, loader, std init)", entered);
            marks.mark("helper: request parsed");
            run(*spec, marks, Origin::Exec)
        }
        InitRequest::Serve {
            socket_fd,
            root_templates,
        } => crate::server::serve(socket_fd, root_templates),
    }
}

/// Sends reports to the host; a vanished host is not an error for the
/// plugin, so write failures are ignored.
struct Reporter(Option<std::fs::File>);

impl Reporter {
    fn send(&mut self, r: &Report) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(&message::encode_line(r));
        }
    }
}

/// How this helper process came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A fresh exec of the helper binary: whatever ran before `main` (a
    /// `main` that forgot to call `run_helper_if_requested` first) may have
    /// started threads, so they are counted.
    Exec,
    /// Forked (without `CLONE_THREAD`) by the fork server, which checked it
    /// was single-threaded and never starts a thread: the copy has exactly
    /// one thread by construction, so the count (~0.1 ms of /proc reading)
    /// is skipped.
    ForkServer,
}

/// Runs one spec to the end (the re-exec helper, or a helper forked by the
/// fork server after it installed the plugin's stdio).
pub(crate) fn run(spec: RunSpec, mut marks: Marks, origin: Origin) -> ! {
    let mut reporter = match sys::adopt_inherited_fd(spec.report_fd) {
        Ok(fd) => {
            // Close-on-exec again, so the plugin never inherits it.
            let _ = sys::set_cloexec(fd.as_fd(), true);
            Reporter(Some(std::fs::File::from(fd)))
        }
        Err(e) => {
            eprintln!(
                "plugd sandbox helper: report descriptor {} unusable: {e}",
                spec.report_fd
            );
            Reporter(None)
        }
    };
    match supervise(&spec, &mut reporter, &mut marks, origin) {
        Ok(status) => {
            drop(reporter);
            match status {
                WaitStatus::Exited(code) => sys::exit_now(code),
                WaitStatus::Signaled(sig) => sys::die_by_signal(sig),
            }
        }
        Err(failure) => {
            reporter.send(&Report::SetupFailed(failure));
            sys::exit_now(SETUP_FAILED_EXIT)
        }
    }
}

fn wanted_controllers(plan: &LayerPlan) -> Vec<Controller> {
    let mut v = Vec::new();
    if plan.cgroup_memory {
        v.push(Controller::Memory);
    }
    if plan.cgroup_pids {
        v.push(Controller::Pids);
    }
    if plan.cgroup_cpu {
        v.push(Controller::Cpu);
    }
    if !v.is_empty() {
        v.push(Controller::CpuAcct);
    }
    v
}

/// Everything before the fork, the fork, and the supervision loop.
fn supervise(
    spec: &RunSpec,
    reporter: &mut Reporter,
    marks: &mut Marks,
    origin: Origin,
) -> Result<WaitStatus, SetupFailure> {
    let policy = &spec.policy;
    let plan = &spec.layers;
    let threads = match origin {
        Origin::Exec => sys::thread_count(),
        Origin::ForkServer => Ok(1),
    };
    match threads {
        Ok(1) => {}
        Ok(n) => {
            return Err(SetupFailure::msg(
                Step::ReadSpec,
                format!(
                    "the helper has {n} threads; it must run before anything starts a thread (call plugd_sandbox::run_helper_if_requested first in main)"
                ),
            ));
        }
        Err(e) => {
            return Err(SetupFailure::io(
                Step::ReadSpec,
                "counting threads in /proc/self/task",
                &e,
            ));
        }
    }
    let me = sys::getpid();
    marks.mark("helper: thread check");

    // Cgroup first: joined before the fork, so the plugin starts inside.
    let wanted = wanted_controllers(plan);
    let cgroup = if wanted.is_empty() {
        SandboxCgroup::default()
    } else {
        let (cg, skipped) = SandboxCgroup::create(
            &spec.cgroups,
            &format!("{}{me}", cgroups::PREFIX),
            &policy.limits,
            &wanted,
        );
        for (layer, reason) in skipped {
            if policy.require_full_isolation && policy.is_confined() {
                cg.remove();
                return Err(SetupFailure::msg(
                    Step::Cgroup,
                    format!("{layer} unavailable and full isolation is required: {reason}"),
                ));
            }
            reporter.send(&Report::Skipped { layer, reason });
        }
        cg
    };
    let join = match cgroup.open_for_child() {
        Ok(j) => j,
        Err(e) => {
            cgroup.remove();
            return Err(SetupFailure::io(
                Step::Cgroup,
                "preparing to join the sandbox cgroup",
                &e,
            ));
        }
    };
    let coverage = CgroupCoverage {
        memory: cgroup.has(Controller::Memory),
        pids: cgroup.has(Controller::Pids),
    };
    marks.mark("helper: cgroup created");
    let result = fork_and_wait(spec, reporter, coverage, join, marks);
    // Teardown, whatever happened. With a pid namespace nothing can be left:
    // the kernel killed and reaped the namespace when its pid 1 died.
    if !plan.pid_ns {
        cgroup.kill_all();
        kill_adopted_descendants();
    }
    let stats = cgroup.stats();
    marks.mark("helper: accounting read");
    reap_leftovers(Duration::from_millis(200));
    cgroup.remove();
    marks.mark("helper: torn down");

    let (status, started, timed_out, usage) = result?;
    let usage = if usage.cpu.is_zero() {
        sys::children_usage()
    } else {
        usage
    };
    let all = sys::children_usage();
    let (peak, source) = match stats.peak_memory {
        Some(p) => (Some(p), "cgroup"),
        None => (Some(all.max_rss_bytes.max(usage.max_rss_bytes)), "rusage"),
    };
    let cpu_time = stats.cpu.unwrap_or(all.cpu.max(usage.cpu));
    let outcome = Outcome {
        reason: end_reason(
            status,
            &stats,
            timed_out,
            cpu_time,
            spec.policy.limits.cpu_time,
        ),
        exit_code: match status {
            WaitStatus::Exited(c) => Some(c),
            WaitStatus::Signaled(_) => None,
        },
        signal: match status {
            WaitStatus::Signaled(s) => Some(s),
            WaitStatus::Exited(_) => None,
        },
        cpu_time,
        peak_memory_bytes: peak,
        peak_memory_source: source.to_string(),
        wall_time: started.elapsed(),
        pids_limit_hit: stats.pids_max_hit,
    };
    if let Some(marks) = marks.take() {
        reporter.send(&Report::Timings { marks });
    }
    reporter.send(&Report::Finished(outcome));
    Ok(status)
}

/// Why the plugin ended, preferring the limit that fired over the raw status.
///
/// CPU time needs care: the kernel sends SIGXCPU at the soft limit, but the
/// plugin is pid 1 of its namespace, and pid 1 ignores signals it has no
/// handler for — so it usually dies of the SIGKILL at the hard limit (one
/// second later). Either signal with the CPU time at or past the soft limit
/// means "cpu".
fn end_reason(
    status: WaitStatus,
    stats: &cgroups::CgroupStats,
    timed_out: bool,
    cpu: Duration,
    cpu_limit: Duration,
) -> EndReason {
    let killed = status == WaitStatus::Signaled(libc::SIGKILL);
    if killed && stats.oom_kills > 0 {
        EndReason::Memory
    } else if stats.pids_max_hit && status != WaitStatus::Exited(0) {
        EndReason::Pids
    } else if timed_out {
        EndReason::Timeout
    } else if (killed || status == WaitStatus::Signaled(libc::SIGXCPU)) && cpu >= cpu_limit {
        EndReason::CpuTime
    } else {
        match status {
            WaitStatus::Signaled(libc::SIGXCPU) => EndReason::CpuTime,
            WaitStatus::Signaled(signal) => EndReason::Signal { signal },
            WaitStatus::Exited(code) => EndReason::Exit { code },
        }
    }
}

fn reap_leftovers(max: Duration) {
    let until = Instant::now() + max;
    while has_children() && Instant::now() < until {
        match sys::reap_any() {
            Ok(Some(_)) => {}
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => return,
        }
    }
    while let Ok(Some(_)) = sys::reap_any() {}
}

/// Kills what a plugin without a pid namespace left running, even without
/// cgroups: the helper is a child subreaper, so every orphaned descendant
/// becomes its child; killing its children until none is left reaches them
/// all, whatever sessions or process groups they moved to.
fn kill_adopted_descendants() {
    let me = std::process::id();
    for _ in 0..100 {
        let children =
            std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        let pids: Vec<i32> = children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        while let Ok(Some(_)) = sys::reap_any() {}
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn has_children() -> bool {
    let me = std::process::id();
    std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
}

type Waited = (WaitStatus, Instant, bool, sys::Usage);

fn fork_and_wait(
    spec: &RunSpec,
    reporter: &mut Reporter,
    coverage: CgroupCoverage,
    join: cgroups::ChildJoin,
    marks: &mut Marks,
) -> Result<Waited, SetupFailure> {
    let plan = &spec.layers;
    let policy = &spec.policy;
    if !plan.pid_ns {
        // Without a pid namespace, orphans would go to the host's init:
        // keep them here to reap, account for and kill them.
        sys::become_subreaper()
            .map_err(|e| SetupFailure::io(Step::Fork, "PR_SET_CHILD_SUBREAPER", &e))?;
    }
    let netns =
        match spec.netns_fd {
            Some(fd) => Some(sys::adopt_inherited_fd(fd).map_err(|e| {
                SetupFailure::io(Step::Namespaces, "the pooled network namespace", &e)
            })?),
            None => None,
        };
    namespaces::enter(
        &LinuxSys,
        plan,
        sys::euid(),
        sys::egid(),
        netns.as_ref().map(|f| f.as_fd()),
    )?;
    drop(netns);
    marks.mark("helper: namespaces");
    let mask = sys::block_signals(&HANDLED)
        .map_err(|e| SetupFailure::io(Step::Fork, "blocking signals", &e))?;
    let (err_r, err_w) =
        sys::pipe().map_err(|e| SetupFailure::io(Step::Fork, "creating the error pipe", &e))?;
    let (alive_r, alive_w) =
        sys::pipe().map_err(|e| SetupFailure::io(Step::Fork, "creating the liveness pipe", &e))?;

    // SAFETY (both calls): `supervise` checked that this process has exactly
    // one thread, and nothing since has started one. The child of
    // `fork_into_cgroup` only runs `child_main`, which makes system calls,
    // allocates and ends in execve or _exit (no raise/abort/pthread calls).
    let (forked, born_in_v2) = match &join.v2_dir {
        Some(dir) => match unsafe { sys::fork_into_cgroup(dir.as_fd()) } {
            Ok(f) => (f, true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG)
                ) =>
            {
                (
                    unsafe { sys::fork() }.map_err(|e| SetupFailure::io(Step::Fork, "fork", &e))?,
                    false,
                )
            }
            Err(e) => {
                return Err(SetupFailure::io(
                    Step::Fork,
                    "clone3 into the sandbox cgroup",
                    &e,
                ));
            }
        },
        None => (
            unsafe { sys::fork() }.map_err(|e| SetupFailure::io(Step::Fork, "fork", &e))?,
            false,
        ),
    };
    let child = match forked {
        Forked::Child => {
            drop(err_r);
            drop(alive_w);
            let child_marks = Marks::new(spec.trace);
            let report = reporter.0.as_ref().map(|f| f.as_fd());
            let ctx = ChildCtx {
                coverage,
                join: &join,
                born_in_v2,
                alive_r,
                mask,
                report,
                marks: child_marks,
            };
            child_main(spec, ctx, err_w)
        }
        Forked::Parent(pid) => pid,
    };
    marks.mark("helper: forked");
    drop(join);
    drop(err_w);
    drop(alive_r);
    let started = Instant::now();

    // EOF without data = the exec succeeded (the pipe is close-on-exec).
    let mut buf = Vec::new();
    let _ = std::fs::File::from(err_r)
        .take(message::MAX_LINE as u64)
        .read_to_end(&mut buf);
    if !buf.is_empty() {
        let _ = sys::wait_pid(child);
        drop(alive_w);
        let failure = serde_json::from_slice::<SetupFailure>(&buf).unwrap_or_else(|e| {
            SetupFailure::msg(
                Step::Exec,
                format!("the sandboxed child reported an unreadable error: {e}"),
            )
        });
        return Err(failure);
    }
    marks.mark("helper: plugin exec'd (error pipe closed)");
    reporter.send(&Report::Started { pid: child as u32 });

    let kill_tree = |sig: i32| {
        if plan.pid_ns {
            // Pid 1 dying takes the whole namespace with it.
            let _ = sys::kill(child, sig);
        } else {
            let _ = sys::kill(-child, sig);
            let _ = sys::kill(child, sig);
        }
    };
    let deadline = policy.limits.wall_timeout.map(|t| started + t);
    let mut escalate_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut forwarded = 0u32;
    let (status, usage) = loop {
        let mut done = None;
        loop {
            match sys::reap_any() {
                Ok(Some((pid, ws, ru))) if pid == child => {
                    done = Some((ws, ru));
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    return Err(SetupFailure::io(
                        Step::Supervise,
                        "waiting for the plugin",
                        &e,
                    ));
                }
            }
        }
        if let Some(d) = done {
            marks.mark("helper: plugin reaped");
            break d;
        }
        let now = Instant::now();
        if let Some(d) = deadline
            && now >= d
            && !timed_out
        {
            timed_out = true;
            kill_tree(libc::SIGKILL);
        }
        if let Some(at) = escalate_at
            && now >= at
        {
            kill_tree(libc::SIGKILL);
            escalate_at = None;
        }
        let next = [deadline.filter(|_| !timed_out), escalate_at]
            .into_iter()
            .flatten()
            .map(|t| t.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match sys::wait_signal(&HANDLED, next) {
            Ok(Some(libc::SIGCHLD)) | Ok(None) => {}
            Ok(Some(sig)) => {
                forwarded += 1;
                if forwarded == 1 {
                    kill_tree(sig);
                    escalate_at = Some(Instant::now() + policy.kill_grace);
                } else {
                    kill_tree(libc::SIGKILL);
                }
            }
            Err(e) => return Err(SetupFailure::io(Step::Supervise, "waiting for signals", &e)),
        }
    };
    if !plan.pid_ns {
        // The plugin's own process group may outlive it; a cgroup kill
        // follows for anything that left the group.
        let _ = sys::kill(-child, libc::SIGKILL);
    }
    drop(alive_w);
    Ok((status, started, timed_out, usage))
}

/// What the forked child inherits from the helper besides the spec.
struct ChildCtx<'a> {
    coverage: CgroupCoverage,
    join: &'a cgroups::ChildJoin,
    born_in_v2: bool,
    alive_r: OwnedFd,
    mask: sys::SigMask,
    /// The helper's report pipe (close-on-exec), for step timestamps only.
    report: Option<BorrowedFd<'a>>,
    marks: Marks,
}

/// The forked child: set up and exec, or report why not. Never returns.
fn child_main(spec: &RunSpec, mut ctx: ChildCtx<'_>, err_w: OwnedFd) -> ! {
    let failure = match child_setup(spec, &mut ctx) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let mut f = std::fs::File::from(err_w);
    let _ = f.write_all(&serde_json::to_vec(&failure).unwrap_or_default());
    sys::exit_now(SETUP_FAILED_EXIT)
}

fn guard_parent(alive_r: &OwnedFd) -> Result<(), SetupFailure> {
    sys::kill_on_parent_death()
        .map_err(|e| SetupFailure::io(Step::Fork, "PR_SET_PDEATHSIG", &e))?;
    // The helper may have died before the line above took effect.
    if sys::peer_closed(alive_r.as_fd()) {
        sys::exit_now(SETUP_FAILED_EXIT);
    }
    Ok(())
}

enum Never {}

fn child_setup(spec: &RunSpec, ctx: &mut ChildCtx<'_>) -> Result<Never, SetupFailure> {
    let sys: &dyn Sys = &LinuxSys;
    let policy = &spec.policy;
    let plan = &spec.layers;
    let alive_r = &ctx.alive_r;
    let marks = &mut ctx.marks;
    marks.mark("child: running");
    guard_parent(alive_r)?;
    cgroups::join_self(ctx.join, ctx.born_in_v2)
        .map_err(|e| SetupFailure::io(Step::Cgroup, "joining the sandbox cgroup", &e))?;
    sys::setsid().map_err(|e| SetupFailure::io(Step::Fork, "setsid", &e))?;
    marks.mark("child: cgroup joined, setsid");
    // The template clone is made while still in the server's (the host's)
    // mount namespace: a detached tree may only be cloned from there.
    let template = match spec.root_template_fd {
        Some(fd) if plan.minimal_root => {
            let shared = sys::adopt_inherited_fd(fd).map_err(|e| {
                SetupFailure::io(Step::Mounts, "the fork server's root template", &e)
            })?;
            // Should a kernel refuse the clone, the root is built per spawn:
            // the same tree, only slower.
            sys::clone_mount(shared.as_fd(), true).ok()
        }
        _ => None,
    };
    namespaces::enter_mount_ns(sys, plan)?;
    marks.mark("child: mount namespace");

    if plan.minimal_root {
        mounts::build_minimal_root(
            sys,
            policy,
            &RootOptions {
                switch_user: plan.switch_user,
                pid_ns: plan.pid_ns,
            },
            template.as_ref(),
        )?;
        drop(template);
    } else if plan.mount_ns {
        mounts::build_host_view(sys, policy)?;
    }
    marks.mark("child: root built");
    if plan.switch_user
        && !plan.minimal_root
        && let Some(work) = &policy.work_dir
    {
        // The minimal root hands the work dir over while mounting it;
        // without one, the sandbox user still needs to own it.
        sys.chown(work, policy.uid, policy.gid).map_err(|e| {
            SetupFailure::io(
                Step::Mounts,
                format!("giving work dir {} to uid {}", work.display(), policy.uid),
                &e,
            )
        })?;
    }
    namespaces::configure_inside(sys, plan, policy)?;
    marks.mark("child: hostname, loopback");

    let any_landlock = plan.landlock_fs || plan.landlock_net || plan.landlock_scopes;
    let ruleset = if any_landlock {
        Some(landlock::prepare(policy, plan, plan.minimal_root)?)
    } else {
        None
    };
    marks.mark("child: landlock prepared");
    let filter = match (&spec.seccomp, plan.seccomp) {
        (Some(insns), true) => Some(seccomp::from_wire(insns)),
        (None, true) => Some(seccomp::build()?),
        (_, false) => None,
    };
    marks.mark("child: seccomp program ready");
    rlimits::apply(sys, &policy.limits, ctx.coverage)?;
    marks.mark("child: rlimits");
    caps::drop_privileges(sys, plan, policy)?;
    if plan.switch_user {
        // Changing credentials cleared PR_SET_PDEATHSIG.
        guard_parent(alive_r)?;
    }

    marks.mark("child: privileges dropped");
    let remap = (!plan.mount_ns).then(|| Remap::new(policy));
    let env = build_env(spec, remap.as_ref());
    let cwd = remap
        .as_ref()
        .map_or(spec.target.cwd.clone(), |r| r.path(&spec.target.cwd));
    sys.chdir(&cwd).map_err(|e| {
        SetupFailure::io(
            Step::Chdir,
            format!("entering working directory {}", cwd.display()),
            &e,
        )
    })?;
    let program = resolve_program(&spec.target.program, &env, remap.as_ref())?;
    let argv = std::iter::once(spec.target.program.to_string_lossy().into_owned())
        .chain(
            spec.target
                .args
                .iter()
                .map(|a| remap.as_ref().map_or(a.clone(), |r| r.arg(a))),
        )
        .map(|a| sys::cstring(&a).map_err(|e| SetupFailure::io(Step::Exec, "argument", &e)))
        .collect::<Result<Vec<CString>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| {
            sys::cstring(format!("{k}={v}"))
                .map_err(|e| SetupFailure::io(Step::Exec, format!("environment variable {k}"), &e))
        })
        .collect::<Result<Vec<CString>, _>>()?;

    marks.mark("child: chdir, argv, env");
    if policy.is_confined() {
        // Landlock and seccomp both need it; set even where capabilities
        // could not be dropped.
        sys.set_no_new_privs()
            .map_err(|e| SetupFailure::io(Step::NoNewPrivs, "prctl(PR_SET_NO_NEW_PRIVS)", &e))?;
    }
    if let Some(rs) = ruleset
        && let Some(note) = landlock::enforce(rs)?
    {
        // No channel to the host from here but stderr, which is the
        // plugin's log stream: a one-line note there is the honest place.
        let _ = writeln!(std::io::stderr(), "plugd sandbox: {note}");
    }
    marks.mark("child: landlock enforced");
    sys::set_default_disposition(libc::SIGPIPE)
        .map_err(|e| SetupFailure::io(Step::Exec, "resetting SIGPIPE", &e))?;
    sys::cloexec_from_3().map_err(|e| SetupFailure::io(Step::Exec, "close_range", &e))?;
    if let Some(f) = &filter {
        seccomp::apply(f)?;
    }
    marks.mark("child: seccomp loaded");
    if let (Some(fd), Some(marks)) = (ctx.report, marks.take()) {
        // One line below PIPE_BUF is one atomic write, so it cannot
        // interleave with the helper's own reports.
        let _ = rustix::io::write(fd, &message::encode_line(&Report::Timings { marks }));
    }
    sys::restore_signal_mask(&ctx.mask)
        .map_err(|e| SetupFailure::io(Step::Exec, "restoring the signal mask", &e))?;
    let e = sys::execve(&program, &argv, &envp);
    Err(SetupFailure::io(
        Step::Exec,
        format!("executing {}", program.display()),
        &e,
    ))
}

/// The plugin's environment: exactly the target's, plus `HOME`, `PATH` and
/// `TMPDIR` defaults for the view it runs in.
fn build_env(spec: &RunSpec, remap: Option<&Remap>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .target
        .env
        .iter()
        .filter(|(k, _)| !k.is_empty() && !k.contains('='))
        .map(|(k, v)| (k.clone(), remap.map_or(v.clone(), |r| r.env_value(v))))
        .collect();
    let has = |env: &[(String, String)], k: &str| env.iter().any(|(x, _)| x == k);
    let policy: &Policy = &spec.policy;
    if !has(&env, "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    if !has(&env, "HOME") {
        let home = if policy.work_dir.is_some() {
            WORK_MOUNT
        } else {
            "/"
        };
        env.push((
            "HOME".into(),
            remap.map_or(home.to_string(), |r| r.arg(home)),
        ));
    }
    if !has(&env, "TMPDIR") && policy.is_confined() {
        let tmp = if spec.layers.minimal_root {
            "/tmp".to_string()
        } else {
            remap.map_or("/tmp".to_string(), |r| r.arg(WORK_MOUNT))
        };
        env.push(("TMPDIR".into(), tmp));
    }
    env
}

/// A program with a `/` is used as given; a bare name is searched in `PATH`.
fn resolve_program(
    program: &Path,
    env: &[(String, String)],
    remap: Option<&Remap>,
) -> Result<PathBuf, SetupFailure> {
    use std::os::unix::fs::PermissionsExt;
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Ok(remap.map_or(program.to_path_buf(), |r| r.path(program)));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("", |(_, v)| v.as_str());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(m) = std::fs::metadata(&candidate)
            && m.is_file()
            && m.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(SetupFailure {
        step: Step::Exec,
        detail: format!(
            "{} not found in PATH {path:?} inside the sandbox",
            program.display()
        ),
        errno: Some(libc::ENOENT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Target;
    use crate::policy::Bind;

    fn spec(minimal_root: bool) -> RunSpec {
        let mut policy = Policy::sandboxed();
        policy.binds.push(Bind::read_only("/store/p", "/plugin"));
        policy.work_dir = Some(PathBuf::from("/store/w"));
        RunSpec {
            policy,
            target: Target::new("/plugin/run")
                .env("PYTHONPATH", "/plugin/lib:/x")
                .env("A", "1"),
            layers: LayerPlan {
                minimal_root,
                mount_ns: minimal_root,
                ..Default::default()
            },
            report_fd: 3,
            cgroups: Vec::new(),
            seccomp: None,
            trace: false,
            netns_fd: None,
            root_template_fd: None,
        }
    }

    #[test]
    fn env_defaults_inside_the_sandbox() {
        let env = build_env(&spec(true), None);
        assert!(env.contains(&("HOME".into(), "/work".into())));
        assert!(env.contains(&("TMPDIR".into(), "/tmp".into())));
        assert!(env.contains(&("PYTHONPATH".into(), "/plugin/lib:/x".into())));
        assert!(env.iter().any(|(k, _)| k == "PATH"));
    }

    #[test]
    fn env_is_remapped_without_a_mount_namespace() {
        let s = spec(false);
        let r = Remap::new(&s.policy);
        let env = build_env(&s, Some(&r));
        assert!(env.contains(&("HOME".into(), "/store/w".into())));
        assert!(env.contains(&("TMPDIR".into(), "/store/w".into())));
        assert!(env.contains(&("PYTHONPATH".into(), "/store/p/lib:/x".into())));
        assert_eq!(
            resolve_program(Path::new("/plugin/run"), &env, Some(&r)).unwrap(),
            PathBuf::from("/store/p/run")
        );
    }

    #[test]
    fn bare_program_names_are_searched_in_path() {
        let env = vec![("PATH".to_string(), "/nonexistent:/usr/bin:/bin".to_string())];
        let p = resolve_program(Path::new("env"), &env, None).unwrap();
        assert!(p.ends_with("env"));
        let err = resolve_program(Path::new("no-such-program-xyz"), &env, None).unwrap_err();
        assert_eq!(err.step, Step::Exec);
        assert!(err.detail.contains("not found in PATH"));
    }

    #[test]
    fn end_reasons_prefer_the_limit_that_fired() {
        let mut st = cgroups::CgroupStats::default();
        let (low, limit, high) = (
            Duration::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        let r = |status, st: &cgroups::CgroupStats, timed_out, cpu| {
            end_reason(status, st, timed_out, cpu, limit)
        };
        assert_eq!(
            r(WaitStatus::Exited(2), &st, false, low),
            EndReason::Exit { code: 2 }
        );
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGKILL), &st, true, low),
            EndReason::Timeout
        );
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGXCPU), &st, false, limit),
            EndReason::CpuTime
        );
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGKILL), &st, false, high),
            EndReason::CpuTime
        );
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGKILL), &st, false, low),
            EndReason::Signal { signal: 9 }
        );
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGSEGV), &st, false, low),
            EndReason::Signal { signal: 11 }
        );
        st.pids_max_hit = true;
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGKILL), &st, true, low),
            EndReason::Pids
        );
        assert_eq!(
            r(WaitStatus::Exited(0), &st, false, low),
            EndReason::Exit { code: 0 }
        );
        st.oom_kills = 1;
        assert_eq!(
            r(WaitStatus::Signaled(libc::SIGKILL), &st, false, low),
            EndReason::Memory
        );
    }
}
