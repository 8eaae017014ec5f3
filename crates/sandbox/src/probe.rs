//! What `plugd doctor` shows: each layer checked for real on this machine.
//!
//! The checks run in the helper (single-threaded, so it may fork) and each
//! one in its own forked child, doing what a spawn does — unsharing, building
//! the minimal root with the real system binds, loading a real Landlock
//! ruleset and seccomp filter and checking that a denied call is refused —
//! so a layer reported active is one that works, not one whose kernel config
//! option is set. The host runs the helper once per process
//! ([`crate::Sandbox::new`]) and plans every spawn from the result.

use std::io::{Read, Write};

use crate::message::{Layer, LayerPlan, LayerStatus};
use crate::mounts::{self, RootOptions};
use crate::policy::{Limits, Network, Policy};
use crate::rlimits::{self, CgroupCoverage};
use crate::sys::{self, Forked, LinuxSys, Sys, WaitStatus};
use crate::{caps, cgroups, landlock, namespaces, seccomp};

/// Runs `f` in a forked child; `Err` carries the child's explanation.
fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (r, w) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper (and every child it forks here) is single-threaded.
    match unsafe { sys::fork() }.map_err(|e| format!("fork: {e}"))? {
        Forked::Child => {
            drop(r);
            let code = match f() {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = std::fs::File::from(w).write_all(msg.as_bytes());
                    1
                }
            };
            sys::exit_now(code)
        }
        Forked::Parent(pid) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r)
                .take(16 * 1024)
                .read_to_string(&mut msg);
            let status = sys::wait_pid(pid).map_err(|e| format!("waitpid: {e}"))?;
            match status {
                _ if !msg.is_empty() => Err(msg),
                WaitStatus::Exited(0) => Ok(()),
                WaitStatus::Exited(c) => Err(format!("check exited with {c}")),
                WaitStatus::Signaled(s) => Err(format!("check was killed by signal {s}")),
            }
        }
    }
}

fn enter_userns() -> Result<(), String> {
    let plan = LayerPlan {
        user_ns: true,
        ..Default::default()
    };
    namespaces::enter(&LinuxSys, &plan, sys::euid(), sys::egid(), None).map_err(|f| f.detail)
}

fn status(layer: Layer, r: Result<String, String>) -> LayerStatus {
    match r {
        Ok(detail) => LayerStatus {
            layer,
            active: true,
            detail,
        },
        Err(detail) => LayerStatus {
            layer,
            active: false,
            detail,
        },
    }
}

const USERNS_HINT: &str = "unprivileged user namespaces look disabled (check sysctls kernel.unprivileged_userns_clone, user.max_user_namespaces and kernel.apparmor_restrict_unprivileged_userns), or run plugd as root";

/// Every check, in [`Layer::ALL`] order. Runs inside the helper.
pub(crate) fn run_checks() -> Vec<LayerStatus> {
    let root = sys::euid() == 0;
    let mut out = Vec::new();

    let userns = if root {
        Ok("plugd runs as root: plugins run as a dedicated unprivileged uid instead of in a user namespace".to_string())
    } else {
        in_child(enter_userns)
            .map(|()| "unprivileged user namespace created and mapped".to_string())
            .map_err(|e| format!("{e}; {USERNS_HINT}"))
    };
    let userns_ok = userns.is_ok();
    out.push(status(Layer::User, userns));

    let prefix = move || -> Result<(), String> { if root { Ok(()) } else { enter_userns() } };
    for (layer, flag) in [
        (Layer::MountNamespace, libc::CLONE_NEWNS),
        (Layer::PidNamespace, libc::CLONE_NEWPID),
        (Layer::NetNamespace, libc::CLONE_NEWNET),
        (Layer::IpcNamespace, libc::CLONE_NEWIPC),
        (Layer::UtsNamespace, libc::CLONE_NEWUTS),
        (Layer::CgroupNamespace, libc::CLONE_NEWCGROUP),
    ] {
        let r = if !root && !userns_ok {
            Err("needs a user namespace, which is unavailable (see the user layer)".to_string())
        } else {
            in_child(|| {
                prefix()?;
                LinuxSys
                    .unshare(flag)
                    .map_err(|e| format!("unshare({}): {e}", namespaces::describe(flag)))
            })
            .map(|()| format!("unshare({}) works", namespaces::describe(flag)))
        };
        out.push(status(layer, r));
    }

    let minimal = if !root && !userns_ok {
        Err("needs a user namespace, which is unavailable".to_string())
    } else {
        in_child(|| {
            prefix()?;
            LinuxSys
                .unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID)
                .map_err(|e| format!("unshare: {e}"))?;
            in_child(|| {
                let policy = Policy::sandboxed();
                mounts::build_minimal_root(
                    &LinuxSys,
                    &policy,
                    &RootOptions {
                        switch_user: false,
                        pid_ns: true,
                    },
                    None,
                )
                .map_err(|f| f.to_string())?;
                // The host must be gone from view, and /proc must be ours.
                if std::path::Path::new("/var").exists() || std::path::Path::new("/root").exists() {
                    return Err("host directories still visible after pivot_root".into());
                }
                match std::fs::read_link("/proc/self") {
                    Ok(p) if p == std::path::Path::new("1") => Ok(()),
                    other => Err(format!(
                        "/proc does not show the new pid namespace (/proc/self -> {other:?})"
                    )),
                }
            })
        })
        .map(|()| {
            "tmpfs root with read-only system binds, fresh /proc and /dev, pivot_root".to_string()
        })
    };
    out.push(status(Layer::MinimalRoot, minimal));

    let abi = sys::landlock_abi();
    let landlock_enforced = match abi {
        Ok(v) if v >= 1 => in_child(|| {
            let plan = LayerPlan {
                landlock_fs: true,
                landlock_net: v >= 4,
                landlock_scopes: v >= 6,
                ..Default::default()
            };
            let mut policy = Policy::sandboxed();
            policy.network = Network::None;
            let rs = landlock::prepare(&policy, &plan, false).map_err(|f| f.to_string())?;
            landlock::enforce(rs).map_err(|f| f.to_string())?;
            // /root is not in the rules: reading it must now fail.
            match std::fs::read_dir("/root") {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
                Err(_) => Ok(()),
                Ok(_) => Err("a ruleset was loaded but an unlisted directory stayed readable".into()),
            }
        }),
        Ok(v) => Err(format!("unexpected Landlock ABI {v}")),
        Err(libc::EOPNOTSUPP) => Err(
            "Landlock is built into this kernel but not enabled; add `landlock` to the lsm= boot parameter".into(),
        ),
        Err(_) => Err("this kernel has no Landlock (needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)".into()),
    };
    let v = abi.unwrap_or(0);
    out.push(status(
        Layer::LandlockFs,
        landlock_enforced
            .clone()
            .map(|()| format!("Landlock ABI {v}: filesystem rules enforced")),
    ));
    out.push(status(
        Layer::LandlockNet,
        landlock_enforced.clone().and_then(|()| {
            if v >= 4 {
                Ok(format!("Landlock ABI {v}: TCP bind/connect rules"))
            } else {
                Err(format!("Landlock ABI {v} has no TCP rules (needs ABI 4, Linux 6.7); the empty network namespace still blocks TCP"))
            }
        }),
    ));
    out.push(status(
        Layer::LandlockScopes,
        landlock_enforced.and_then(|()| {
            if v >= 6 {
                Ok(format!("Landlock ABI {v}: signal and abstract-socket scopes"))
            } else {
                Err(format!("Landlock ABI {v} has no scopes (needs ABI 6, Linux 6.12); the pid and network namespaces still isolate signals and abstract sockets"))
            }
        }),
    ));

    out.push(status(
        Layer::Seccomp,
        in_child(|| {
            LinuxSys
                .set_no_new_privs()
                .map_err(|e| format!("no_new_privs: {e}"))?;
            let prog = seccomp::build().map_err(|f| f.to_string())?;
            seccomp::apply(&prog).map_err(|f| f.to_string())?;
            match LinuxSys.unshare(0) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
                other => Err(format!(
                    "filter loaded but unshare(0) returned {other:?} instead of EPERM"
                )),
            }
        })
        .map(|()| {
            format!(
                "deny-list filter loaded ({} calls denied, foreign ABIs killed)",
                seccomp::denied_syscalls().len() + 3
            )
        }),
    ));

    out.push(status(
        Layer::Capabilities,
        if !root && !userns_ok {
            Err("without root or a user namespace there is nothing to drop, and no_new_privs alone is applied".into())
        } else {
            in_child(|| {
                prefix()?;
                let plan = LayerPlan {
                    drop_caps: true,
                    switch_user: root,
                    ..Default::default()
                };
                caps::drop_privileges(&LinuxSys, &plan, &Policy::sandboxed()).map_err(|f| f.to_string())?;
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                if status
                    .lines()
                    .filter(|l| l.starts_with("CapEff:") || l.starts_with("CapBnd:"))
                    .any(|l| !l.ends_with("0000000000000000"))
                {
                    return Err("capabilities remained after dropping them".into());
                }
                Ok(())
            })
            .map(|()| "bounding, ambient, effective and permitted sets cleared; no_new_privs set".to_string())
        },
    ));

    out.push(status(
        Layer::Rlimits,
        in_child(|| rlimits::apply(&LinuxSys, &Limits::default(), CgroupCoverage::default()).map_err(|f| f.to_string()))
            .map(|()| "CPU, file size, open files, stack, core 0 (address space and processes when cgroups are missing)".into()),
    ));

    out.extend(cgroups::probe());
    out.push(LayerStatus {
        layer: Layer::Timeout,
        active: true,
        detail: "the helper kills the sandbox when the wall-clock limit passes".into(),
    });
    out
}
