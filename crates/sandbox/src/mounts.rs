//! The filesystem view: a minimal read-only root built on a tmpfs and
//! entered with `pivot_root`, or (for `trusted`) the host's tree with
//! `/plugin` and `/work` added.
//!
//! Steps, in the helper's child, inside a fresh mount namespace:
//!
//! 1. Make every mount private, so nothing we do propagates to the host.
//! 2. Open every bind source with `O_PATH`. The staging root is then mounted
//!    on the host's `/tmp`, which would hide sources that live under `/tmp`;
//!    the descriptors keep them reachable (`/proc/self/fd/N` names them for
//!    `mount(2)`), and pin the inode so a path swapped for a symlink after
//!    the policy was written cannot redirect the bind.
//! 3. Mount a small tmpfs as the staging root and create the tree in it,
//!    parents before children: binds (non-recursive, then remounted
//!    read-only/nosuid/nodev keeping the source mount's locked flags),
//!    symlinks recreated as symlinks (`/bin -> usr/bin` on merged-/usr
//!    systems), a private `/tmp` and `/dev/shm` (tmpfs), `/dev` with the
//!    usual character devices bound from the host, a fresh `/proc` (in the
//!    new pid namespace it shows only the sandbox), and generated
//!    `/etc/passwd`, `/etc/group`, `/etc/hosts`, `/etc/hostname`.
//! 4. Remount the staging root read-only, `pivot_root(".", ".")` into it and
//!    detach the old root, so no path leads back to the host.
//!
//! Through the root fork server, the system part of step 3 (system binds,
//! `/dev`, `/etc`, every directory) comes ready-made: the sandbox attaches a
//! clone of the server's root template (see `template`) as the staging root
//! and adds only its own binds, `/tmp` and `/proc` on the mount points the
//! template has; steps 1, 2 (for its own sources) and 4 are unchanged.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::message::{SetupFailure, Step};
use crate::policy::{Access, Bind, Policy, WORK_MOUNT};
use crate::sys::{OpenedPath, SourceKind, Sys};

/// Host directory the staging root is mounted on (inside the private mount
/// namespace only). It exists on every system.
pub(crate) const STAGING: &str = "/tmp";

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
const MS_PRIVATE: u64 = libc::MS_PRIVATE;

/// Largest `/etc` file copied into the root instead of bound. Measured
/// here: a bind costs ~35 µs; copying a few-KiB file less, but copying
/// `mime.types` (72 KiB) or `ld.so.cache` (45 KiB) more, so those stay binds.
pub(crate) const ETC_COPY_MAX: u64 = 16 * 1024;

/// Character devices every sandbox gets.
pub(crate) const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Links in `/dev` (`/dev/shm` is the private `/tmp` tmpfs: same flags but
/// exec, which /tmp allows anyway, one size limit for both, one mount fewer
/// per spawn).
pub(crate) const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("shm", "/tmp"),
];

/// Readable names for `MS_*` flags (tests and error messages).
#[cfg(test)]
pub(crate) fn describe_flags(flags: u64) -> String {
    let names = [
        (MS_RDONLY, "ro"),
        (MS_NOSUID, "nosuid"),
        (MS_NODEV, "nodev"),
        (MS_NOEXEC, "noexec"),
        (MS_REMOUNT, "remount"),
        (MS_BIND, "bind"),
        (MS_REC, "rec"),
        (MS_PRIVATE, "private"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

fn under(root: &Path, target: &Path) -> PathBuf {
    root.join(target.strip_prefix("/").unwrap_or(target))
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// One thing to create in the new root.
enum Entry {
    Bind {
        src: OpenedPath,
        source_path: PathBuf,
        target: PathBuf,
        access: Access,
        recursive: bool,
    },
    Symlink {
        target: PathBuf,
        points_to: PathBuf,
    },
    Tmpfs {
        target: PathBuf,
        options: String,
        flags: u64,
    },
    Dev,
    Proc {
        fresh: bool,
    },
}

impl Entry {
    fn target(&self) -> &Path {
        match self {
            Entry::Bind { target, .. }
            | Entry::Symlink { target, .. }
            | Entry::Tmpfs { target, .. } => target,
            Entry::Dev => Path::new("/dev"),
            Entry::Proc { .. } => Path::new("/proc"),
        }
    }
}

/// What the mount step needs besides the policy.
pub(crate) struct RootOptions {
    /// The sandbox runs as `policy.uid`: the work dir must belong to it.
    pub switch_user: bool,
    /// A new pid namespace exists, so a fresh `/proc` shows only the sandbox.
    pub pid_ns: bool,
}

fn make_private(sys: &dyn Sys) -> Result<(), SetupFailure> {
    sys.mount(None, Path::new("/"), None, MS_REC | MS_PRIVATE, None)
        .map_err(|e| SetupFailure::io(Step::Mounts, "making all mounts private", &e))
}

fn open_source(sys: &dyn Sys, bind: &Bind) -> Result<Option<OpenedPath>, SetupFailure> {
    open_source_with(sys, bind, bind.source != bind.target)
}

/// Opens an identity bind's source; a symlink is kept as a symlink only if
/// what it points to is visible in the sandbox too (`/bin -> usr/bin`),
/// otherwise the file it names is bound (`/etc/resolv.conf ->
/// /run/systemd/resolve/stub-resolv.conf` on systemd hosts).
pub(crate) fn open_identity_source(
    sys: &dyn Sys,
    bind: &Bind,
    all: &[Bind],
) -> Result<Option<OpenedPath>, SetupFailure> {
    let Some(opened) = open_source_with(sys, bind, bind.source != bind.target)? else {
        return Ok(None);
    };
    if let SourceKind::Symlink(_) = opened.kind {
        let resolved = std::fs::canonicalize(&bind.source).unwrap_or_default();
        let visible = all.iter().any(|b| {
            b.source == b.target && b.target != bind.target && resolved.starts_with(&b.target)
        });
        if !visible {
            return open_source_with(sys, bind, true);
        }
    }
    Ok(Some(opened))
}

fn open_source_with(
    sys: &dyn Sys,
    bind: &Bind,
    follow: bool,
) -> Result<Option<OpenedPath>, SetupFailure> {
    match sys.open_path(&bind.source, follow) {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !bind.required => Ok(None),
        Err(e) => Err(SetupFailure::io(
            Step::Mounts,
            format!(
                "opening bind source {} (for {})",
                bind.source.display(),
                bind.target.display()
            ),
            &e,
        )),
    }
}

fn bind_entry(bind: &Bind, src: OpenedPath, recursive: bool) -> Entry {
    match &src.kind {
        SourceKind::Symlink(points_to) => Entry::Symlink {
            target: bind.target.clone(),
            points_to: points_to.clone(),
        },
        _ => Entry::Bind {
            src,
            source_path: bind.source.clone(),
            target: bind.target.clone(),
            access: bind.access,
            recursive,
        },
    }
}

/// Builds the minimal root for a confined plugin and pivots into it.
///
/// With `template` (a clone of the fork server's root template for this
/// policy's shape, see `template`), the system part is already in that
/// tree: it is attached as the staging root and only the sandbox's own
/// mounts are added, on the mount points it has.
pub(crate) fn build_minimal_root(
    sys: &dyn Sys,
    policy: &Policy,
    opts: &RootOptions,
    template: Option<&OwnedFd>,
) -> Result<(), SetupFailure> {
    make_private(sys)?;
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for bind in &policy.binds {
        if !seen.insert((bind.source.clone(), bind.target.clone())) {
            continue;
        }
        if template.is_some() && bind.source == bind.target {
            continue;
        }
        if let Some(src) = open_identity_source(sys, bind, &policy.binds)? {
            entries.push(bind_entry(bind, src, false));
        }
    }
    if let Some(work) = &policy.work_dir {
        let bind = Bind::read_write(work.clone(), WORK_MOUNT);
        if opts.switch_user {
            sys.chown(work, policy.uid, policy.gid).map_err(|e| {
                SetupFailure::io(
                    Step::Mounts,
                    format!("giving work dir {} to uid {}", work.display(), policy.uid),
                    &e,
                )
            })?;
        }
        let src = open_source(sys, &bind)?.expect("required binds are never skipped");
        entries.push(bind_entry(&bind, src, false));
    }
    entries.push(Entry::Tmpfs {
        target: PathBuf::from("/tmp"),
        options: format!("mode=1777,size={}", policy.limits.tmp_bytes),
        flags: MS_NOSUID | MS_NODEV,
    });
    if template.is_none() {
        entries.push(Entry::Dev);
    }
    entries.push(Entry::Proc { fresh: opts.pid_ns });
    let mut devs = Vec::new();
    if let Some(tree) = template {
        return populate(sys, policy, entries, devs, true, Some(tree));
    }
    for d in DEVICES {
        let path = PathBuf::from("/dev").join(d);
        match sys.open_path(&path, true) {
            Ok(o) => devs.push((d, o)),
            // /dev/tty is absent in some containers; the others are not optional.
            Err(_) if d == "tty" => {}
            Err(e) => {
                return Err(SetupFailure::io(
                    Step::Mounts,
                    format!("opening {}", path.display()),
                    &e,
                ));
            }
        }
    }
    populate(sys, policy, entries, devs, true, None)
}

/// Builds the trusted view: the host's top-level directories bound as they
/// are (recursively, read-write), plus `/plugin` and `/work`, and pivots
/// into it. The plugin keeps the host's filesystem, as a plain child would,
/// but the paths plugd gives it (`/plugin/…`, `/work`) exist.
pub(crate) fn build_host_view(sys: &dyn Sys, policy: &Policy) -> Result<(), SetupFailure> {
    make_private(sys)?;
    let mut entries = Vec::new();
    // Identity binds (system dirs, interpreters) are already part of the
    // host tree; only the sandbox's own paths are added on top of it.
    let own: Vec<&Path> = policy
        .binds
        .iter()
        .filter(|b| b.source != b.target)
        .map(|b| b.target.as_path())
        .chain(policy.work_dir.as_ref().map(|_| Path::new(WORK_MOUNT)))
        .collect();
    for target in &own {
        // A target inside a host directory would need its mount point
        // created there, on the host's filesystem: refuse rather than write.
        if depth(target) > 1 && !target.exists() {
            return Err(SetupFailure::msg(
                Step::Mounts,
                format!(
                    "{} does not exist on the host, and a trusted plugin's view is the host's tree; bind it at a top-level path such as /plugin-data instead",
                    target.display()
                ),
            ));
        }
    }
    let top =
        std::fs::read_dir("/").map_err(|e| SetupFailure::io(Step::Mounts, "listing /", &e))?;
    for entry in top {
        let entry = entry.map_err(|e| SetupFailure::io(Step::Mounts, "listing /", &e))?;
        let path = PathBuf::from("/").join(entry.file_name());
        if own.iter().any(|o| *o == path) {
            continue;
        }
        let bind = Bind {
            source: path.clone(),
            target: path.clone(),
            access: Access::ReadWrite,
            required: false,
        };
        if let Some(src) = open_source(sys, &bind)? {
            // /tmp is where the staging root is mounted: a recursive bind of
            // it would copy the staging mount into itself.
            let recursive = path != Path::new(STAGING);
            entries.push(bind_entry(&bind, src, recursive));
        }
    }
    for bind in policy.binds.iter().filter(|b| b.source != b.target) {
        if let Some(src) = open_source(sys, bind)? {
            entries.push(bind_entry(bind, src, false));
        }
    }
    if let Some(work) = &policy.work_dir {
        let bind = Bind::read_write(work.clone(), WORK_MOUNT);
        let src = open_source(sys, &bind)?.expect("required binds are never skipped");
        entries.push(bind_entry(&bind, src, false));
    }
    populate(sys, policy, entries, Vec::new(), false, None)
}

fn populate(
    sys: &dyn Sys,
    policy: &Policy,
    mut entries: Vec<Entry>,
    devs: Vec<(&str, OpenedPath)>,
    confined: bool,
    template: Option<&OwnedFd>,
) -> Result<(), SetupFailure> {
    // Parents before children; stable, so policy order breaks ties.
    entries.sort_by_key(|e| depth(e.target()));
    check_no_target_through_symlink(&entries)?;

    let root = Path::new(STAGING);
    if let Some(tree) = template {
        sys.attach_tree(tree.as_fd(), root)
            .map_err(|e| SetupFailure::io(Step::Mounts, "attaching the root template clone", &e))?;
    } else {
        sys.mount(
            Some(Path::new("tmpfs")),
            root,
            Some("tmpfs"),
            MS_NOSUID | MS_NODEV,
            Some("mode=0755,size=4m,nr_inodes=8192"),
        )
        .map_err(|e| SetupFailure::io(Step::Mounts, "mounting the staging root tmpfs", &e))?;
    }
    // A template already has every directory and mount point (it is
    // read-only: creating one would fail).
    let create = template.is_none();

    let targets: std::collections::HashSet<PathBuf> =
        entries.iter().map(|e| e.target().to_path_buf()).collect();
    for entry in &entries {
        let target = entry.target();
        let at = under(root, target);
        if create {
            make_parents(sys, root, target)?;
        }
        let fail = |what: &str, e: std::io::Error| {
            SetupFailure::io(Step::Mounts, format!("{what} {}", target.display()), &e)
        };
        match entry {
            Entry::Bind {
                src,
                source_path,
                access,
                recursive,
                ..
            } => {
                if confined
                    && *access == Access::ReadOnly
                    && src.kind == SourceKind::File
                    && source_path == target
                    && target.starts_with("/etc")
                {
                    // Small /etc files (ld.so.cache, services, …) are copied
                    // into the staging root rather than bound: a bind costs
                    // two mount operations now and an unmount at teardown,
                    // a copy a few reads and writes. The root is remounted
                    // read-only below, as a read-only bind would be; only
                    // world-readable files are copied (see `sys::copyable`).
                    if sys
                        .copy_small_file(src, &at, ETC_COPY_MAX)
                        .map_err(|e| fail("copying", e))?
                    {
                        continue;
                    }
                }
                if create {
                    match src.kind {
                        SourceKind::Dir => sys.mkdir(&at, 0o755),
                        _ => sys.create_file(&at, 0o644),
                    }
                    .map_err(|e| fail("creating mount point", e))?;
                }
                let rec = if *recursive { MS_REC } else { 0 };
                sys.mount(Some(&src.proc_path()), &at, None, MS_BIND | rec, None)
                    .map_err(|e| {
                        SetupFailure::io(
                            Step::Mounts,
                            format!("binding {} at {}", source_path.display(), target.display()),
                            &e,
                        )
                    })?;
                if confined || *access == Access::ReadOnly {
                    let ro = if *access == Access::ReadOnly {
                        MS_RDONLY
                    } else {
                        0
                    };
                    sys.mount(
                        None,
                        &at,
                        None,
                        MS_BIND | MS_REMOUNT | ro | MS_NOSUID | MS_NODEV | src.locked_flags,
                        None,
                    )
                    .map_err(|e| fail("remounting read-only/nosuid/nodev", e))?;
                }
            }
            Entry::Symlink { points_to, .. } => {
                sys.symlink(points_to, &at)
                    .map_err(|e| fail("creating symlink", e))?;
            }
            Entry::Tmpfs { options, flags, .. } => {
                if create {
                    sys.mkdir(&at, 0o755)
                        .map_err(|e| fail("creating mount point", e))?;
                }
                sys.mount(
                    Some(Path::new("tmpfs")),
                    &at,
                    Some("tmpfs"),
                    *flags,
                    Some(options),
                )
                .map_err(|e| fail("mounting tmpfs on", e))?;
            }
            Entry::Dev => build_dev(sys, &at, &devs)?,
            Entry::Proc { fresh } => {
                if create {
                    sys.mkdir(&at, 0o555)
                        .map_err(|e| fail("creating mount point", e))?;
                }
                if *fresh {
                    sys.mount(
                        Some(Path::new("proc")),
                        &at,
                        Some("proc"),
                        MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        None,
                    )
                    .map_err(|e| fail("mounting a fresh proc on", e))?;
                }
            }
        }
    }

    if confined && create {
        write_etc(sys, root, policy, &targets)?;
    }
    sys.mount(
        None,
        root,
        None,
        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
        None,
    )
    .map_err(|e| SetupFailure::io(Step::Mounts, "remounting the new root read-only", &e))?;
    pivot(sys, root)
}

/// Refuses a bind whose target passes through a symlink created earlier:
/// creating its mount point would follow the link, out of the new root.
fn check_no_target_through_symlink(entries: &[Entry]) -> Result<(), SetupFailure> {
    for e in entries {
        if let Entry::Symlink { target: link, .. } = e {
            for other in entries {
                let t = other.target();
                if t != link && t.starts_with(link) {
                    return Err(SetupFailure::msg(
                        Step::Mounts,
                        format!(
                            "bind target {} lies under {}, which is a symlink on this host; bind the directory it points to instead",
                            t.display(),
                            link.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn make_parents(sys: &dyn Sys, root: &Path, target: &Path) -> Result<(), SetupFailure> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = target
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        sys.mkdir(&cur, 0o755).map_err(|e| {
            SetupFailure::io(
                Step::Mounts,
                format!("creating directory {}", cur.display()),
                &e,
            )
        })?;
    }
    Ok(())
}

fn build_dev(sys: &dyn Sys, dev: &Path, devs: &[(&str, OpenedPath)]) -> Result<(), SetupFailure> {
    let fail = |what: String, e: std::io::Error| SetupFailure::io(Step::Mounts, what, &e);
    // /dev is a plain directory of the staging root, not a tmpfs of its own:
    // the staging root is already nosuid, nodev and remounted read-only at
    // the end, which is all a separate /dev tmpfs added (it saves a mount and
    // a remount per spawn). The devices are bind mounts of their own, so
    // nodev on the root does not affect them.
    sys.mkdir(dev, 0o755)
        .map_err(|e| fail("creating /dev".into(), e))?;
    for (name, src) in devs {
        let at = dev.join(name);
        sys.create_file(&at, 0o666)
            .map_err(|e| fail(format!("creating /dev/{name}"), e))?;
        // Device binds cannot be nodev. They are not remounted nosuid/noexec
        // either: those flags mean nothing on a character device, and the
        // remount would cost a mount operation per device on every spawn.
        sys.mount(Some(&src.proc_path()), &at, None, MS_BIND, None)
            .map_err(|e| fail(format!("binding /dev/{name}"), e))?;
    }
    for (link, to) in DEV_LINKS {
        sys.symlink(Path::new(to), &dev.join(link))
            .map_err(|e| fail(format!("creating /dev/{link}"), e))?;
    }
    Ok(())
}

pub(crate) fn write_etc(
    sys: &dyn Sys,
    root: &Path,
    policy: &Policy,
    bound: &std::collections::HashSet<PathBuf>,
) -> Result<(), SetupFailure> {
    let etc = root.join("etc");
    sys.mkdir(&etc, 0o755)
        .map_err(|e| SetupFailure::io(Step::Mounts, "creating /etc", &e))?;
    let (uid, gid) = (policy.uid, policy.gid);
    let files = [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\nplugin:x:{uid}:{gid}:plugd plugin:{WORK_MOUNT}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        (
            "group",
            format!("root:x:0:\nplugin:x:{gid}:\nnogroup:x:65534:\n"),
        ),
        ("hostname", format!("{}\n", policy.hostname)),
        (
            "hosts",
            format!(
                "127.0.0.1 localhost {h}\n::1 localhost ip6-localhost {h}\n",
                h = policy.hostname
            ),
        ),
    ];
    for (name, body) in files {
        // A file the policy binds from the host (/etc/hosts with the host
        // network) wins over the generated one.
        if bound.contains(&Path::new("/etc").join(name)) {
            continue;
        }
        sys.write_file(&etc.join(name), body.as_bytes())
            .map_err(|e| SetupFailure::io(Step::Mounts, format!("writing /etc/{name}"), &e))?;
    }
    Ok(())
}

fn pivot(sys: &dyn Sys, root: &Path) -> Result<(), SetupFailure> {
    let fail = |what: &str, e: std::io::Error| SetupFailure::io(Step::PivotRoot, what, &e);
    sys.chdir(root)
        .map_err(|e| fail("entering the new root", e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one, so no
    // directory for it is needed in a read-only root; detaching "." then
    // removes it and leaves the new root visible.
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(|e| fail("pivot_root into the new root", e))?;
    sys.umount_detach(Path::new("."))
        .map_err(|e| fail("detaching the old root", e))?;
    sys.chdir(Path::new("/"))
        .map_err(|e| fail("entering /", e))?;
    Ok(())
}

/// Maps sandbox paths back to host paths, for when no mount namespace is
/// available: `/plugin/run.py` → `<plugin dir>/run.py`. A value is rewritten
/// when it is a bind target or lies under one; environment values are also
/// split on `:` (PATH-style lists).
pub(crate) struct Remap {
    table: Vec<(PathBuf, PathBuf)>,
}

impl Remap {
    pub(crate) fn new(policy: &Policy) -> Remap {
        let mut table: Vec<(PathBuf, PathBuf)> = policy
            .binds
            .iter()
            .filter(|b| b.source != b.target)
            .map(|b| (b.target.clone(), b.source.clone()))
            .collect();
        if let Some(w) = &policy.work_dir {
            table.push((PathBuf::from(WORK_MOUNT), w.clone()));
        }
        // Longest target first, so /plugin/data wins over /plugin.
        table.sort_by_key(|(t, _)| std::cmp::Reverse(depth(t)));
        Remap { table }
    }

    pub(crate) fn path(&self, p: &Path) -> PathBuf {
        for (target, source) in &self.table {
            if let Ok(rest) = p.strip_prefix(target) {
                return if rest.as_os_str().is_empty() {
                    source.clone()
                } else {
                    source.join(rest)
                };
            }
        }
        p.to_path_buf()
    }

    pub(crate) fn arg(&self, s: &str) -> String {
        if s.starts_with('/') {
            self.path(Path::new(s)).to_string_lossy().into_owned()
        } else {
            s.to_string()
        }
    }

    pub(crate) fn env_value(&self, s: &str) -> String {
        s.split(':')
            .map(|part| self.arg(part))
            .collect::<Vec<_>>()
            .join(":")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::test::RecordingSys;

    fn policy_with(dir: &Path) -> Policy {
        let plugin = dir.join("plugin");
        let work = dir.join("work");
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.join("bin")).unwrap();
        let mut p = Policy::sandboxed();
        p.binds = vec![
            Bind::system(dir.join("usr")),
            // Identity bind of a symlink to another bound path: recreated as
            // a symlink.
            Bind::system(dir.join("bin")),
            Bind::system(dir.join("missing")),
            Bind::read_only(plugin, "/plugin"),
        ];
        p.work_dir = Some(work);
        p
    }

    fn find(lines: &[String], needle: &str) -> usize {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no call containing {needle:?} in:\n{}", lines.join("\n")))
    }

    #[test]
    fn minimal_root_steps_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy_with(dir.path());
        let sys = RecordingSys::default();
        build_minimal_root(
            &sys,
            &policy,
            &RootOptions {
                switch_user: true,
                pid_ns: true,
            },
            None,
        )
        .unwrap();
        let l = sys.lines();
        // Private first, sources opened before the staging root hides /tmp.
        assert!(l[0].starts_with("mount - / - rec,private"), "{}", l[0]);
        let staging = find(&l, "mount tmpfs /tmp tmpfs nosuid,nodev mode=0755");
        let open_plugin = find(&l, &format!("open {}", dir.path().join("plugin").display()));
        assert!(open_plugin < staging);
        // The work dir is given to the sandbox user before it is bound.
        let chown = find(&l, "chown");
        assert!(l[chown].ends_with("65534:65534"));
        // The plugin dir is bound, then remounted read-only.
        let bind = find(&l, "/tmp/plugin - bind -");
        assert!(
            l[bind + 1].contains("/tmp/plugin - ro,nosuid,nodev,remount,bind"),
            "{}",
            l[bind + 1]
        );
        // The work dir is remounted without ro.
        let work = find(&l, "/tmp/work - bind -");
        assert!(l[work + 1].contains("nosuid,nodev,remount,bind") && !l[work + 1].contains(" ro,"));
        // Missing optional source skipped, symlink recreated.
        assert!(
            !l.iter()
                .any(|x| x.contains("missing") && x.starts_with("mount"))
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("symlink") && x.ends_with("-> usr/bin"))
        );
        // Private /tmp, fresh proc, devices, generated /etc.
        find(&l, "mount tmpfs /tmp/tmp tmpfs nosuid,nodev mode=1777");
        find(&l, "mount proc /tmp/proc proc nosuid,nodev,noexec");
        find(&l, "/tmp/dev/null - bind");
        find(&l, "symlink /tmp/dev/shm -> /tmp");
        assert!(!l.iter().any(|x| x.starts_with("mount tmpfs /tmp/dev")));
        find(&l, "write /tmp/etc/passwd");
        // Finally: root read-only, pivot, detach.
        let n = l.len();
        assert!(
            l[n - 5].contains("mount - /tmp - ro,nosuid,nodev,remount,bind"),
            "{}",
            l[n - 5]
        );
        assert_eq!(l[n - 4], "chdir /tmp");
        assert_eq!(l[n - 3], "pivot_root . .");
        assert_eq!(l[n - 2], "umount .");
        assert_eq!(l[n - 1], "chdir /");
        // Parents before children.
        assert!(find(&l, "mkdir /tmp/dev 755") < find(&l, "/tmp/dev/null"));
    }

    #[test]
    fn with_a_template_only_the_sandbox_mounts_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy_with(dir.path());
        let sys = RecordingSys::default();
        let tree = OwnedFd::from(std::fs::File::open("/").unwrap());
        build_minimal_root(
            &sys,
            &policy,
            &RootOptions {
                switch_user: true,
                pid_ns: true,
            },
            Some(&tree),
        )
        .unwrap();
        let l = sys.lines();
        assert!(l[0].starts_with("mount - / - rec,private"), "{}", l[0]);
        // The clone replaces the staging tmpfs, after the sources are open.
        let attach = find(&l, "attach tree /tmp");
        assert!(find(&l, &format!("open {}", dir.path().join("plugin").display())) < attach);
        assert!(!l.iter().any(|x| x.starts_with("mount tmpfs /tmp tmpfs")));
        // Its own binds, remounted as before; private /tmp and fresh /proc.
        let bind = find(&l, "/tmp/plugin - bind -");
        assert!(l[bind + 1].contains("/tmp/plugin - ro,nosuid,nodev,remount,bind"));
        find(&l, "/tmp/work - bind -");
        find(&l, "mount tmpfs /tmp/tmp tmpfs nosuid,nodev mode=1777");
        find(&l, "mount proc /tmp/proc proc nosuid,nodev,noexec");
        // Nothing the template has: no system binds, devices, /etc files,
        // directories (the clone is read-only).
        // (The identity binds are not even opened.)
        let usr = dir.path().join("usr").display().to_string();
        for gone in [
            &*usr,
            "/tmp/dev/",
            "write /tmp/etc",
            "mkdir",
            "create",
            "symlink",
        ] {
            assert!(
                !l.iter().any(|x| x.contains(gone)),
                "{gone}:\n{}",
                l.join("\n")
            );
        }
        let n = l.len();
        assert!(l[n - 5].contains("mount - /tmp - ro,nosuid,nodev,remount,bind"));
        assert_eq!(l[n - 3], "pivot_root . .");
        assert_eq!(l[n - 2], "umount .");
    }

    #[test]
    fn small_world_readable_etc_files_are_copied_not_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = policy_with(dir.path());
        // Real /etc files, as the default system paths name them.
        let etc: Vec<&str> = ["/etc/services", "/etc/protocols", "/etc/nsswitch.conf"]
            .into_iter()
            .filter(|p| Path::new(p).is_file())
            .collect();
        assert!(
            !etc.is_empty(),
            "this host has none of the usual /etc files"
        );
        for f in &etc {
            policy.binds.push(Bind::system(*f));
        }
        // A private file is bound, never copied: the copy would belong to
        // the sandbox's creator and could widen who reads it.
        let private = dir.path().join("private");
        std::fs::write(&private, "x").unwrap();
        std::fs::set_permissions(
            &private,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        policy.binds.push(Bind::read_only(&private, "/etc/private"));
        let sys = RecordingSys::default();
        build_minimal_root(
            &sys,
            &policy,
            &RootOptions {
                switch_user: false,
                pid_ns: true,
            },
            None,
        )
        .unwrap();
        let l = sys.lines();
        for f in &etc {
            find(&l, &format!("copy {f} /tmp{f}"));
            assert!(
                !l.iter()
                    .any(|x| x.starts_with("mount") && x.contains(&format!("/tmp{f} "))),
                "{f} was bound:\n{}",
                l.join("\n")
            );
        }
        find(&l, "/tmp/etc/private - bind -");
        // Directories are still bound.
        find(&l, "/tmp/plugin - bind -");
    }

    #[test]
    fn copyable_needs_a_small_world_readable_regular_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![b'x'; 100]).unwrap();
        let meta = |mode| {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::metadata(&f).unwrap()
        };
        assert!(crate::sys::copyable(&meta(0o644), 100));
        assert!(!crate::sys::copyable(&meta(0o644), 99));
        assert!(!crate::sys::copyable(&meta(0o640), 100));
        assert!(!crate::sys::copyable(
            &std::fs::metadata(dir.path()).unwrap(),
            1 << 20
        ));
    }

    #[test]
    fn missing_required_source_fails_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = policy_with(dir.path());
        policy
            .binds
            .push(Bind::read_only(dir.path().join("nope"), "/data"));
        let sys = RecordingSys::default();
        let err = build_minimal_root(
            &sys,
            &policy,
            &RootOptions {
                switch_user: false,
                pid_ns: true,
            },
            None,
        )
        .unwrap_err();
        assert_eq!(err.step, Step::Mounts);
        assert!(
            err.detail.contains("nope") && err.detail.contains("/data"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn failing_mount_is_reported_with_step() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy_with(dir.path());
        let sys = RecordingSys {
            fail_on: Some("pivot_root".into()),
            ..Default::default()
        };
        let err = build_minimal_root(
            &sys,
            &policy,
            &RootOptions {
                switch_user: false,
                pid_ns: true,
            },
            None,
        )
        .unwrap_err();
        assert_eq!(err.step, Step::PivotRoot);
        assert_eq!(err.errno, Some(libc::EPERM));
    }

    #[test]
    fn target_through_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = policy_with(dir.path());
        policy.binds.push(Bind::read_only(
            dir.path().join("usr"),
            dir.path().join("bin/inner"),
        ));
        let err = build_minimal_root(
            &RecordingSys::default(),
            &policy,
            &RootOptions {
                switch_user: false,
                pid_ns: true,
            },
            None,
        )
        .unwrap_err();
        assert!(err.detail.contains("symlink"), "{}", err.detail);
    }

    #[test]
    fn remap_rewrites_sandbox_paths() {
        let mut p = Policy::sandboxed();
        p.binds.push(Bind::read_only("/store/p", "/plugin"));
        p.binds.push(Bind::read_only("/store/data", "/plugin/data"));
        p.work_dir = Some(PathBuf::from("/store/w"));
        let r = Remap::new(&p);
        assert_eq!(
            r.path(Path::new("/plugin/run.py")),
            PathBuf::from("/store/p/run.py")
        );
        assert_eq!(
            r.path(Path::new("/plugin/data/x")),
            PathBuf::from("/store/data/x")
        );
        assert_eq!(r.path(Path::new("/plugins")), PathBuf::from("/plugins"));
        assert_eq!(r.arg("/work"), "/store/w");
        assert_eq!(r.arg("--x=/plugin"), "--x=/plugin");
        assert_eq!(r.env_value("/plugin/lib:/usr/lib"), "/store/p/lib:/usr/lib");
    }
}
