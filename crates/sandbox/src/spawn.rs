//! The host side: planning a spawn from a policy and the probe, building the
//! helper command, and reading the helper's reports.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::message::{
    InitRequest, Layer, LayerPlan, LayerStatus, Outcome, Report, ReportError, ReportReader,
    RunSpec, SPEC_ENV, SetupFailure, Target,
};
use crate::policy::{Network, Policy, PolicyError};
use crate::trace::StepMark;
use crate::{cgroups, init, sys};

/// `argv[1]` that selects the helper mode.
pub const HELPER_ARG: &str = "__sandbox-init";

/// Runs the helper and never returns if this process was started as one
/// (`argv[1] == "__sandbox-init"`); returns immediately otherwise.
///
/// Call it first thing in `main` of every binary that spawns sandboxed
/// plugins, before a tokio runtime, a logger or any thread is started (the
/// helper refuses to run with more than one thread):
///
/// ```no_run
/// // First line of `main`:
/// plugd_sandbox::run_helper_if_requested();
/// // … normal start-up …
/// ```
pub fn run_helper_if_requested() {
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new(HELPER_ARG)) {
        init::init_main()
    }
}

/// The binary that runs the helper mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    program: PathBuf,
    leading_args: Vec<OsString>,
}

impl Helper {
    /// The running executable (the `plugd` binary re-executing itself).
    pub fn current_exe() -> io::Result<Helper> {
        Ok(Helper::at(std::env::current_exe()?))
    }

    /// A specific binary whose `main` calls [`run_helper_if_requested`].
    pub fn at(program: impl Into<PathBuf>) -> Helper {
        Helper {
            program: program.into(),
            leading_args: Vec::new(),
        }
    }

    /// The helper's path.
    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.leading_args).arg(HELPER_ARG).env_clear();
        c
    }
}

/// Probing failed: the helper could not be run or answered nonsense.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The helper binary could not be started.
    #[error("could not start the sandbox helper {program}: {source}")]
    Spawn {
        /// Helper path.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The helper ran but failed.
    #[error(
        "the sandbox helper {program} failed to probe ({status}): {stderr}; check that it calls plugd_sandbox::run_helper_if_requested() first in main"
    )]
    Failed {
        /// Helper path.
        program: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr (truncated).
        stderr: String,
    },
    /// The helper's answer was not a layer list.
    #[error("the sandbox helper {program} printed an unreadable probe result: {source}")]
    Output {
        /// Helper path.
        program: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Checks every layer on this machine (for `plugd doctor`). Blocks for a few
/// milliseconds while the helper runs its checks.
pub fn probe(helper: &Helper) -> Result<Vec<LayerStatus>, ProbeError> {
    let mut cmd = helper.command();
    cmd.env(
        SPEC_ENV,
        serde_json::to_string(&InitRequest::Probe).expect("serialisable"),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = cmd.output().map_err(|source| ProbeError::Spawn {
        program: helper.program.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(ProbeError::Failed {
            program: helper.program.clone(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(2000)
                .collect(),
        });
    }
    let mut statuses: Vec<LayerStatus> =
        serde_json::from_slice(&out.stdout).map_err(|source| ProbeError::Output {
            program: helper.program.clone(),
            source,
        })?;
    // A layer the helper did not mention is not assumed to work.
    for layer in Layer::ALL {
        if !statuses.iter().any(|s| s.layer == layer) {
            statuses.push(LayerStatus {
                layer,
                active: false,
                detail: "not reported by the helper (version mismatch?)".into(),
            });
        }
    }
    statuses.sort_by_key(|s| Layer::ALL.iter().position(|l| *l == s.layer));
    Ok(statuses)
}

/// A spawn was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A required layer is missing and the policy demands full isolation.
    #[error("refusing to start a {trust} plugin without full isolation (the operator requires it); unavailable here: {}", list(.missing))]
    IncompleteIsolation {
        /// The policy's trust level.
        trust: crate::TrustLevel,
        /// The missing layers and why.
        missing: Vec<LayerStatus>,
    },
    /// Preparing the command failed.
    #[error("preparing the sandboxed command failed while {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The spec could not be encoded (a path is not UTF-8).
    #[error("the sandbox request cannot be encoded (every path must be valid UTF-8): {0}")]
    Encode(#[from] serde_json::Error),
    /// The fork server could not start the plugin.
    #[error(transparent)]
    ForkServer(crate::ForkServerError),
}

fn list(missing: &[LayerStatus]) -> String {
    missing
        .iter()
        .map(|s| format!("{} ({})", s.layer, s.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Logs a missing layer once per process.
fn warn_once(status: &LayerStatus) {
    static WARNED: Mutex<Option<HashSet<Layer>>> = Mutex::new(None);
    let mut guard = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if guard.get_or_insert_with(HashSet::new).insert(status.layer) {
        tracing::warn!(
            layer = %status.layer,
            reason = %status.detail,
            "sandbox layer unavailable on this machine; plugins run with the remaining layers"
        );
    }
}

/// The sandbox: a helper binary plus what this machine supports.
///
/// Create one per process ([`Sandbox::new`] probes once) and share it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: Helper,
    layers: Vec<LayerStatus>,
    root: bool,
    cgroups: Vec<cgroups::Hierarchy>,
}

/// A compiled seccomp program, as sent to the helper.
type WireProgram = Vec<(u16, u8, u8, u32)>;

/// The seccomp program, compiled once per process.
fn compiled_seccomp() -> Result<WireProgram, SpawnError> {
    static PROG: std::sync::OnceLock<Result<WireProgram, String>> = std::sync::OnceLock::new();
    PROG.get_or_init(|| {
        crate::seccomp::build()
            .map(|p| crate::seccomp::to_wire(&p))
            .map_err(|f| f.detail)
    })
    .clone()
    .map_err(|detail| SpawnError::Io {
        what: "compiling the seccomp filter",
        source: io::Error::other(detail),
    })
}

impl Sandbox {
    /// Probes this machine with `helper` and removes cgroups left behind by
    /// helpers that were killed.
    ///
    /// Blocks while the helper runs its checks (a few milliseconds here):
    /// call it once at start-up, or inside `spawn_blocking`.
    pub fn new(helper: Helper) -> Result<Sandbox, ProbeError> {
        let layers = probe(&helper)?;
        let sandbox = Sandbox::with_layers(helper, layers);
        cgroups::sweep_stale(&sandbox.cgroups);
        Ok(sandbox)
    }

    /// A sandbox with a known layer list (a cached probe, or a test that
    /// simulates a machine without some layers).
    pub fn with_layers(helper: Helper, layers: Vec<LayerStatus>) -> Sandbox {
        Sandbox {
            helper,
            layers,
            root: sys::euid() == 0,
            cgroups: cgroups::discover(),
        }
    }

    /// The helper binary this sandbox re-executes.
    pub fn helper(&self) -> &Helper {
        &self.helper
    }

    /// What the probe found, in `doctor` order.
    pub fn layers(&self) -> &[LayerStatus] {
        &self.layers
    }

    fn status(&self, layer: Layer) -> LayerStatus {
        self.layers
            .iter()
            .find(|s| s.layer == layer)
            .cloned()
            .unwrap_or(LayerStatus {
                layer,
                active: false,
                detail: "not probed".into(),
            })
    }

    /// Decides which layers a spawn with `policy` gets here, and which of
    /// those it should have are missing. Missing layers are logged once per
    /// process, or refused when the policy requires full isolation.
    pub fn plan(&self, policy: &Policy) -> Result<(LayerPlan, Vec<LayerStatus>), SpawnError> {
        policy.validate()?;
        let active = |l: Layer| self.status(l).active;
        let ns_ok = self.root || active(Layer::User);
        let mut p = LayerPlan {
            cgroup_memory: active(Layer::CgroupMemory),
            cgroup_pids: active(Layer::CgroupPids),
            cgroup_cpu: policy.limits.cpu_cores.is_some() && active(Layer::CgroupCpu),
            ..Default::default()
        };
        let mut required = vec![
            Layer::CgroupMemory,
            Layer::CgroupPids,
            Layer::Rlimits,
            Layer::Timeout,
        ];
        if policy.limits.cpu_cores.is_some() {
            required.push(Layer::CgroupCpu);
        }
        if policy.is_confined() {
            p.user_ns = !self.root && active(Layer::User);
            p.mount_ns = ns_ok && active(Layer::MountNamespace);
            p.minimal_root = p.mount_ns && active(Layer::MinimalRoot);
            p.pid_ns = ns_ok && active(Layer::PidNamespace);
            p.net_ns = ns_ok && policy.network != Network::Host && active(Layer::NetNamespace);
            p.ipc_ns = ns_ok && active(Layer::IpcNamespace);
            p.uts_ns = ns_ok && active(Layer::UtsNamespace);
            p.cgroup_ns = ns_ok && active(Layer::CgroupNamespace);
            p.switch_user = self.root;
            p.drop_caps = active(Layer::Capabilities);
            p.landlock_fs = active(Layer::LandlockFs);
            p.landlock_net = policy.network == Network::None && active(Layer::LandlockNet);
            p.landlock_scopes = active(Layer::LandlockScopes);
            p.seccomp = active(Layer::Seccomp);
            required.extend([
                Layer::User,
                Layer::MountNamespace,
                Layer::MinimalRoot,
                Layer::PidNamespace,
                Layer::IpcNamespace,
                Layer::UtsNamespace,
                Layer::CgroupNamespace,
                Layer::LandlockFs,
                Layer::LandlockScopes,
                Layer::Seccomp,
                Layer::Capabilities,
            ]);
            if policy.network != Network::Host {
                required.push(Layer::NetNamespace);
            }
            if policy.network == Network::None {
                required.push(Layer::LandlockNet);
            }
        } else {
            // Trusted: a plain child, except that /plugin and /work must
            // exist and an HTTP server needs its own port space.
            let needs_view =
                policy.work_dir.is_some() || policy.binds.iter().any(|b| b.source != b.target);
            p.mount_ns = needs_view && ns_ok && active(Layer::MountNamespace);
            p.net_ns =
                policy.network == Network::PrivateLoopback && ns_ok && active(Layer::NetNamespace);
            p.user_ns = !self.root && (p.mount_ns || p.net_ns);
            if needs_view {
                required.push(Layer::MountNamespace);
            }
            if policy.network == Network::PrivateLoopback {
                required.push(Layer::NetNamespace);
            }
        }
        let missing: Vec<LayerStatus> = required
            .into_iter()
            .map(|l| self.status(l))
            .filter(|s| !s.active)
            .collect();
        if !missing.is_empty() {
            if policy.require_full_isolation && policy.is_confined() {
                return Err(SpawnError::IncompleteIsolation {
                    trust: policy.trust,
                    missing,
                });
            }
            missing.iter().for_each(warn_once);
        }
        Ok((p, missing))
    }

    /// Builds the command that runs `target` confined by `policy`.
    ///
    /// Set stdio (and, if wanted, a process group) on
    /// [`SandboxCommand::command_mut`], then spawn with
    /// [`SandboxCommand::spawn_with`]; do not change its program, arguments
    /// or environment, which carry the request to the helper.
    pub fn command(&self, policy: &Policy, target: &Target) -> Result<SandboxCommand, SpawnError> {
        let (plan, _) = self.plan(policy)?;
        let io_err = |what| move |source| SpawnError::Io { what, source };
        let (read, write) = sys::pipe().map_err(io_err("creating the report pipe"))?;
        let write =
            sys::dup_above_stdio(write).map_err(io_err("moving the report pipe above stdio"))?;
        let request = InitRequest::Run(Box::new(RunSpec {
            policy: policy.clone(),
            target: target.clone(),
            layers: plan.clone(),
            report_fd: write.as_raw_fd(),
            cgroups: self.cgroups.clone(),
            seccomp: if plan.seccomp {
                Some(compiled_seccomp()?)
            } else {
                None
            },
            trace: crate::trace::requested(),
            netns_fd: None,
            root_template_fd: None,
        }));
        let request = serde_json::to_string(&request)?;
        let mut command = self.helper.command();
        command.env(SPEC_ENV, &request);
        sys::inherit_in_child(&mut command, write.as_raw_fd());
        Ok(SandboxCommand {
            command,
            request,
            report_read: read,
            report_write: write,
            plan,
        })
    }
}

/// A ready-to-spawn sandboxed command.
#[derive(Debug)]
pub struct SandboxCommand {
    command: Command,
    /// The JSON request, for the fork server.
    request: String,
    report_read: OwnedFd,
    report_write: OwnedFd,
    plan: LayerPlan,
}

impl SandboxCommand {
    /// The command, for stdio and process-group settings.
    pub fn command_mut(&mut self) -> &mut Command {
        &mut self.command
    }

    /// The layers this spawn gets.
    pub fn plan(&self) -> &LayerPlan {
        &self.plan
    }

    /// Spawns with `spawn` (e.g. `|c| tokio::process::Command::from(c).spawn()`)
    /// and returns the child with its [`Monitor`]. The host's copy of the
    /// report pipe is closed right after, so the monitor sees end-of-file
    /// exactly when the helper exits.
    pub fn spawn_with<C, E>(
        self,
        spawn: impl FnOnce(Command) -> Result<C, E>,
    ) -> Result<(C, Monitor), E> {
        let SandboxCommand {
            command,
            report_read,
            report_write,
            ..
        } = self;
        let child = spawn(command)?;
        drop(report_write);
        Ok((child, Monitor::from_report_pipe(report_read)))
    }

    /// The request and both ends of the report pipe, for the fork server.
    pub(crate) fn into_request(self) -> (String, OwnedFd, OwnedFd) {
        (self.request, self.report_read, self.report_write)
    }

    /// Spawns through `server` instead of re-executing the helper: the same
    /// confinement, without the cost of executing the helper binary. Stdio
    /// comes from `stdio`; settings made on [`Self::command_mut`] are not
    /// used. See [`crate::ForkServer`].
    pub fn spawn_in(
        self,
        server: &crate::ForkServer,
        stdio: crate::ServerStdio,
    ) -> Result<(crate::ServerChild, Monitor), crate::ForkServerError> {
        server.spawn(self, stdio)
    }

    /// Spawns with `std::process::Command::spawn`.
    pub fn spawn(self) -> io::Result<(std::process::Child, Monitor)> {
        self.spawn_with(|mut c| c.spawn())
    }
}

/// Why the monitor has no outcome.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The sandbox could not be set up; the plugin never ran.
    #[error(transparent)]
    Setup(#[from] SetupFailure),
    /// The report pipe carried something unreadable.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The helper exited without a final report.
    #[error(
        "the sandbox helper exited without reporting how the plugin ended (killed with SIGKILL?); no accounting is available"
    )]
    Vanished,
}

/// Reads one helper's reports: whether the plugin started, and its
/// accounting when it ended.
///
/// Reads block. Call [`Monitor::finish`] after the child (the helper) has
/// been waited for — the helper writes its last report before it exits, so
/// the read then returns at once. From async code, wrap calls in
/// `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct Monitor {
    reader: ReportReader<BufReader<std::fs::File>>,
    pid: Option<u32>,
    failure: Option<SetupFailure>,
    skipped: Vec<LayerStatus>,
    timings: Vec<StepMark>,
}

impl Monitor {
    pub(crate) fn from_report_pipe(fd: OwnedFd) -> Monitor {
        Monitor {
            reader: ReportReader::new(BufReader::new(std::fs::File::from(fd))),
            pid: None,
            failure: None,
            skipped: Vec::new(),
            timings: Vec::new(),
        }
    }

    fn next(&mut self) -> Result<Option<Report>, MonitorError> {
        loop {
            match self.reader.next_report()? {
                Some(Report::Skipped { layer, reason }) => {
                    let s = LayerStatus {
                        layer,
                        active: false,
                        detail: reason,
                    };
                    warn_once(&s);
                    self.skipped.push(s);
                }
                Some(Report::Timings { marks }) => {
                    // Bounded by the reader's message and line caps.
                    self.timings.extend(marks);
                }
                other => return Ok(other),
            }
        }
    }

    /// Blocks until the plugin was exec'd (returns its pid) or setup failed.
    pub fn wait_started(&mut self) -> Result<u32, MonitorError> {
        if let Some(pid) = self.pid {
            return Ok(pid);
        }
        if let Some(f) = &self.failure {
            return Err(MonitorError::Setup(f.clone()));
        }
        match self.next()? {
            Some(Report::Started { pid }) => {
                self.pid = Some(pid);
                Ok(pid)
            }
            Some(Report::SetupFailed(f)) => {
                self.failure = Some(f.clone());
                Err(MonitorError::Setup(f))
            }
            Some(Report::Finished(_)) => Err(MonitorError::Report(ReportError::OutOfOrder(
                "`finished` before `started`",
            ))),
            Some(Report::Skipped { .. } | Report::Timings { .. }) => {
                unreachable!("skipped and timings reports are consumed by next()")
            }
            None => Err(MonitorError::Vanished),
        }
    }

    /// Layers the helper had to skip at run time (cgroups it could not make).
    pub fn skipped(&self) -> &[LayerStatus] {
        &self.skipped
    }

    /// Step timestamps received so far (empty unless the host process has
    /// `PLUGD_SANDBOX_TRACE=1`; see [`crate::trace`]).
    pub fn timings(&self) -> &[StepMark] {
        &self.timings
    }

    /// [`Monitor::finish`], also returning every step timestamp the helper
    /// sent (the last ones arrive just before the accounting).
    pub fn finish_with_timings(mut self) -> (Result<Outcome, MonitorError>, Vec<StepMark>) {
        let result = self.finish_inner();
        (result, std::mem::take(&mut self.timings))
    }

    /// The accounting, once the helper has exited.
    pub fn finish(mut self) -> Result<Outcome, MonitorError> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<Outcome, MonitorError> {
        self.wait_started()?;
        match self.next()? {
            Some(Report::Finished(o)) => Ok(o),
            Some(Report::SetupFailed(f)) => Err(MonitorError::Setup(f)),
            Some(_) => Err(MonitorError::Report(ReportError::OutOfOrder(
                "expected `finished`",
            ))),
            None => Err(MonitorError::Vanished),
        }
    }
}

/// Asks a sandbox to stop: SIGTERM to the helper, which forwards it to the
/// plugin and kills everything after the policy's grace period. Prefer this
/// to killing the helper with SIGKILL, which leaves no accounting.
pub fn terminate(helper_pid: u32) -> io::Result<()> {
    let pid = i32::try_from(helper_pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {helper_pid}"))
        })?;
    sys::kill(pid, libc::SIGTERM)
}

/// Connects to `127.0.0.1:port` inside the private network of the sandbox
/// whose helper is `helper_pid` (an HTTP plugin with
/// [`Network::PrivateLoopback`]). The socket is created on a short-lived
/// thread that enters the sandbox's network namespace; the connection then
/// works from any thread. Needs root (`CAP_SYS_ADMIN`).
pub fn connect_loopback(helper_pid: u32, port: u16) -> io::Result<std::net::TcpStream> {
    std::thread::spawn(move || {
        sys::enter_netns_of(helper_pid)?;
        std::net::TcpStream::connect(("127.0.0.1", port))
    })
    .join()
    .map_err(|_| io::Error::other("the network-namespace thread panicked"))?
}
