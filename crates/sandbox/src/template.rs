//! The fork server's root template: the read-only system part of a minimal
//! root, built once per policy shape as a detached mount tree, which each
//! sandbox clones instead of rebuilding it.
//!
//! Building the minimal root costs ~1.5 ms per spawn, most of it the same
//! every time: a dozen system binds (`/usr`, `/lib`, `/etc/…`), six device
//! binds, `/etc` copies and generated files. The fork server is long-lived,
//! so it builds that part once, with the file-descriptor mount API, outside
//! every mount namespace (`fsmount` of a tmpfs, `open_tree(OPEN_TREE_CLONE)`
//! of each source, `move_mount` onto the detached tmpfs, then the whole tree
//! read-only). A sandbox's process clones it recursively
//! (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, ~15 µs) before it unshares
//! its mount namespace, attaches the clone as its staging root and adds
//! only its own mounts (`/plugin`, `/work`, `/tmp`, `/proc`) on mount
//! points the template already has (`mounts::build_minimal_root`).
//!
//! What keeps this as tight as a root built per spawn:
//!
//! * The shape key holds everything the template depends on (system binds
//!   and their access, the mount points of the sandbox's own binds and
//!   whether each is a file, uid, gid, hostname), so two policies share a
//!   template only when a per-spawn build would give the same tree.
//! * Every clone is a separate mount of its own; the template itself is
//!   never attached anywhere. Mounts are read-only, nosuid, nodev as in a
//!   per-spawn root, and the sandbox has no `CAP_SYS_ADMIN` to remount
//!   them (as with the host binds of a per-spawn root).
//! * A template is used only while its sources are unchanged: before each
//!   spawn the server compares `lstat`/`stat` identity and change time of
//!   every system source with those seen at build time, so a replaced
//!   `/etc/resolv.conf` or `ld.so.cache` (package managers rename a new file
//!   into place) gets a fresh template rather than a stale copy.
//! * Only for the root fork server without a user namespace: a template
//!   built in the initial user namespace is what such a sandbox would have
//!   built itself. Anything the template cannot express (a sandbox bind
//!   nested under another bind, a target under a symlink, a missing
//!   required source) makes [`shape`] or [`build`] decline, and the sandbox
//!   builds its root per spawn as before, reporting any error there.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mounts::{self, DEVICES};
use crate::policy::{Access, Policy, WORK_MOUNT};
use crate::sys::{self, LinuxSys, SourceKind, Sys};

/// `MOUNT_ATTR_*` values (`linux/mount.h`) for `sys::add_mount_attrs`.
const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;

/// Why a template could not be built; the server logs it once and sandboxes
/// build their roots per spawn.
#[derive(Debug, thiserror::Error)]
#[error("building the sandbox root template: {what}: {source}")]
pub(crate) struct TemplateError {
    what: String,
    source: io::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(io::Error) -> TemplateError {
    let what = what.into();
    move |source| TemplateError { what, source }
}

fn from_setup(f: crate::message::SetupFailure) -> TemplateError {
    TemplateError {
        source: io::Error::from_raw_os_error(f.errno.unwrap_or(libc::EIO)),
        what: f.detail,
    }
}

/// Identity and change time of a path, followed and not followed.
type Stamp = (Option<(u64, u64, i64, i64)>, Option<(u64, u64, i64, i64)>);

fn stamp(p: &Path) -> Stamp {
    let f = |m: std::fs::Metadata| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec());
    (
        std::fs::symlink_metadata(p).ok().map(f),
        std::fs::metadata(p).ok().map(f),
    )
}

/// A built template: the detached tree and what its sources looked like.
pub(crate) struct RootTemplate {
    /// The detached, read-only root tree (close-on-exec).
    pub tree: OwnedFd,
    stamps: Vec<(PathBuf, Stamp)>,
    checked: Instant,
}

/// How long a check of the sources stays valid. Two `stat`s of ~30 sources
/// cost ~0.1 ms, too much for every spawn; a file replaced less than this
/// before a spawn is a race the per-spawn build has too (it just loses it
/// by a smaller margin).
const RECHECK: Duration = Duration::from_secs(1);

impl RootTemplate {
    /// Whether every system source is still the file it was at build time
    /// (checked at most every [`RECHECK`]).
    pub(crate) fn current(&mut self) -> bool {
        if self.checked.elapsed() < RECHECK {
            return true;
        }
        self.checked = Instant::now();
        self.stamps.iter().all(|(p, s)| stamp(p) == *s)
    }
}

/// The sandbox's own mount points: bind targets that are not identity
/// binds, with whether the source is a directory, plus `/work`.
fn own_targets(policy: &Policy) -> Option<Vec<(PathBuf, bool)>> {
    let mut own = Vec::new();
    for b in policy.binds.iter().filter(|b| b.source != b.target) {
        // Follow, as the per-spawn open of a non-identity source does.
        match std::fs::metadata(&b.source) {
            Ok(m) => own.push((b.target.clone(), m.is_dir())),
            Err(_) if !b.required => {}
            // Let the per-spawn build report the missing source.
            Err(_) => return None,
        }
    }
    if policy.work_dir.is_some() {
        own.push((PathBuf::from(WORK_MOUNT), true));
    }
    Some(own)
}

/// The template key for a confined policy, or `None` when its root cannot
/// come from a template (see the module doc).
pub(crate) fn shape(policy: &Policy) -> Option<String> {
    let own = own_targets(policy)?;
    let identity: Vec<&Path> = policy
        .binds
        .iter()
        .filter(|b| b.source == b.target)
        .map(|b| b.target.as_path())
        .collect();
    let fixed = [
        Path::new("/dev"),
        Path::new("/etc"),
        Path::new("/tmp"),
        Path::new("/proc"),
    ];
    for (t, _) in &own {
        let clash = |other: &Path| t.starts_with(other) || other.starts_with(t);
        // A mount point inside another mount, or one holding others, needs
        // the per-spawn order (parents bound first, then children created in
        // them); the template only has flat mount points.
        if depth(t) == 0
            || identity.iter().any(|o| clash(o))
            || fixed.iter().any(|o| clash(o))
            || own.iter().any(|(o, _)| o != t && clash(o))
        {
            return None;
        }
    }
    let binds: Vec<(&Path, bool, bool)> = policy
        .binds
        .iter()
        .filter(|b| b.source == b.target)
        .map(|b| (b.target.as_path(), b.access == Access::ReadOnly, b.required))
        .collect();
    serde_json::to_string(&(binds, own, policy.uid, policy.gid, &policy.hostname)).ok()
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count()
}

fn rel(target: &Path) -> &Path {
    target.strip_prefix("/").unwrap_or(target)
}

/// Clones the mount `src` names and mounts the copy at `target` in the
/// template, adding `attrs`.
fn bind_into(
    root: &OwnedFd,
    src: &OwnedFd,
    target: &Path,
    attrs: u64,
) -> Result<(), TemplateError> {
    let what = || format!("binding {}", target.display());
    let clone = sys::clone_mount(src.as_fd(), false).map_err(err(what()))?;
    if attrs != 0 {
        sys::add_mount_attrs(clone.as_fd(), attrs).map_err(err(what()))?;
    }
    sys::mount_at(clone.as_fd(), root.as_fd(), rel(target)).map_err(err(what()))
}

/// Builds the template for `policy` (whose [`shape`] is `Some`).
pub(crate) fn build(policy: &Policy) -> Result<RootTemplate, TemplateError> {
    let own = own_targets(policy).ok_or_else(|| TemplateError {
        what: "a required bind source".into(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    let root = sys::detached_tmpfs(&[("mode", "0755"), ("size", "4m"), ("nr_inodes", "8192")])
        .map_err(err("creating the tmpfs"))?;
    // Path operations reach the detached tree through its descriptor's
    // magic link; mounts go through the descriptor itself.
    let base = PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd()));
    let s: &dyn Sys = &LinuxSys;

    let mut stamps = Vec::new();
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for bind in policy.binds.iter().filter(|b| b.source == b.target) {
        if !seen.insert(bind.target.clone()) {
            continue;
        }
        stamps.push((bind.source.clone(), stamp(&bind.source)));
        let opened = mounts::open_identity_source(s, bind, &policy.binds).map_err(from_setup)?;
        if let Some(o) = opened {
            entries.push((bind, o));
        }
    }
    entries.sort_by_key(|(b, _)| depth(&b.target));
    let links: Vec<&Path> = entries
        .iter()
        .filter(|(_, o)| matches!(o.kind, SourceKind::Symlink(_)))
        .map(|(b, _)| b.target.as_path())
        .collect();
    if entries.iter().any(|(b, _)| {
        links
            .iter()
            .any(|l| *l != b.target && b.target.starts_with(l))
    }) {
        return Err(TemplateError {
            what: "a bind target lies under a symlink".into(),
            source: io::ErrorKind::InvalidInput.into(),
        });
    }
    let mut bound = HashSet::new();
    for (bind, src) in &entries {
        let at = base.join(rel(&bind.target));
        let mk = |e| err(format!("creating {}", bind.target.display()))(e);
        mounts::make_parents(s, &base, &bind.target).map_err(from_setup)?;
        bound.insert(bind.target.clone());
        let ro = if bind.access == Access::ReadOnly {
            ATTR_RDONLY
        } else {
            0
        };
        match &src.kind {
            SourceKind::Symlink(to) => s.symlink(to, &at).map_err(mk)?,
            SourceKind::Dir => {
                s.mkdir(&at, 0o755).map_err(mk)?;
                bind_into(&root, &src.fd, &bind.target, ro | ATTR_NOSUID | ATTR_NODEV)?;
            }
            SourceKind::File => {
                // Same rule as the per-spawn root: small world-readable
                // /etc files are copied.
                if ro != 0
                    && bind.target.starts_with("/etc")
                    && s.copy_small_file(src, &at, mounts::ETC_COPY_MAX)
                        .map_err(err(format!("copying {}", bind.target.display())))?
                {
                    continue;
                }
                s.create_file(&at, 0o644).map_err(mk)?;
                bind_into(&root, &src.fd, &bind.target, ro | ATTR_NOSUID | ATTR_NODEV)?;
            }
        }
    }

    // /dev as in `mounts::build_dev`: a directory of the root with the
    // devices bound in and the usual links.
    let dev = base.join("dev");
    s.mkdir(&dev, 0o755).map_err(err("creating /dev"))?;
    for d in DEVICES {
        let path = Path::new("/dev").join(d);
        let src = match s.open_path(&path, true) {
            Ok(o) => o,
            Err(_) if d == "tty" => continue,
            Err(e) => return Err(err(format!("opening {}", path.display()))(e)),
        };
        s.create_file(&dev.join(d), 0o666)
            .map_err(err(format!("creating {}", path.display())))?;
        bind_into(&root, &src.fd, &path, 0)?;
    }
    for (link, to) in mounts::DEV_LINKS {
        s.symlink(Path::new(to), &dev.join(link))
            .map_err(err(format!("creating /dev/{link}")))?;
    }
    mounts::write_etc(s, &base, policy, &bound).map_err(from_setup)?;

    // Mount points for what each sandbox adds.
    let mut points: Vec<(PathBuf, bool, u32)> =
        own.into_iter().map(|(t, d)| (t, d, 0o755)).collect();
    points.push((PathBuf::from("/tmp"), true, 0o755));
    points.push((PathBuf::from("/proc"), true, 0o555));
    for (t, is_dir, mode) in points {
        let at = base.join(rel(&t));
        mounts::make_parents(s, &base, &t).map_err(from_setup)?;
        if is_dir {
            s.mkdir(&at, mode)
        } else {
            s.create_file(&at, 0o644)
        }
        .map_err(err(format!("creating mount point {}", t.display())))?;
    }
    sys::add_mount_attrs(root.as_fd(), ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV)
        .map_err(err("making the root read-only"))?;
    Ok(RootTemplate {
        tree: root,
        stamps,
        checked: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Bind;

    fn policy(dir: &Path) -> Policy {
        let plugin = dir.join("plugin");
        std::fs::create_dir_all(&plugin).unwrap();
        let mut p = Policy::sandboxed();
        p.binds.push(Bind::read_only(&plugin, "/plugin"));
        p.work_dir = Some(dir.to_path_buf());
        p
    }

    #[test]
    fn shape_declines_what_a_flat_template_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let base = policy(dir.path());
        assert!(shape(&base).is_some());
        for target in ["/plugin/data", "/dev/x", "/tmp/x", "/usr/x", "/"] {
            let mut p = base.clone();
            p.binds.push(Bind::read_only(dir.path(), target));
            assert!(shape(&p).is_none(), "{target} accepted");
        }
        // A missing required source: the per-spawn build reports it.
        let mut p = base.clone();
        p.binds
            .push(Bind::read_only(dir.path().join("nope"), "/data"));
        assert!(shape(&p).is_none());
    }

    #[test]
    fn shape_keys_what_the_tree_depends_on() {
        let dir = tempfile::tempdir().unwrap();
        let base = policy(dir.path());
        let key = shape(&base).unwrap();
        // Another plugin dir at the same target: same tree, same template.
        let other = tempfile::tempdir().unwrap();
        let mut p = policy(other.path());
        p.work_dir = base.work_dir.clone();
        assert_eq!(shape(&p).unwrap(), key);
        let changes: [&dyn Fn(&mut Policy); 5] = [
            &|p| p.uid = 1234,
            &|p| p.gid = 1234,
            &|p| p.hostname = "other".into(),
            &|p| p.work_dir = None,
            &|p| p.binds.push(Bind::system("/srv")),
        ];
        for change in changes {
            let mut p = base.clone();
            change(&mut p);
            assert_ne!(shape(&p).unwrap(), key);
        }
        // A file source needs a file mount point.
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let mut p = base.clone();
        p.binds.retain(|b| b.target != Path::new("/plugin"));
        p.binds.push(Bind::read_only(&f, "/plugin"));
        assert_ne!(shape(&p).unwrap(), key);
    }

    /// Builds a real template (root only: `fsmount` and `open_tree` need
    /// `CAP_SYS_ADMIN`) and inspects it through its descriptor, without
    /// attaching it anywhere.
    #[test]
    fn built_template_is_read_only_and_complete() {
        if sys::euid() != 0 {
            eprintln!("skipped: needs root (the escape suites cover the unprivileged path)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let etc_file = dir.path().join("conf");
        std::fs::write(&etc_file, "v1").unwrap();
        let mut p = policy(dir.path());
        p.uid = 4242;
        // An identity bind of a file (not under /etc: bound, not copied).
        p.binds.push(Bind::system(&etc_file));
        let mut t = build(&p).expect("template");
        let root = PathBuf::from(format!("/proc/self/fd/{}", t.tree.as_raw_fd()));
        for d in ["usr", "plugin", "work", "tmp", "proc", "dev"] {
            assert!(root.join(d).is_dir(), "/{d} missing");
        }
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::metadata(root.join("dev/null"))
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert!(passwd.contains(":4242:"), "{passwd}");
        assert_eq!(
            std::fs::read_to_string(root.join(rel(&etc_file))).unwrap(),
            "v1"
        );
        // Nothing in it is writable: not the root, not a system bind.
        for at in ["x", "usr/plugd-template-test", "etc/x"] {
            let e = std::fs::write(root.join(at), "x").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{at}: {e}");
        }
        assert!(t.current());
        // A source replaced by rename (as package managers do): the bind
        // still shows the old file, so the template must be found stale
        // (once the recheck interval has passed).
        let new = dir.path().join("conf.new");
        std::fs::write(&new, "v2").unwrap();
        std::fs::rename(&new, &etc_file).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join(rel(&etc_file))).unwrap(),
            "v1"
        );
        assert!(t.current(), "rechecked before the interval");
        t.checked -= RECHECK;
        assert!(!t.current());
        // A clone is a separate tree with the same content.
        let clone = sys::clone_mount(t.tree.as_fd(), true).unwrap();
        let croot = PathBuf::from(format!("/proc/self/fd/{}", clone.as_raw_fd()));
        assert!(croot.join("usr/bin").is_dir());
    }
}
