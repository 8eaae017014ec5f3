//! Namespaces: which ones a spawn creates, and the set-up done inside them
//! (uid/gid maps for a user namespace, host name, loopback).
//!
//! The helper unshares every namespace in one `unshare(2)` call before it
//! forks, so the forked child is pid 1 of the new pid namespace and already
//! lives in all the others. When plugd is not root the same call creates a
//! user namespace first (the kernel orders it before the rest), which is what
//! grants the capabilities the other namespaces and the mounts need; the
//! helper then maps its own uid and gid to themselves, so files keep their
//! owners and no privilege is added.

use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::message::{LayerPlan, SetupFailure, Step};
use crate::policy::{Network, Policy};
use crate::sys::Sys;

/// `CLONE_NEW*` flags the helper unshares for itself before forking. The
/// mount namespace is not among them: the child unshares it after the fork,
/// because `pivot_root` moves the root of every process in the namespace, and
/// the helper must keep the host's view (it manages cgroups under `/sys`).
pub(crate) fn unshare_flags(plan: &LayerPlan) -> i32 {
    let mut f = 0;
    for (on, flag) in [
        (plan.user_ns, libc::CLONE_NEWUSER),
        (plan.pid_ns, libc::CLONE_NEWPID),
        (plan.net_ns, libc::CLONE_NEWNET),
        (plan.ipc_ns, libc::CLONE_NEWIPC),
        (plan.uts_ns, libc::CLONE_NEWUTS),
        (plan.cgroup_ns, libc::CLONE_NEWCGROUP),
    ] {
        if on {
            f |= flag;
        }
    }
    f
}

/// Creates the planned namespaces for the calling (helper) process.
///
/// `netns`: a network namespace made in advance (the fork server's pool,
/// only when plugd is root, so it belongs to the initial user namespace):
/// entered with `setns` instead of created, because creating one is the
/// slowest namespace by far (~0.6 ms here: loopback device, sysctl tables).
/// Each is used by one sandbox only, fresh and empty like a new one.
pub(crate) fn enter(
    sys: &dyn Sys,
    plan: &LayerPlan,
    uid: u32,
    gid: u32,
    netns: Option<BorrowedFd<'_>>,
) -> Result<(), SetupFailure> {
    let mut flags = unshare_flags(plan);
    if plan.net_ns
        && !plan.user_ns
        && let Some(fd) = netns
    {
        sys.setns_net(fd).map_err(|e| {
            SetupFailure::io(
                Step::Namespaces,
                "entering the network namespace made in advance",
                &e,
            )
        })?;
        flags &= !libc::CLONE_NEWNET;
    }
    if flags == 0 {
        return Ok(());
    }
    sys.unshare(flags).map_err(|e| {
        SetupFailure::io(
            Step::Namespaces,
            format!("unshare({})", describe(flags)),
            &e,
        )
    })?;
    if plan.user_ns {
        // "deny" must precede gid_map for an unprivileged writer.
        let maps = [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("{uid} {uid} 1")),
            ("/proc/self/gid_map", format!("{gid} {gid} 1")),
        ];
        for (file, value) in maps {
            sys.write_file(Path::new(file), value.as_bytes())
                .map_err(|e| {
                    SetupFailure::io(Step::UidMap, format!("writing {value:?} to {file}"), &e)
                })?;
        }
    }
    Ok(())
}

/// The child's own mount namespace.
pub(crate) fn enter_mount_ns(sys: &dyn Sys, plan: &LayerPlan) -> Result<(), SetupFailure> {
    if plan.mount_ns {
        sys.unshare(libc::CLONE_NEWNS)
            .map_err(|e| SetupFailure::io(Step::Namespaces, "unshare(CLONE_NEWNS)", &e))?;
    }
    Ok(())
}

/// Set-up inside the namespaces, in the plugin's process.
pub(crate) fn configure_inside(
    sys: &dyn Sys,
    plan: &LayerPlan,
    policy: &Policy,
) -> Result<(), SetupFailure> {
    if plan.uts_ns {
        sys.sethostname(&policy.hostname).map_err(|e| {
            SetupFailure::io(
                Step::Hostname,
                format!("setting host name {:?}", policy.hostname),
                &e,
            )
        })?;
    }
    if plan.net_ns && policy.network == Network::PrivateLoopback {
        sys.loopback_up().map_err(|e| {
            SetupFailure::io(Step::Loopback, "bringing lo up in the private network", &e)
        })?;
    }
    Ok(())
}

/// Readable flag names for error messages.
pub(crate) fn describe(flags: i32) -> String {
    let names = [
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
        (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    ];
    names
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::test::RecordingSys;

    #[test]
    fn user_namespace_maps_own_ids_after_unshare() {
        let plan = LayerPlan {
            user_ns: true,
            mount_ns: true,
            pid_ns: true,
            ..Default::default()
        };
        let sys = RecordingSys::default();
        enter(&sys, &plan, 1000, 1001, None).unwrap();
        let l = sys.lines();
        assert_eq!(
            l[0],
            format!("unshare {:#x}", libc::CLONE_NEWUSER | libc::CLONE_NEWPID)
        );
        assert_eq!(l[1], "write /proc/self/setgroups \"deny\"");
        assert_eq!(l[2], "write /proc/self/uid_map \"1000 1000 1\"");
        assert_eq!(l[3], "write /proc/self/gid_map \"1001 1001 1\"");
    }

    #[test]
    fn root_does_not_create_a_user_namespace() {
        let plan = LayerPlan {
            mount_ns: true,
            net_ns: true,
            ..Default::default()
        };
        let sys = RecordingSys::default();
        enter(&sys, &plan, 0, 0, None).unwrap();
        // The mount namespace is the child's business.
        assert_eq!(
            sys.lines(),
            vec![format!("unshare {:#x}", libc::CLONE_NEWNET)]
        );
        enter_mount_ns(&sys, &plan).unwrap();
        assert_eq!(sys.lines()[1], format!("unshare {:#x}", libc::CLONE_NEWNS));
        let sys = RecordingSys {
            fail_on: Some("unshare".into()),
            ..Default::default()
        };
        let err = enter(&sys, &plan, 0, 0, None).unwrap_err();
        assert_eq!(err.step, Step::Namespaces);
        assert!(err.detail.contains("CLONE_NEWNET"), "{}", err.detail);
    }

    #[test]
    fn a_network_namespace_made_in_advance_replaces_creating_one() {
        let devnull = std::fs::File::open("/dev/null").unwrap();
        let fd = Some(std::os::fd::AsFd::as_fd(&devnull));
        let plan = LayerPlan {
            net_ns: true,
            pid_ns: true,
            ..Default::default()
        };
        let sys = RecordingSys::default();
        enter(&sys, &plan, 0, 0, fd).unwrap();
        assert_eq!(
            sys.lines(),
            vec![
                "setns net".to_string(),
                format!("unshare {:#x}", libc::CLONE_NEWPID)
            ]
        );
        // Not with a user namespace (the pooled one belongs to the initial
        // user namespace), and not when the plan has no network namespace.
        for plan in [
            LayerPlan {
                net_ns: true,
                user_ns: true,
                ..Default::default()
            },
            LayerPlan {
                pid_ns: true,
                ..Default::default()
            },
        ] {
            let sys = RecordingSys::default();
            enter(&sys, &plan, 0, 0, fd).unwrap();
            assert!(!sys.lines().iter().any(|l| l.starts_with("setns")));
        }
    }

    #[test]
    fn loopback_only_for_private_loopback() {
        let plan = LayerPlan {
            net_ns: true,
            uts_ns: true,
            ..Default::default()
        };
        let mut policy = Policy::sandboxed();
        let sys = RecordingSys::default();
        configure_inside(&sys, &plan, &policy).unwrap();
        assert_eq!(sys.lines(), vec!["sethostname plugd-sandbox"]);
        policy.network = Network::PrivateLoopback;
        let sys = RecordingSys::default();
        configure_inside(&sys, &plan, &policy).unwrap();
        assert_eq!(
            sys.lines(),
            vec!["sethostname plugd-sandbox", "loopback_up"]
        );
    }
}
