//! Every raw system call the sandbox makes, and the only module with `unsafe`.
//!
//! Two kinds of calls live here:
//!
//! * [`Sys`], the seam for the *setup steps* (namespaces, mounts, identity,
//!   capabilities, rlimits, hostname, loopback). The helper runs them through
//!   `&dyn Sys`, so unit tests drive the same step code against
//!   [`test::RecordingSys`], which records each call instead of touching the
//!   kernel (the habit of youki's `Syscall` trait).
//! * free functions for process control (fork, signal masks, `wait4`,
//!   `execve`, `_exit`), which have no meaningful double: they are exercised
//!   by the integration tests against the real kernel.
//!
//! Where `rustix` offers a safe wrapper it is used; `libc` is used only for
//! what `rustix` does not expose (fork, clone3, signal sets, `wait4` with
//! rusage, `mount(2)` with raw flags, the loopback ioctl, `close_range`, the
//! Landlock version query).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Converts a path or string to a C string, refusing interior NUL bytes
/// (which the kernel would silently truncate at).
pub(crate) fn cstring(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} contains a NUL byte", s.as_ref()),
        )
    })
}

/// What a bind source turned out to be when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// A directory.
    Dir,
    /// Anything that is not a directory: regular file, device node, socket.
    File,
    /// A symbolic link (only reported when the open did not follow links),
    /// with the link's contents.
    Symlink(PathBuf),
}

/// A bind source opened with `O_PATH`, so that it stays reachable after the
/// staging root has been mounted on top of part of the host tree.
#[derive(Debug)]
pub(crate) struct OpenedPath {
    /// The `O_PATH` descriptor.
    pub fd: OwnedFd,
    /// The path it was opened from (for messages; never reopened by name).
    pub path: PathBuf,
    /// What the descriptor refers to.
    pub kind: SourceKind,
    /// `MS_*` flags of the mount the source lives on that a bind remount must
    /// keep (nosuid, nodev, noexec, atime flags); in a user namespace the
    /// kernel refuses a remount that would clear a locked one.
    pub locked_flags: u64,
}

impl OpenedPath {
    /// The magic-link path that names this descriptor for `mount(2)`.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// A resource limit the sandbox sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Cpu,
    FileSize,
    OpenFiles,
    Core,
    Stack,
    Processes,
    AddressSpace,
}

/// The setup steps' view of the kernel. See the module doc.
pub(crate) trait Sys {
    /// `unshare(2)` with raw `CLONE_NEW*` flags.
    fn unshare(&self, flags: i32) -> io::Result<()>;
    /// `setns(fd, CLONE_NEWNET)`: enters an existing network namespace.
    fn setns_net(&self, fd: BorrowedFd<'_>) -> io::Result<()>;
    /// Writes a whole file (uid maps, cgroup knobs, generated `/etc` files).
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// Opens `path` with `O_PATH` (following a final symlink only if `follow`).
    fn open_path(&self, path: &Path, follow: bool) -> io::Result<OpenedPath>;
    /// `mount(2)` with raw `MS_*` flags.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// `umount2(target, MNT_DETACH)`.
    fn umount_detach(&self, target: &Path) -> io::Result<()>;
    /// `move_mount(2)` of a detached mount tree onto `target` (a clone of
    /// the fork server's root template, see `template`).
    fn attach_tree(&self, tree: BorrowedFd<'_>, target: &Path) -> io::Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// `mkdir(2)`; an existing directory is not an error.
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates an empty regular file to bind a file onto.
    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Copies the opened source to a new file `to` with the source's
    /// permission bits, if it is a world-readable regular file of at most
    /// `max` bytes; returns whether it copied (see `mounts::populate`).
    fn copy_small_file(&self, src: &OpenedPath, to: &Path, max: u64) -> io::Result<bool>;
    /// `symlink(2)`: creates `link` pointing to `points_to`.
    fn symlink(&self, points_to: &Path, link: &Path) -> io::Result<()>;
    /// `chown(2)` of one path (not recursive).
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// `setrlimit(2)`.
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> io::Result<()>;
    /// `setgroups([])`, `setresgid(gid×3)`, `setresuid(uid×3)`, in that order.
    fn set_ids(&self, uid: u32, gid: u32) -> io::Result<()>;
    /// Drops every capability from the bounding set.
    fn drop_bounding_set(&self) -> io::Result<()>;
    /// Clears the ambient set and the effective, permitted and inheritable sets.
    fn clear_capabilities(&self) -> io::Result<()>;
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    fn set_no_new_privs(&self) -> io::Result<()>;
    /// Brings `lo` up in the current network namespace.
    fn loopback_up(&self) -> io::Result<()>;
}

/// The real kernel.
pub(crate) struct LinuxSys;

impl Sys for LinuxSys {
    fn unshare(&self, flags: i32) -> io::Result<()> {
        // SAFETY: `unshare` only changes this process's namespace membership.
        // The helper calls it while single-threaded and never with
        // CLONE_FILES/CLONE_FS, the flags that make rustix mark it unsafe
        // (threads observing a split descriptor table).
        let rc = unsafe { libc::unshare(flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn setns_net(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        rustix::thread::move_into_link_name_space(
            fd,
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        Ok(())
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        // One write call: cgroup knobs and uid_map require the whole value in
        // a single write(2).
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.write_all(contents)
    }

    fn open_path(&self, path: &Path, follow: bool) -> io::Result<OpenedPath> {
        use rustix::fs::{Mode, OFlags};
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = rustix::fs::open(path, flags, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        let file_type = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let kind = match file_type {
            rustix::fs::FileType::Directory => SourceKind::Dir,
            rustix::fs::FileType::Symlink => SourceKind::Symlink(std::fs::read_link(path)?),
            _ => SourceKind::File,
        };
        let locked_flags = if kind == SourceKind::Dir || kind == SourceKind::File {
            mount_flags_of(fd.as_fd())?
        } else {
            0
        };
        Ok(OpenedPath {
            fd,
            path: path.to_path_buf(),
            kind,
            locked_flags,
        })
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = source.map(cstring).transpose()?;
        let target = cstring(target)?;
        let fstype = fstype.map(cstring).transpose()?;
        let data = data.map(cstring).transpose()?;
        let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: every pointer is either null or points to a NUL-terminated
        // string owned by a local that outlives the call; `data` is a string
        // option list, which is what every filesystem we mount expects.
        let rc = unsafe {
            libc::mount(
                ptr(&source),
                target.as_ptr(),
                ptr(&fstype),
                flags as libc::c_ulong,
                ptr(&data).cast(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    }

    fn attach_tree(&self, tree: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        use rustix::mount::MoveMountFlags;
        rustix::mount::move_mount(
            tree,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
        Ok(())
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        rustix::process::pivot_root(new_root, put_old)?;
        Ok(())
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        rustix::process::chdir(path)?;
        Ok(())
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        match rustix::fs::mkdir(path, rustix::fs::Mode::from_raw_mode(mode)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(())
    }

    fn symlink(&self, points_to: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(points_to, link)
    }

    fn copy_small_file(&self, src: &OpenedPath, to: &Path, max: u64) -> io::Result<bool> {
        use std::io::{Read, Write};
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // Reopening the O_PATH descriptor reads the very inode that was
        // opened before the staging root was mounted.
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", src.path.display()));
        let f = std::fs::File::open(src.proc_path()).map_err(context)?;
        let meta = f.metadata().map_err(context)?;
        if !copyable(&meta, max) {
            return Ok(false);
        }
        let mut body = Vec::with_capacity(meta.len() as usize);
        f.take(max + 1).read_to_end(&mut body).map_err(context)?;
        if body.len() as u64 > max {
            // It grew since the fstat: bind it instead.
            return Ok(false);
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.permissions().mode() & 0o7777 & !0o7000)
            .open(to)?;
        out.write_all(&body)?;
        Ok(true)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        rustix::system::sethostname(name.as_bytes())?;
        Ok(())
    }

    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
        use rustix::process::Resource as R;
        let r = match resource {
            Resource::Cpu => R::Cpu,
            Resource::FileSize => R::Fsize,
            Resource::OpenFiles => R::Nofile,
            Resource::Core => R::Core,
            Resource::Stack => R::Stack,
            Resource::Processes => R::Nproc,
            Resource::AddressSpace => R::As,
        };
        rustix::process::setrlimit(
            r,
            rustix::process::Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )?;
        Ok(())
    }

    fn set_ids(&self, uid: u32, gid: u32) -> io::Result<()> {
        // The thread-level calls are process-level here: the helper child is
        // single-threaded, so there is no other thread left with the old ids.
        rustix::thread::set_thread_groups(&[])?;
        let gid = rustix::process::Gid::from_raw(gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid)?;
        let uid = rustix::process::Uid::from_raw(uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid)?;
        Ok(())
    }

    fn drop_bounding_set(&self) -> io::Result<()> {
        let last = last_capability();
        for cap in 0..=last {
            // SAFETY: PR_CAPBSET_DROP takes a capability number and no
            // pointers; an unknown number fails with EINVAL, which we report.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("dropping capability {cap} from the bounding set: {e}"),
                ));
            }
        }
        Ok(())
    }

    fn clear_capabilities(&self) -> io::Result<()> {
        rustix::thread::clear_ambient_capability_set()?;
        let empty = rustix::thread::CapabilitySet::empty();
        rustix::thread::set_capabilities(
            None,
            rustix::thread::CapabilitySets {
                effective: empty,
                permitted: empty,
                inheritable: empty,
            },
        )?;
        Ok(())
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        rustix::thread::set_no_new_privs(true)?;
        Ok(())
    }

    fn loopback_up(&self) -> io::Result<()> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let sock = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the interface name from `req` and writes
        // the flags into its union; `req` is a live, correctly sized ifreq.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: SIOCGIFFLAGS succeeded, so the union holds `ifru_flags`.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP as libc::c_short);
        // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn mount_flags_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    use rustix::fs::StatVfsMountFlags as F;
    let st = rustix::fs::fstatvfs(fd)?;
    let mut out = 0u64;
    for (have, ms) in [
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag.contains(have) {
            out |= ms;
        }
    }
    Ok(out)
}

/// Whether a bind source may be copied instead of bound: a regular file,
/// readable by everyone (so the copy, owned by the sandbox's creator, shows
/// nobody anything the bind would not have), and small.
pub(crate) fn copyable(meta: &std::fs::Metadata, max: u64) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o004 != 0 && meta.len() <= max
}

/// Highest capability number the running kernel knows (40 on Linux 6.x).
pub(crate) fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

// ---------------------------------------------------------------------------
// Process control: no double, exercised by the integration tests.
// ---------------------------------------------------------------------------

/// Result of [`fork`].
pub(crate) enum Forked {
    /// We are the child.
    Child,
    /// We are the parent; the child's pid.
    Parent(i32),
}

/// `fork(2)`.
///
/// # Safety
///
/// The calling process must be single-threaded: after fork the child may
/// allocate and take locks, which is only sound when no other thread could
/// have held them at the moment of the fork. The helper checks this with
/// [`thread_count`] before it forks.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller guarantees the process is single-threaded.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `clone3(2)` arguments (`struct clone_args`, first version with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`fork`], but the child is born inside the cgroup v2 directory
/// `cgroup` (`clone3` with `CLONE_INTO_CGROUP`), so it never has to migrate:
/// a migration takes cgroup v2's global threadgroup lock, whose writer waits
/// for an RCU grace period. Errors with `ENOSYS`/`EINVAL`/`E2BIG` on kernels
/// before 5.7; the caller then forks and migrates.
///
/// # Safety
///
/// As for [`fork`]: the process must be single-threaded. In addition the
/// child must not rely on the C library's cached thread id (a raw `clone3`
/// bypasses glibc's fork bookkeeping): it must not call `raise`, `abort` or
/// pthread functions that check ownership. The helper child only makes
/// system calls, allocates, and ends in `execve` or `_exit`.
pub(crate) unsafe fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> io::Result<Forked> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: no CLONE_VM, and the caller upholds the single-thread
    // requirement (see `clone3`).
    match unsafe { clone3(&args) }? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// The raw `clone3(2)` call both forks share: 0 in the child, the new pid in
/// the caller.
///
/// # Safety
///
/// `args` must hold no `CLONE_VM` and a zero stack, so the child continues on
/// a copy of this stack exactly like fork(2); every pointer in `args` must be
/// live for the call; and the caller must be single-threaded, as for
/// [`fork_into_cgroup`].
unsafe fn clone3(args: &CloneArgs) -> io::Result<libc::c_long> {
    // SAFETY: `args` is a live, correctly sized clone_args; the rest is the
    // caller's contract above.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Result of [`clone_sibling`].
pub(crate) enum Sibling {
    /// We are the new process.
    Child,
    /// We are the caller; the new process's pid and a pidfd for it.
    Caller(i32, OwnedFd),
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_PARENT: u64 = 0x8000;

/// Forks a *sibling*: `clone3(CLONE_PARENT | CLONE_PIDFD)`, so the new
/// process is a child of this process's parent. The fork server uses it so
/// every helper it starts is the host's own child, which the host waits for
/// (and gets the exit status of) exactly as if it had spawned it; the pidfd
/// names the process race-free until then.
///
/// # Safety
///
/// As for [`fork_into_cgroup`]: single-threaded caller, and the child must
/// not rely on the C library's cached thread id (no `raise`, `abort` or
/// pthread ownership checks). The fork server ignores `SIGABRT` so that a
/// stray `raise` in a child, which glibc would aim at the server's thread
/// id, cannot kill it; the child restores the default at once.
pub(crate) unsafe fn clone_sibling() -> io::Result<Sibling> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: CLONE_PARENT | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // Ignored with CLONE_PARENT (the kernel copies the caller's own exit
        // signal, SIGCHLD for a process spawned by std), but must be valid.
        exit_signal: 0,
        ..Default::default()
    };
    // SAFETY: `pidfd` points to a live c_int for the duration of the call; no
    // CLONE_VM, and the caller upholds the single-thread requirement (see
    // `clone3`).
    match unsafe { clone3(&args) }? {
        0 => Ok(Sibling::Child),
        pid => {
            // SAFETY: with CLONE_PIDFD a successful clone3 stored a new
            // descriptor in `pidfd` that nothing else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
            Ok(Sibling::Caller(pid as i32, fd))
        }
    }
}

/// Makes `fds` this process's stdin, stdout and stderr (inheritable).
/// Each must be numbered 3 or above (the fork server keeps 0–2 open, so
/// received descriptors always are), or installing one could overwrite
/// another before it is installed.
pub(crate) fn install_stdio(fds: [OwnedFd; 3]) -> io::Result<()> {
    if fds.iter().any(|fd| fd.as_raw_fd() < 3) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a stdio descriptor to install is itself numbered 0-2",
        ));
    }
    for (target, fd) in fds.iter().enumerate() {
        // SAFETY: dup2 takes no pointers; `fd` is a live descriptor and
        // `target` is one of 0–2, which this process owns. The copy does
        // not inherit close-on-exec.
        if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Ignores `signal` (the fork server's `SIGABRT`; see [`clone_sibling`]).
pub(crate) fn ignore_signal(signal: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid handler value for any catchable signal.
    if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` has data to read within `wait` (a poll with that timeout).
pub(crate) fn readable_within(fd: BorrowedFd<'_>, wait: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: wait.as_secs() as _,
        tv_nsec: wait.subsec_nanos() as _,
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(n) => n > 0,
        // Treat errors as "something to read": the read will report them.
        Err(_) => true,
    }
}

/// Number of threads in this process.
pub(crate) fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// A saved signal mask.
pub(crate) struct SigMask(libc::sigset_t);

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before any sigaddset; the
    // all-zero value passed in is only storage.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` and returns the previous mask.
pub(crate) fn block_signals(signals: &[i32]) -> io::Result<SigMask> {
    let set = sigset(signals);
    // SAFETY: both pointers refer to live sigset_t values.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SigMask(old))
    }
}

/// Restores a mask saved by [`block_signals`]. Blocked signals survive
/// `execve`, so the child must do this before it execs the plugin.
pub(crate) fn restore_signal_mask(mask: &SigMask) -> io::Result<()> {
    // SAFETY: `mask.0` is a valid sigset_t; the old-mask pointer may be null.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `timeout` for one of the (blocked) `signals`.
/// Returns `None` on timeout or interruption.
pub(crate) fn wait_signal(signals: &[i32], timeout: Duration) -> io::Result<Option<i32>> {
    let set = sigset(signals);
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are live; the siginfo pointer may be null.
    let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if rc >= 0 {
        return Ok(Some(rc));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

/// Resets `signal` to its default disposition. The helper binary starts with
/// SIGPIPE ignored (the Rust runtime does that), and an ignored disposition
/// survives `execve`: plugins must start with the default.
pub(crate) fn set_default_disposition(signal: i32) -> io::Result<()> {
    // SAFETY: SIG_DFL is a valid handler value for any catchable signal.
    if unsafe { libc::signal(signal, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

/// Resource usage reported by `wait4`/`getrusage`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub cpu: Duration,
    pub max_rss_bytes: u64,
}

fn usage_from(ru: &libc::rusage) -> Usage {
    let tv =
        |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_bytes: (ru.ru_maxrss.max(0) as u64) * 1024,
    }
}

/// `wait4(-1, WNOHANG)`: reaps any one exited child.
pub(crate) fn reap_any() -> io::Result<Option<(i32, WaitStatus, Usage)>> {
    let mut status = 0;
    // SAFETY: the status and rusage pointers refer to live locals.
    let (pid, ru) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru);
        (pid, ru)
    };
    match pid {
        0 => Ok(None),
        -1 => {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ECHILD) {
                Ok(None)
            } else {
                Err(e)
            }
        }
        pid => {
            let ws = if libc::WIFEXITED(status) {
                WaitStatus::Exited(libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                WaitStatus::Signaled(libc::WTERMSIG(status))
            } else {
                // Stopped/continued are not requested (no WUNTRACED).
                WaitStatus::Exited(0)
            };
            Ok(Some((pid, ws, usage_from(&ru))))
        }
    }
}

/// Blocking `waitpid(pid)`.
pub(crate) fn wait_pid(pid: i32) -> io::Result<WaitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: the status pointer refers to a live local.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(if libc::WIFSIGNALED(status) {
                WaitStatus::Signaled(libc::WTERMSIG(status))
            } else {
                WaitStatus::Exited(libc::WEXITSTATUS(status))
            });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Takes ownership of a descriptor number inherited from the host, after
/// checking that it is open.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("report descriptor {fd} collides with stdio"),
        ));
    }
    // SAFETY: F_GETFD takes no pointers; it only tells whether `fd` is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the host passed this descriptor to this process for exactly
    // this purpose; nothing else in the (fresh, single-threaded) helper has
    // taken ownership of it, so owning and eventually closing it is sound.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `getrusage(RUSAGE_CHILDREN)`: all waited-for descendants.
pub(crate) fn children_usage() -> Usage {
    // SAFETY: the rusage pointer refers to a live local.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) != 0 {
            return Usage::default();
        }
        usage_from(&ru)
    }
}

/// `kill(2)`; a negative `pid` names a process group.
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes no pointers.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `execve(2)`; only returns on failure.
pub(crate) fn execve(program: &Path, argv: &[CString], envp: &[CString]) -> io::Error {
    let program = match cstring(program) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and their strings are owned by
    // `argv`/`envp`, which outlive the call.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `_exit(2)`: ends the process without running destructors or flushing
/// buffers that a forked child shares with its parent.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Ends this process with `signal`, the way the child ended, so the caller's
/// `ExitStatus::signal()` reports it. Falls back to exit code 128+signal.
pub(crate) fn die_by_signal(signal: i32) -> ! {
    let _ = set_default_disposition(signal);
    let all = [signal];
    let set = sigset(&all);
    // SAFETY: unblocking a live sigset; kill takes no pointers.
    unsafe {
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
    }
    exit_now(128 + signal)
}

/// Marks every descriptor from 3 up close-on-exec, so nothing the host leaked
/// to the helper reaches the plugin.
pub(crate) fn cloexec_from_3() -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes no pointers; with CLOSE_RANGE_CLOEXEC it only
    // sets a flag and closes nothing.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates a close-on-exec pipe: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Sets or clears close-on-exec on `fd`.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = if on {
        rustix::io::FdFlags::CLOEXEC
    } else {
        rustix::io::FdFlags::empty()
    };
    rustix::io::fcntl_setfd(fd, flags)?;
    Ok(())
}

/// Duplicates `fd` to a number ≥ 3 (close-on-exec), so `Command`'s stdio
/// setup, which writes descriptors 0–2, can never overwrite it.
pub(crate) fn dup_above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// Arranges for `fd` to be inherited by the program `command` runs, without
/// making it inheritable by anything else the (multithreaded) host spawns
/// meanwhile: it stays close-on-exec in the host and is cleared only in the
/// forked child, between fork and exec.
pub(crate) fn inherit_in_child(command: &mut std::process::Command, fd: RawFd) {
    // SAFETY: the closure runs in the forked child of a possibly
    // multithreaded process, where only async-signal-safe calls are allowed
    // (see `CommandExt::pre_exec`). It makes exactly one `fcntl(2)` call, which
    // is async-signal-safe, allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether `fd`'s other end has been closed (used by the child to notice that
/// the helper died before `PR_SET_PDEATHSIG` was armed).
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match rustix::event::poll(
        &mut fds,
        Some(&rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    ) {
        Ok(_) => fds[0].revents().contains(PollFlags::HUP),
        Err(_) => true,
    }
}

/// Arms `SIGKILL` on parent death. Cleared by the kernel on any credential
/// change, so the child arms it again after switching uid.
pub(crate) fn kill_on_parent_death() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    Ok(())
}

/// `setsid(2)`: a new session without a controlling terminal, so the plugin
/// cannot reach the host's terminal (`TIOCSTI` injection and the like).
pub(crate) fn setsid() -> io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// `prctl(PR_SET_CHILD_SUBREAPER)`: orphans of a trusted plugin are
/// re-parented to the helper, which reaps and accounts for them.
pub(crate) fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(
        rustix::process::Pid::from_raw(1).expect("1 is a valid pid"),
    ))
    .map_err(Into::into)
}

/// The running kernel's Landlock ABI version, or the errno that says why
/// there is none (`EOPNOTSUPP`: built but disabled; `ENOSYS`: not built).
pub(crate) fn landlock_abi() -> Result<i32, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the syscall reads no memory (attr is
    // null, size 0) and returns the ABI number.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc >= 0 {
        Ok(rc as i32)
    } else {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOSYS))
    }
}

/// Effective uid of this process.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Effective gid of this process.
pub(crate) fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// This process's pid.
pub(crate) fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// Moves the calling *thread* into the network namespace of `pid` (used on
/// a throwaway thread to open a socket inside a sandbox's private network).
pub(crate) fn enter_netns_of(pid: u32) -> io::Result<()> {
    let f = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

/// A detached tmpfs (`fsopen` + `fsmount`), nosuid and nodev, to build the
/// fork server's root template in without touching any mount namespace.
pub(crate) fn detached_tmpfs(options: &[(&str, &str)]) -> io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (k, v) in options {
        rustix::mount::fsconfig_set_string(&fs, *k, *v)?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    Ok(rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?)
}

/// `open_tree(fd, "", OPEN_TREE_CLONE)`: a detached copy of the mount `fd`
/// names (with every mount below it when `recursive`), close-on-exec.
pub(crate) fn clone_mount(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(rustix::mount::open_tree(fd, "", flags)?)
}

/// `move_mount` of the detached mount `tree` onto `at`, relative to the
/// directory `dir` (itself possibly in a detached tree; Linux ≥ 6.15).
pub(crate) fn mount_at(tree: BorrowedFd<'_>, dir: BorrowedFd<'_>, at: &Path) -> io::Result<()> {
    rustix::mount::move_mount(
        tree,
        "",
        dir,
        at,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set})`: adds `MOUNT_ATTR_*`
/// flags to one mount (a detached one too, which `mount(2)` cannot reach),
/// keeping every flag it already has. rustix has no wrapper.
pub(crate) fn add_mount_attrs(fd: BorrowedFd<'_>, set: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a NUL-terminated empty string, `attr` is a valid
    // `struct mount_attr` of the size passed, and both outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test {
    //! A [`Sys`] that records calls instead of making them.
    use super::*;
    use std::cell::RefCell;

    /// Records every call as one line of text; fails a call whose line
    /// starts with `fail_on`.
    #[derive(Default)]
    pub(crate) struct RecordingSys {
        pub calls: RefCell<Vec<String>>,
        pub fail_on: Option<String>,
    }

    impl RecordingSys {
        pub fn lines(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }

        fn record(&self, line: String) -> io::Result<()> {
            let fail = self
                .fail_on
                .as_deref()
                .is_some_and(|prefix| line.starts_with(prefix));
            self.calls.borrow_mut().push(line);
            if fail {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }
    }

    impl Sys for RecordingSys {
        fn unshare(&self, flags: i32) -> io::Result<()> {
            self.record(format!("unshare {flags:#x}"))
        }
        fn setns_net(&self, _fd: BorrowedFd<'_>) -> io::Result<()> {
            self.record("setns net".into())
        }
        fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
            self.record(format!(
                "write {} {:?}",
                path.display(),
                String::from_utf8_lossy(contents)
            ))
        }
        fn open_path(&self, path: &Path, follow: bool) -> io::Result<OpenedPath> {
            self.record(format!("open {}", path.display()))?;
            // Sources are real paths in a test directory, so the kind comes
            // from the real filesystem; the descriptor is a stand-in.
            let meta = if follow {
                std::fs::metadata(path)?
            } else {
                std::fs::symlink_metadata(path)?
            };
            let kind = if meta.file_type().is_symlink() {
                SourceKind::Symlink(std::fs::read_link(path)?)
            } else if meta.is_dir() {
                SourceKind::Dir
            } else {
                SourceKind::File
            };
            let fd = OwnedFd::from(std::fs::File::open("/dev/null")?);
            Ok(OpenedPath {
                fd,
                path: path.to_path_buf(),
                kind,
                locked_flags: 0,
            })
        }
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: u64,
            data: Option<&str>,
        ) -> io::Result<()> {
            self.record(format!(
                "mount {} {} {} {} {}",
                source.map_or("-".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("-"),
                crate::mounts::describe_flags(flags),
                data.unwrap_or("-"),
            ))
        }
        fn umount_detach(&self, target: &Path) -> io::Result<()> {
            self.record(format!("umount {}", target.display()))
        }
        fn attach_tree(&self, _tree: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
            self.record(format!("attach tree {}", target.display()))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.record(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ))
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.record(format!("chdir {}", path.display()))
        }
        fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.record(format!("mkdir {} {mode:o}", path.display()))
        }
        fn create_file(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.record(format!("touch {} {mode:o}", path.display()))
        }
        fn symlink(&self, points_to: &Path, link: &Path) -> io::Result<()> {
            self.record(format!(
                "symlink {} -> {}",
                link.display(),
                points_to.display()
            ))
        }
        fn copy_small_file(&self, src: &OpenedPath, to: &Path, max: u64) -> io::Result<bool> {
            // The stand-in descriptor says nothing about the source: judge
            // the real file the test named, as the kernel side would.
            let meta = std::fs::metadata(&src.path)?;
            if !copyable(&meta, max) {
                return Ok(false);
            }
            self.record(format!("copy {} {}", src.path.display(), to.display()))?;
            Ok(true)
        }
        fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
            self.record(format!("chown {} {uid}:{gid}", path.display()))
        }
        fn sethostname(&self, name: &str) -> io::Result<()> {
            self.record(format!("sethostname {name}"))
        }
        fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
            self.record(format!("setrlimit {resource:?} {soft} {hard}"))
        }
        fn set_ids(&self, uid: u32, gid: u32) -> io::Result<()> {
            self.record(format!("set_ids {uid}:{gid}"))
        }
        fn drop_bounding_set(&self) -> io::Result<()> {
            self.record("drop_bounding_set".into())
        }
        fn clear_capabilities(&self) -> io::Result<()> {
            self.record("clear_capabilities".into())
        }
        fn set_no_new_privs(&self) -> io::Result<()> {
            self.record("no_new_privs".into())
        }
        fn loopback_up(&self) -> io::Result<()> {
            self.record("loopback_up".into())
        }
    }
}
