//! Landlock: filesystem rules that match the mounts, TCP rules, scopes.
//!
//! Landlock is the second wall behind the mount namespace: if a bind is
//! wrong, or the mount layer is unavailable and the plugin sees the host
//! tree, the plugin can still only read the paths the policy names and write
//! its work dir and `/tmp`. Rules are built in two phases: [`prepare`] opens
//! the paths while the helper child is still privileged (a directory the
//! sandbox user cannot traverse still gets its rule), [`enforce`] applies the
//! ruleset after the identity switch.
//!
//! The ruleset targets Landlock ABI 6 in best-effort mode: on an older kernel
//! the crate drops what it cannot enforce, and the host has already reported
//! the missing parts (`landlock-net` needs ABI 4, `landlock-scopes` ABI 6).

use std::path::{Path, PathBuf};

use ::landlock::{
    ABI, Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::message::{LayerPlan, SetupFailure, Step};
use crate::policy::{Access, Network, Policy, WORK_MOUNT};

const TARGET_ABI: ABI = ABI::V6;

/// What one rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allow {
    /// Read, list, execute.
    Read,
    /// Everything.
    ReadWrite,
    /// Read and write an existing file (device nodes), no execute.
    Device,
    /// Read and list only (`/proc`, generated `/etc`).
    ReadNoExec,
    /// List directories only (the minimal root itself).
    ListOnly,
}

/// The rules for a policy, as `(path in the current view, allow)`.
///
/// `minimal_root`: the view is the sandbox root (targets); otherwise it is the
/// host tree (sources), with no private `/tmp`.
pub(crate) fn rules(policy: &Policy, minimal_root: bool) -> Vec<(PathBuf, Allow)> {
    let mut v = Vec::new();
    for b in &policy.binds {
        let path = if minimal_root { &b.target } else { &b.source };
        let allow = match b.access {
            Access::ReadOnly => Allow::Read,
            Access::ReadWrite => Allow::ReadWrite,
        };
        v.push((path.clone(), allow));
    }
    if let Some(w) = &policy.work_dir {
        v.push((
            if minimal_root {
                PathBuf::from(WORK_MOUNT)
            } else {
                w.clone()
            },
            Allow::ReadWrite,
        ));
    }
    if minimal_root {
        // Listing directories of the minimal root reveals only what the
        // policy put there. (Never on the host tree: there it would reveal
        // every directory name on the machine.)
        v.push((PathBuf::from("/"), Allow::ListOnly));
        v.push((PathBuf::from("/tmp"), Allow::ReadWrite));
        v.push((PathBuf::from("/dev/shm"), Allow::ReadWrite));
        v.push((PathBuf::from("/etc"), Allow::ReadNoExec));
    }
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        v.push((Path::new("/dev").join(d), Allow::Device));
    }
    v.push((PathBuf::from("/proc"), Allow::ReadNoExec));
    v
}

fn access_for(allow: Allow, is_dir: bool) -> BitFlags<AccessFs> {
    let all = AccessFs::from_all(TARGET_ABI);
    let set = match allow {
        Allow::Read => AccessFs::from_read(TARGET_ABI),
        Allow::ReadWrite => all,
        Allow::Device => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev,
        Allow::ReadNoExec => AccessFs::ReadFile | AccessFs::ReadDir,
        Allow::ListOnly => AccessFs::ReadDir.into(),
    };
    if is_dir {
        set
    } else {
        set & AccessFs::from_file(TARGET_ABI)
    }
}

/// Builds the ruleset (phase one). Paths that do not exist in the view
/// (optional system dirs this host lacks) get no rule.
pub(crate) fn prepare(
    policy: &Policy,
    plan: &LayerPlan,
    minimal_root: bool,
) -> Result<RulesetCreated, SetupFailure> {
    let fail = |what: String, e: &dyn std::fmt::Display| {
        SetupFailure::msg(Step::Landlock, format!("{what}: {e}"))
    };
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort);
    if plan.landlock_fs {
        ruleset = ruleset
            .handle_access(AccessFs::from_all(TARGET_ABI))
            .map_err(|e| fail("handling filesystem access".into(), &e))?;
    }
    if plan.landlock_net && policy.network == Network::None {
        // Handled with no rule: every TCP bind and connect is denied.
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(|e| fail("handling TCP access".into(), &e))?;
    }
    if plan.landlock_scopes {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| fail("adding scopes".into(), &e))?;
    }
    let mut created = ruleset
        .create()
        .map_err(|e| fail("creating the ruleset".into(), &e))?;
    if plan.landlock_fs {
        for (path, allow) in rules(policy, minimal_root) {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let fd = match PathFd::new(&path) {
                Ok(fd) => fd,
                Err(_) => continue,
            };
            created = created
                .add_rule(PathBeneath::new(fd, access_for(allow, meta.is_dir())))
                .map_err(|e| fail(format!("adding a rule for {}", path.display()), &e))?;
        }
    }
    Ok(created)
}

/// Applies the ruleset to the calling process (phase two). Also sets
/// `no_new_privs`, which Landlock requires of an unprivileged caller.
/// Returns a note when the kernel enforced only part of it.
pub(crate) fn enforce(created: RulesetCreated) -> Result<Option<String>, SetupFailure> {
    let status = created
        .restrict_self()
        .map_err(|e| SetupFailure::msg(Step::Landlock, format!("landlock_restrict_self: {e}")))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(None),
        RulesetStatus::PartiallyEnforced => Ok(Some(format!(
            "Landlock only partially enforced on this kernel ({:?})",
            status.landlock
        ))),
        RulesetStatus::NotEnforced => Err(SetupFailure::msg(
            Step::Landlock,
            "the kernel enforced no Landlock rule although the probe found Landlock; refusing to run unconfined",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Bind;

    #[test]
    fn rules_follow_the_view() {
        let mut p = Policy::sandboxed();
        p.binds = vec![
            Bind::read_only("/store/p", "/plugin"),
            Bind::read_write("/srv/out", "/srv/out"),
        ];
        p.work_dir = Some(PathBuf::from("/store/w"));
        let inside = rules(&p, true);
        assert!(inside.contains(&(PathBuf::from("/plugin"), Allow::Read)));
        assert!(inside.contains(&(PathBuf::from("/work"), Allow::ReadWrite)));
        assert!(inside.contains(&(PathBuf::from("/tmp"), Allow::ReadWrite)));
        assert!(inside.contains(&(PathBuf::from("/srv/out"), Allow::ReadWrite)));
        let host = rules(&p, false);
        assert!(host.contains(&(PathBuf::from("/store/p"), Allow::Read)));
        assert!(host.contains(&(PathBuf::from("/store/w"), Allow::ReadWrite)));
        // Without a private /tmp the host's /tmp must not become writable.
        assert!(
            !host
                .iter()
                .any(|(p, _)| p == Path::new("/tmp") || p == Path::new("/"))
        );
        assert!(inside.contains(&(PathBuf::from("/"), Allow::ListOnly)));
    }

    #[test]
    fn file_rules_only_carry_file_rights() {
        let a = access_for(Allow::ReadWrite, false);
        assert!(!a.contains(AccessFs::MakeDir));
        assert!(a.contains(AccessFs::WriteFile));
        let r = access_for(Allow::Read, true);
        assert!(r.contains(AccessFs::Execute) && !r.contains(AccessFs::WriteFile));
        assert!(!access_for(Allow::ReadNoExec, true).contains(AccessFs::Execute));
    }
}
