//! plugd's process sandbox: a [`Policy`] in, a confined child process out.
//!
//! This crate owns everything between "run this plugin with this trust level"
//! and a running, confined process: the policy model and its mapping from
//! trust level × permissions × resources ([`policy`]), the layer probe that
//! `plugd doctor` shows ([`probe`]), the spawn ([`Sandbox::command`]), and the
//! accounting of how the process ended ([`Outcome`]). It is Linux-only and the
//! only plugd crate with `unsafe` code, all of it in the private `sys`
//! module.
//!
//! # Main types
//!
//! * [`Policy`] — what confines one process: binds, network, limits, user.
//!   [`Policy::for_plugin`] builds it from a manifest's trust level,
//!   permissions and resources plus [`OperatorSettings`].
//! * [`Sandbox`] — a helper binary plus the layers this machine supports
//!   (probed once). [`Sandbox::command`] turns a policy and a [`Target`] into
//!   a [`SandboxCommand`], which spawns (std or tokio) and yields a
//!   [`Monitor`] that reports setup failures as data and, at the end, an
//!   [`Outcome`] (CPU time, peak memory, why it ended).
//! * [`ForkServer`] — an optional pre-started helper that forks one
//!   supervisor per spawn instead of re-executing the binary
//!   ([`SandboxCommand::spawn_in`]); the helper it forks is the caller's own
//!   child ([`ServerChild`]). Same confinement, less start-up cost.
//! * [`LayerStatus`] — one layer, active or not, and why.
//! * [`trace`] — per-step timestamps of a spawn (`PLUGD_SANDBOX_TRACE=1`),
//!   to see where the time goes ([`Monitor::finish_with_timings`]).
//!
//! # Why it is built this way
//!
//! * **No container engine.** Namespaces, a tmpfs root entered with
//!   `pivot_root`, Landlock, seccomp, capabilities, rlimits and cgroups are
//!   applied directly, so a sandboxed spawn costs a few milliseconds, not the
//!   hundreds a container needs (`cargo bench -p plugd-sandbox --bench spawn`).
//! * **A re-exec helper, not `pre_exec`.** The host is multithreaded; the
//!   work between fork and exec (mounts, JSON, Landlock and seccomp
//!   builders) is only safe in a fresh single-threaded process. The `plugd`
//!   binary re-executes itself as `plugd __sandbox-init` (see
//!   [`run_helper_if_requested`]); the only `pre_exec` code is one `fcntl`
//!   that lets the helper inherit its report pipe.
//! * **Two ways to start the helper, one helper.** Re-executing the binary
//!   costs a dynamic load, relocations and runtime start-up (~1.7 ms here,
//!   the largest single step of a spawn); a long-lived host can instead keep
//!   a [`ForkServer`], a single-threaded helper that only forks. Both end in
//!   the same setup code, and the escape suite runs once per path. The
//!   server also keeps a few network namespaces made in idle time (creating
//!   one is the slowest namespace, ~0.6 ms), and, as root, a **root
//!   template** per policy shape: the read-only system part of the minimal
//!   root (system binds, devices, `/etc`) built once as a detached mount
//!   tree, which each sandbox clones (`open_tree(OPEN_TREE_CLONE)`) and
//!   completes with its own `/plugin`, `/work`, `/tmp` and `/proc` instead
//!   of rebuilding it (~1.4 → ~0.35 ms; the `template` module says what
//!   keeps it equivalent). Measured per step with [`trace`]; figures in
//!   BENCHMARKS.md.
//! * **Typed messages.** The helper reports `started`, `setup_failed` (with
//!   the step and errno) and `finished` (with accounting) as JSON lines on
//!   that pipe, so "sandbox setup failed at step mounts: binding /x at
//!   /plugin: No such file or directory" replaces a mystery exit code.
//! * **Degrade loudly.** Every layer is probed for real. A missing layer is
//!   skipped and logged once per process, or refused when the operator sets
//!   `require_full_isolation`.
//! * **Crates where they fit.** `landlock` builds rulesets, `seccompiler`
//!   loads the seccomp filter and is the reference its program is tested
//!   against, `rustix` wraps most system calls; `libc` is used only where
//!   rustix has no wrapper (fork, clone3, signal sets, `wait4` with rusage,
//!   raw `mount(2)` flags, one ioctl). Two things are hand-written, for
//!   stated reasons: the seccomp program is emitted here as a binary search
//!   because seccompiler's linear chain costs ~0.4 ms per spawn to load (see
//!   the `seccomp` module), and cgroup handling because no maintained crate
//!   handles a v1/v2 mix with the delegation and lock-avoidance rules needed
//!   here (see `cgroups`).
//! * **A seam for tests.** Setup steps call the kernel through the private
//!   `Sys` trait; unit tests record the calls instead, so the mount plan,
//!   namespace maps and privilege drop are checked without root. The
//!   integration tests (`tests/escape.rs`) run real hostile plugins.

#![allow(
    unsafe_code,
    reason = "the sandbox must call fork, mount, prctl and friends; every block is in `sys` with a SAFETY comment"
)]
#![deny(missing_docs)]
#![cfg(target_os = "linux")]

mod caps;
mod cgroups;
mod init;
mod landlock;
pub mod message;
mod mounts;
mod namespaces;
pub mod policy;
mod probe;
mod rlimits;
mod seccomp;
mod server;
mod spawn;
mod sys;
mod template;
pub mod trace;

pub use init::{SETUP_FAILED_EXIT, init_main};
pub use message::{EndReason, Layer, LayerPlan, LayerStatus, Outcome, SetupFailure, Step, Target};
pub use policy::{
    Access, Bind, Limits, Network, OperatorSettings, PluginGrant, Policy, PolicyError,
    ResourceRequest, TrustLevel, interpreter_paths, parse_permission,
};
pub use server::{ForkServer, ForkServerError, ServerChild, ServerStdio};
pub use spawn::{
    HELPER_ARG, Helper, Monitor, MonitorError, ProbeError, Sandbox, SandboxCommand, SpawnError,
    connect_loopback, probe, run_helper_if_requested, terminate,
};
pub use trace::{StepMark, monotonic_ns};
