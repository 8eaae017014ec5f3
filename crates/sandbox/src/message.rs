//! Typed messages between the host and the re-exec helper, and their framing.
//!
//! Host → helper: one `InitRequest` as JSON in the `PLUGD_SANDBOX_SPEC`
//! environment variable (the helper's environment is otherwise empty).
//!
//! Helper → host: [`Report`]s, one JSON object per line, on an inherited pipe
//! whose number is in the request. In order: any number of `skipped`, then
//! exactly one of `started` or `setup_failed`, then (after `started`) exactly
//! one `finished`; `timings` (only when tracing) may come anywhere before the
//! last message. The pipe closes when the helper exits.
//!
//! Helper child → helper parent: one [`SetupFailure`] on a close-on-exec pipe
//! that a successful `execve` closes empty — the way an exec failure reaches
//! the parent as data instead of as a mystery exit code.
//!
//! The reader ([`ReportReader`]) treats the pipe as untrusted input: lines are
//! capped at [`MAX_LINE`] bytes, messages at [`MAX_MESSAGES`], and anything
//! that does not parse or arrives out of order is an error naming what was
//! wrong.

use std::fmt;
use std::io::{self, BufRead, Read as _};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// Environment variable carrying the helper request (internal JSON).
pub const SPEC_ENV: &str = "PLUGD_SANDBOX_SPEC";
/// Longest report line the host accepts.
pub const MAX_LINE: usize = 64 * 1024;
/// Most report messages the host accepts from one helper.
pub const MAX_MESSAGES: usize = 256;

/// The program to run inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Program, as seen inside the sandbox (`/plugin/run.sh`,
    /// `/usr/bin/bash`); a bare name is looked up in the target's `PATH`.
    pub program: PathBuf,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    /// The complete environment (nothing of the host's leaks in). `HOME`,
    /// `TMPDIR` and `PATH` get sandbox defaults when absent.
    pub env: Vec<(String, String)>,
}

impl Target {
    /// `program` with no arguments, run in `/work`, with an empty environment.
    pub fn new(program: impl Into<PathBuf>) -> Target {
        Target {
            program: program.into(),
            args: Vec::new(),
            cwd: PathBuf::from(crate::policy::WORK_MOUNT),
            env: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Target {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Target
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the working directory (a sandbox path).
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Target {
        self.cwd = cwd.into();
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Target {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }
}

/// The layers the host decided to apply for one spawn, after weighing the
/// policy against what this machine supports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPlan {
    /// Create a user namespace (plugd is not root).
    pub user_ns: bool,
    /// Mount namespace.
    pub mount_ns: bool,
    /// Build a minimal root and `pivot_root` into it (needs `mount_ns`).
    pub minimal_root: bool,
    /// PID namespace (the plugin is pid 1).
    pub pid_ns: bool,
    /// Network namespace.
    pub net_ns: bool,
    /// IPC namespace.
    pub ipc_ns: bool,
    /// UTS namespace.
    pub uts_ns: bool,
    /// Cgroup namespace.
    pub cgroup_ns: bool,
    /// Switch to the policy's unprivileged uid/gid (plugd is root).
    pub switch_user: bool,
    /// Drop capabilities and set `no_new_privs`.
    pub drop_caps: bool,
    /// Landlock filesystem rules.
    pub landlock_fs: bool,
    /// Landlock TCP rules.
    pub landlock_net: bool,
    /// Landlock scopes (signals, abstract sockets).
    pub landlock_scopes: bool,
    /// Seccomp filter.
    pub seccomp: bool,
    /// Cgroup controllers to use.
    pub cgroup_memory: bool,
    /// Pids controller.
    pub cgroup_pids: bool,
    /// CPU controller.
    pub cgroup_cpu: bool,
}

/// Everything the helper needs for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunSpec {
    /// The policy (already validated by the host).
    pub policy: Policy,
    /// What to run.
    pub target: Target,
    /// Which layers to apply.
    pub layers: LayerPlan,
    /// The inherited report pipe's descriptor number.
    pub report_fd: i32,
    /// Cgroup hierarchies, discovered once by the host.
    pub cgroups: Vec<crate::cgroups::Hierarchy>,
    /// The seccomp program, compiled once by the host, as
    /// `(code, jt, jf, k)` instructions.
    pub seccomp: Option<Vec<(u16, u8, u8, u32)>>,
    /// Send step timestamps ([`crate::trace`]).
    #[serde(default)]
    pub trace: bool,
    /// An inherited descriptor of a fresh network namespace to enter instead
    /// of creating one. Set only by the fork server (its pool); requests from
    /// the host never carry one.
    #[serde(default)]
    pub netns_fd: Option<i32>,
    /// An inherited descriptor of the fork server's root template for this
    /// policy (see `template`), cloned instead of building the system part
    /// of the minimal root. Set only by the fork server.
    #[serde(default)]
    pub root_template_fd: Option<i32>,
}

fn yes() -> bool {
    true
}

/// What the host asks the helper to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub(crate) enum InitRequest {
    /// Run a plugin.
    Run(Box<RunSpec>),
    /// Probe the machine's layers and print them as JSON on stdout.
    Probe,
    /// Become a fork server on the inherited socket `socket_fd`.
    Serve {
        /// The inherited `SOCK_SEQPACKET` socket's descriptor number.
        socket_fd: i32,
        /// Keep root templates (see `template`); off only for comparisons.
        #[serde(default = "yes")]
        root_templates: bool,
    },
}

/// One confinement layer, as `plugd doctor` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// User namespace (when plugd is not root) or a dedicated uid (when it is).
    User,
    /// Mount namespace.
    MountNamespace,
    /// Minimal read-only root built with `pivot_root`.
    MinimalRoot,
    /// PID namespace.
    PidNamespace,
    /// Network namespace.
    NetNamespace,
    /// IPC namespace.
    IpcNamespace,
    /// UTS namespace.
    UtsNamespace,
    /// Cgroup namespace.
    CgroupNamespace,
    /// Landlock filesystem rules.
    LandlockFs,
    /// Landlock TCP bind/connect rules (ABI ≥ 4).
    LandlockNet,
    /// Landlock scopes: signals and abstract unix sockets (ABI ≥ 6).
    LandlockScopes,
    /// Seccomp system-call filter.
    Seccomp,
    /// Capabilities dropped and `no_new_privs`.
    Capabilities,
    /// Resource limits (`setrlimit`).
    Rlimits,
    /// Memory cgroup.
    CgroupMemory,
    /// Pids cgroup.
    CgroupPids,
    /// CPU cgroup.
    CgroupCpu,
    /// Wall-clock timeout.
    Timeout,
}

impl Layer {
    /// Every layer, in `doctor` order.
    pub const ALL: [Layer; 18] = [
        Layer::User,
        Layer::MountNamespace,
        Layer::MinimalRoot,
        Layer::PidNamespace,
        Layer::NetNamespace,
        Layer::IpcNamespace,
        Layer::UtsNamespace,
        Layer::CgroupNamespace,
        Layer::LandlockFs,
        Layer::LandlockNet,
        Layer::LandlockScopes,
        Layer::Seccomp,
        Layer::Capabilities,
        Layer::Rlimits,
        Layer::CgroupMemory,
        Layer::CgroupPids,
        Layer::CgroupCpu,
        Layer::Timeout,
    ];

    /// Short name for tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Layer::User => "user",
            Layer::MountNamespace => "mount-ns",
            Layer::MinimalRoot => "minimal-root",
            Layer::PidNamespace => "pid-ns",
            Layer::NetNamespace => "net-ns",
            Layer::IpcNamespace => "ipc-ns",
            Layer::UtsNamespace => "uts-ns",
            Layer::CgroupNamespace => "cgroup-ns",
            Layer::LandlockFs => "landlock-fs",
            Layer::LandlockNet => "landlock-net",
            Layer::LandlockScopes => "landlock-scopes",
            Layer::Seccomp => "seccomp",
            Layer::Capabilities => "capabilities",
            Layer::Rlimits => "rlimits",
            Layer::CgroupMemory => "cgroup-memory",
            Layer::CgroupPids => "cgroup-pids",
            Layer::CgroupCpu => "cgroup-cpu",
            Layer::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether one layer works on this machine, and why (not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStatus {
    /// The layer.
    pub layer: Layer,
    /// Usable here.
    pub active: bool,
    /// What was checked, or why it is unavailable and what would fix it.
    pub detail: String,
}

/// The setup step the helper was at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reading the request.
    ReadSpec,
    /// Creating or joining cgroups.
    Cgroup,
    /// Creating namespaces.
    Namespaces,
    /// Writing uid/gid maps.
    UidMap,
    /// Forking the plugin process.
    Fork,
    /// Building the minimal root.
    Mounts,
    /// `pivot_root` into it.
    PivotRoot,
    /// Setting the host name.
    Hostname,
    /// Bringing loopback up.
    Loopback,
    /// Setting rlimits.
    Rlimits,
    /// Building or applying Landlock rules.
    Landlock,
    /// Switching to the unprivileged user.
    Identity,
    /// Dropping capabilities.
    Capabilities,
    /// Setting `no_new_privs`.
    NoNewPrivs,
    /// Loading the seccomp filter.
    Seccomp,
    /// Changing to the working directory.
    Chdir,
    /// `execve` of the plugin.
    Exec,
    /// Supervising the running plugin.
    Supervise,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// Why the sandbox could not start the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("sandbox setup failed at step {step}: {detail}")]
pub struct SetupFailure {
    /// Where it failed.
    pub step: Step,
    /// What failed, with the path or value involved.
    pub detail: String,
    /// The OS error number, when there was one.
    pub errno: Option<i32>,
}

impl SetupFailure {
    /// Wraps an I/O error with its step and context.
    pub(crate) fn io(step: Step, context: impl fmt::Display, e: &io::Error) -> SetupFailure {
        SetupFailure {
            step,
            detail: format!("{context}: {e}"),
            errno: e.raw_os_error(),
        }
    }

    /// A failure without an OS error.
    pub(crate) fn msg(step: Step, detail: impl Into<String>) -> SetupFailure {
        SetupFailure {
            step,
            detail: detail.into(),
            errno: None,
        }
    }
}

/// Why a sandboxed process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndReason {
    /// It exited on its own.
    Exit {
        /// Exit code.
        code: i32,
    },
    /// A signal ended it (not one the sandbox sent for a limit).
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// The wall-clock timeout ran out and the sandbox killed it.
    Timeout,
    /// The memory limit was hit and the kernel's OOM killer ended it.
    Memory,
    /// It hit the process limit and then failed or was killed.
    Pids,
    /// It used up its CPU time (`SIGXCPU`/`SIGKILL` from `RLIMIT_CPU`).
    CpuTime,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Exit { code } => write!(f, "exit {code}"),
            EndReason::Signal { signal } => write!(f, "signal {signal}"),
            EndReason::Timeout => f.write_str("timeout"),
            EndReason::Memory => f.write_str("memory"),
            EndReason::Pids => f.write_str("pids"),
            EndReason::CpuTime => f.write_str("cpu"),
        }
    }
}

/// Accounting for one finished process, as the helper measured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Why it ended.
    pub reason: EndReason,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Signal, if one ended it.
    pub signal: Option<i32>,
    /// User + system CPU time of the plugin and its descendants.
    pub cpu_time: Duration,
    /// Peak memory in bytes, when measurable.
    pub peak_memory_bytes: Option<u64>,
    /// Where `peak_memory_bytes` comes from: `cgroup` (whole sandbox,
    /// including page cache and tmpfs) or `rusage` (largest single process's
    /// resident set).
    pub peak_memory_source: String,
    /// Wall-clock time from fork to exit.
    pub wall_time: Duration,
    /// The process limit was reached at some point.
    pub pids_limit_hit: bool,
}

/// One helper → host message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// A layer was skipped at run time (in addition to those the host already
    /// knew were unavailable).
    Skipped {
        /// The layer.
        layer: Layer,
        /// Why.
        reason: String,
    },
    /// The plugin was exec'd. Sent once, after any `skipped`.
    Started {
        /// The plugin's pid in plugd's pid namespace.
        pid: u32,
    },
    /// Setup failed; the plugin never ran. Last message.
    SetupFailed(SetupFailure),
    /// The plugin ended. Last message.
    Finished(Outcome),
    /// Step timestamps (only when the host set `PLUGD_SANDBOX_TRACE`); any
    /// number, anywhere before the last message.
    Timings {
        /// The marks, in the order they were taken.
        marks: Vec<crate::trace::StepMark>,
    },
}

/// Reads [`Report`]s from the helper, enforcing size and order.
pub struct ReportReader<R> {
    inner: R,
    count: usize,
    started: bool,
    done: bool,
}

/// The report pipe carried something the host cannot accept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Reading the pipe failed.
    #[error("reading the sandbox helper's report pipe failed: {0}")]
    Io(#[from] io::Error),
    /// A line exceeded [`MAX_LINE`].
    #[error(
        "sandbox helper sent a report line longer than {MAX_LINE} bytes; the helper binary may not match this plugd version"
    )]
    LineTooLong,
    /// More than [`MAX_MESSAGES`] messages.
    #[error("sandbox helper sent more than {MAX_MESSAGES} report messages")]
    TooManyMessages,
    /// A line was not a valid report.
    #[error("sandbox helper sent an unreadable report (message {index}): {source}")]
    Malformed {
        /// 1-based message number.
        index: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A message arrived where the protocol does not allow it.
    #[error("sandbox helper broke the report order: {0}")]
    OutOfOrder(&'static str),
}

impl<R> fmt::Debug for ReportReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportReader")
            .field("count", &self.count)
            .field("started", &self.started)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: BufRead> ReportReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        ReportReader {
            inner,
            count: 0,
            started: false,
            done: false,
        }
    }

    /// The next report, or `None` at end of stream.
    pub fn next_report(&mut self) -> Result<Option<Report>, ReportError> {
        let mut buf = Vec::new();
        // Read at most MAX_LINE + 1 bytes so an endless line cannot grow the
        // buffer without bound.
        let n = (&mut self.inner)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        // A shorter final line without a newline (the helper died mid-write)
        // is parsed as it is, and most likely rejected as malformed.
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            return Err(ReportError::LineTooLong);
        }
        self.count += 1;
        if self.count > MAX_MESSAGES {
            return Err(ReportError::TooManyMessages);
        }
        let report: Report =
            serde_json::from_slice(&buf).map_err(|source| ReportError::Malformed {
                index: self.count,
                source,
            })?;
        if self.done {
            return Err(ReportError::OutOfOrder("message after the final one"));
        }
        match &report {
            Report::Skipped { .. } if self.started => {
                return Err(ReportError::OutOfOrder("`skipped` after `started`"));
            }
            Report::Started { .. } if self.started => {
                return Err(ReportError::OutOfOrder("second `started`"));
            }
            Report::Started { .. } => self.started = true,
            Report::Finished(_) if !self.started => {
                return Err(ReportError::OutOfOrder("`finished` before `started`"));
            }
            Report::Finished(_) | Report::SetupFailed(_) => self.done = true,
            Report::Skipped { .. } | Report::Timings { .. } => {}
        }
        Ok(Some(report))
    }
}

/// Encodes one report as a line.
pub(crate) fn encode_line<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Result<Vec<Report>, ReportError> {
        let mut r = ReportReader::new(io::Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        while let Some(m) = r.next_report()? {
            out.push(m);
        }
        Ok(out)
    }

    fn outcome() -> Outcome {
        Outcome {
            reason: EndReason::Exit { code: 3 },
            exit_code: Some(3),
            signal: None,
            cpu_time: Duration::from_millis(12),
            peak_memory_bytes: Some(1 << 20),
            peak_memory_source: "cgroup".into(),
            wall_time: Duration::from_millis(40),
            pids_limit_hit: false,
        }
    }

    #[test]
    fn round_trip_in_order() {
        let mut bytes = Vec::new();
        for m in [
            Report::Skipped {
                layer: Layer::CgroupCpu,
                reason: "x".into(),
            },
            Report::Started { pid: 42 },
            Report::Finished(outcome()),
        ] {
            bytes.extend(encode_line(&m));
        }
        let got = read_all(&bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], Report::Started { pid: 42 });
        assert_eq!(got[2], Report::Finished(outcome()));
    }

    #[test]
    fn rejects_garbage_and_unknown_types() {
        for bad in [
            &b"not json\n"[..],
            b"{\"type\":\"explode\"}\n",
            b"{\"type\":\"started\",\"pid\":-1}\n",
            b"[]\n",
        ] {
            let err = read_all(bad).unwrap_err();
            assert!(
                matches!(err, ReportError::Malformed { index: 1, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn rejects_endless_line_without_reading_it_all() {
        let long = vec![b'a'; MAX_LINE * 3];
        let err = read_all(&long).unwrap_err();
        assert!(matches!(err, ReportError::LineTooLong), "{err}");
    }

    #[test]
    fn rejects_message_floods() {
        let mut bytes = Vec::new();
        for _ in 0..=MAX_MESSAGES {
            bytes.extend(encode_line(&Report::Skipped {
                layer: Layer::Seccomp,
                reason: "r".into(),
            }));
        }
        assert!(matches!(
            read_all(&bytes).unwrap_err(),
            ReportError::TooManyMessages
        ));
    }

    #[test]
    fn rejects_out_of_order() {
        let fin = encode_line(&Report::Finished(outcome()));
        assert!(matches!(
            read_all(&fin).unwrap_err(),
            ReportError::OutOfOrder(_)
        ));
        let mut two = encode_line(&Report::Started { pid: 1 });
        two.extend(encode_line(&Report::Started { pid: 2 }));
        assert!(matches!(
            read_all(&two).unwrap_err(),
            ReportError::OutOfOrder(_)
        ));
        let mut after = encode_line(&Report::SetupFailed(SetupFailure::msg(Step::Exec, "x")));
        after.extend(encode_line(&Report::Started { pid: 2 }));
        assert!(matches!(
            read_all(&after).unwrap_err(),
            ReportError::OutOfOrder(_)
        ));
    }

    #[test]
    fn timings_may_come_anywhere_before_the_last_message() {
        let marks = || Report::Timings {
            marks: vec![crate::trace::StepMark {
                step: "child: running".into(),
                at_ns: 5,
            }],
        };
        let mut ok = encode_line(&marks());
        ok.extend(encode_line(&Report::Started { pid: 1 }));
        ok.extend(encode_line(&marks()));
        ok.extend(encode_line(&Report::Finished(outcome())));
        assert_eq!(read_all(&ok).unwrap().len(), 4);
        let mut late = encode_line(&Report::Started { pid: 1 });
        late.extend(encode_line(&Report::Finished(outcome())));
        late.extend(encode_line(&marks()));
        assert!(matches!(
            read_all(&late).unwrap_err(),
            ReportError::OutOfOrder(_)
        ));
        let bad = b"{\"type\":\"timings\",\"marks\":[{\"step\":\"x\",\"at_ns\":-1}]}\n";
        assert!(matches!(
            read_all(bad).unwrap_err(),
            ReportError::Malformed { .. }
        ));
    }

    #[test]
    fn setup_failure_reads_well() {
        let f = SetupFailure::io(
            Step::Mounts,
            "binding /x at /plugin",
            &io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            f.to_string(),
            "sandbox setup failed at step mounts: binding /x at /plugin: No such file or directory (os error 2)"
        );
        assert_eq!(f.errno, Some(libc::ENOENT));
    }

    #[test]
    fn end_reasons_display_for_history() {
        assert_eq!(EndReason::Exit { code: 1 }.to_string(), "exit 1");
        assert_eq!(EndReason::Signal { signal: 9 }.to_string(), "signal 9");
        assert_eq!(EndReason::Memory.to_string(), "memory");
        assert_eq!(EndReason::Timeout.to_string(), "timeout");
    }
}
