//! The fork server: a pre-started, single-threaded helper that forks one
//! supervisor per spawn, so a spawn does not pay for executing the `plugd`
//! binary again (its dynamic loading, relocations and runtime start-up were
//! the largest single step of a sandboxed spawn: ~1.7 ms of ~6 ms here).
//!
//! ```text
//! host ──socketpair (SOCK_SEQPACKET)──▶ server (`plugd __sandbox-init`, serve mode)
//!   request: the same JSON `run` request the re-exec path puts in the
//!            environment, plus SCM_RIGHTS [stdin, stdout, stderr, report pipe]
//!   server:  clone3(CLONE_PARENT | CLONE_PIDFD) ──▶ helper (the host's child)
//!                                                   installs stdio, then runs
//!                                                   exactly the re-exec
//!                                                   helper's code
//!   reply:   {"reply":"spawned","pid":N} + SCM_RIGHTS [pidfd], or
//!            {"reply":"refused","reason":…}
//! ```
//!
//! Why `CLONE_PARENT`: the helper becomes the host's own child, not the
//! server's, so the host waits for it and gets its exit status as with any
//! child, the server never has children to reap, and a server that dies
//! takes no running sandbox with it. The pidfd names the helper race-free.
//!
//! The server only ever forks; everything that confines the plugin happens
//! in the forked helper, in the same code as the re-exec path
//! (`init::run`), so both paths apply the same layers — the escape suite
//! runs once per path (`tests/escape.rs`, `tests/escape_fork_server.rs`).
//! The request comes from the host over a private socketpair; the server
//! still checks its size, its descriptors and its type, and refuses what
//! does not fit instead of guessing.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use crate::init::{self, SETUP_FAILED_EXIT};
use crate::message::{InitRequest, RunSpec, SPEC_ENV};
use crate::spawn::{Helper, Monitor, SandboxCommand, SpawnError};
use crate::sys;
use crate::trace::Marks;

/// Largest request the server accepts. A run request is a few kilobytes
/// (policy, target, seccomp program); this leaves room for big environments.
const MAX_REQUEST: usize = 1 << 20;
/// Largest reply the host accepts.
const MAX_REPLY: usize = 4096;
/// Descriptors per request: stdin, stdout, stderr, report pipe.
const REQUEST_FDS: usize = 4;
/// Network namespaces the server keeps made in advance (root only).
const NETNS_POOL: usize = 4;
/// How long the server must have been idle before it makes one. Making one
/// takes ~0.6 ms of CPU and the network locks; right after a spawn that
/// would compete with the sandbox being set up (this machine has 2 cores),
/// so the pool only fills in real idle time. Under a continuous stream of
/// spawns it runs dry and sandboxes create their own, as without a pool.
/// Root templates kept at once (one per policy shape; a host runs a handful
/// of plugin kinds, so more means shapes that change, e.g. per-call binds).
const MAX_TEMPLATES: usize = 16;

/// The fork server's root templates (see `template`), by shape key.
#[derive(Default)]
struct Templates {
    on: bool,
    built: std::collections::HashMap<String, crate::template::RootTemplate>,
    /// Shapes whose build failed (logged once; those sandboxes build their
    /// roots per spawn, which reports any real error).
    failed: std::collections::HashSet<String>,
}

impl Templates {
    /// The key of a current template for this request, building one if
    /// needed; `None` when the sandbox builds its root itself.
    fn prepare(&mut self, spec: &RunSpec) -> Option<String> {
        let l = &spec.layers;
        // A template made here belongs to the initial user namespace and is
        // cloned from the host's mount namespace: only for root sandboxes
        // without a user namespace (the ones the root server runs).
        if !self.on || !l.minimal_root || !l.mount_ns || l.user_ns || sys::euid() != 0 {
            return None;
        }
        let key = crate::template::shape(&spec.policy)?;
        if self.failed.contains(&key) {
            return None;
        }
        if let Some(t) = self.built.get_mut(&key) {
            if t.current() {
                return Some(key);
            }
            self.built.remove(&key);
        }
        if self.built.len() >= MAX_TEMPLATES {
            self.built.clear();
        }
        match crate::template::build(&spec.policy) {
            Ok(t) => {
                self.built.insert(key.clone(), t);
                Some(key)
            }
            Err(e) => {
                eprintln!(
                    "plugd sandbox fork server: {e}; sandboxes of this shape build their root per spawn"
                );
                self.failed.insert(key);
                None
            }
        }
    }
}

const NETNS_IDLE: Duration = Duration::from_millis(50);

/// The server's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
enum Reply {
    /// A helper was forked; its pidfd travels with the message.
    Spawned { pid: u32 },
    /// Nothing was started.
    Refused { reason: String },
}

// ---------------------------------------------------------------------------
// Server side (runs in the helper binary)
// ---------------------------------------------------------------------------

/// A request the server accepted.
#[derive(Debug)]
struct Accepted {
    spec: RunSpec,
    stdio: [OwnedFd; 3],
    report: OwnedFd,
    /// A network namespace from the pool, if the plan needs one.
    netns: Option<OwnedFd>,
    /// The root template for this policy's shape, if there is one.
    template: Option<OwnedFd>,
    /// When the server received and parsed the request (trace marks).
    times: [u64; 2],
}

/// Checks one received request. Pure apart from closing refused descriptors,
/// so the checks are unit-tested.
fn accept(bytes: &[u8], fds: Vec<OwnedFd>, truncated: bool) -> Result<Accepted, String> {
    if truncated {
        return Err(format!(
            "request larger than {MAX_REQUEST} bytes or with more than {REQUEST_FDS} descriptors"
        ));
    }
    let got = fds.len();
    let Ok([stdin, stdout, stderr, report]) = <[OwnedFd; REQUEST_FDS]>::try_from(fds) else {
        return Err(format!(
            "expected {REQUEST_FDS} descriptors (stdin, stdout, stderr, report pipe), got {got}"
        ));
    };
    let request: InitRequest = serde_json::from_slice(bytes)
        .map_err(|e| format!("unreadable request ({} bytes): {e}", bytes.len()))?;
    match request {
        InitRequest::Run(mut spec) => {
            // Only the server itself hands out descriptors.
            spec.netns_fd = None;
            spec.root_template_fd = None;
            Ok(Accepted {
                spec: *spec,
                stdio: [stdin, stdout, stderr],
                report,
                netns: None,
                template: None,
                times: [0; 2],
            })
        }
        InitRequest::Probe | InitRequest::Serve { .. } => {
            Err("the fork server only serves `run` requests".into())
        }
    }
}

fn recv_request(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>, bool)>> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(REQUEST_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        // The host closed its end (a zero-length datagram is never sent).
        return Ok(None);
    }
    let truncated = msg
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC);
    Ok(Some((msg.bytes, fds, truncated)))
}

fn send_reply(sock: &OwnedFd, reply: &Reply, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let bytes = serde_json::to_vec(reply).map_err(io::Error::other)?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// The server loop. Never returns: exits 0 when the host closes the socket.
pub(crate) fn serve(socket_fd: RawFd, root_templates: bool) -> ! {
    let sock = match sys::adopt_inherited_fd(socket_fd) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("plugd sandbox fork server: socket descriptor {socket_fd} unusable: {e}");
            sys::exit_now(SETUP_FAILED_EXIT)
        }
    };
    let _ = sys::set_cloexec(sock.as_fd(), true);
    match sys::thread_count() {
        Ok(1) => {}
        other => {
            eprintln!(
                "plugd sandbox fork server: must be single-threaded to fork safely, found {other:?} threads (call plugd_sandbox::run_helper_if_requested first in main)"
            );
            sys::exit_now(SETUP_FAILED_EXIT)
        }
    }
    // See `sys::clone_sibling`: glibc would aim a child's `raise` at us.
    if let Err(e) = sys::ignore_signal(libc::SIGABRT) {
        eprintln!("plugd sandbox fork server: ignoring SIGABRT: {e}");
        sys::exit_now(SETUP_FAILED_EXIT)
    }
    let mut buf = vec![0u8; MAX_REQUEST];
    // Network namespaces made while idle (see `namespaces::enter`). A
    // namespace made by this root process belongs to the initial user
    // namespace, which is what a root plugd's sandboxes use; without root
    // there is nothing to pool.
    let mut pool: Vec<OwnedFd> = Vec::new();
    let mut pool_on = sys::euid() == 0;
    let mut templates = Templates {
        on: root_templates,
        ..Templates::default()
    };
    loop {
        while pool_on && pool.len() < NETNS_POOL && !sys::readable_within(sock.as_fd(), NETNS_IDLE)
        {
            match make_netns() {
                Ok(fd) => pool.push(fd),
                Err((e, stranded)) => {
                    eprintln!(
                        "plugd sandbox fork server: no network namespace pool ({e}); sandboxes create their own"
                    );
                    if stranded {
                        // Helpers forked from here would start in the wrong
                        // network namespace: stop; the host sees the server gone.
                        sys::exit_now(1)
                    }
                    pool_on = false;
                }
            }
        }
        let (n, fds, truncated) = match recv_request(&sock, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => sys::exit_now(0),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => {
                eprintln!("plugd sandbox fork server: reading a request: {e}");
                sys::exit_now(1)
            }
        };
        let received = crate::trace::monotonic_ns();
        let sent = match accept(&buf[..n], fds, truncated) {
            Err(reason) => send_reply(&sock, &Reply::Refused { reason }, None),
            Ok(mut accepted) => {
                let template = templates.prepare(&accepted.spec);
                accepted.times = [received, crate::trace::monotonic_ns()];
                // SAFETY: this process is single-threaded (checked above,
                // and the loop starts no thread); the child only runs
                // `start_helper`, which follows the rules of `clone_sibling`.
                let forked = unsafe { sys::clone_sibling() };
                match forked {
                    Ok(sys::Sibling::Child) => {
                        drop(sock);
                        let layers = &accepted.spec.layers;
                        if layers.net_ns && !layers.user_ns {
                            accepted.netns = pool.pop();
                        }
                        // The rest of the pool is the server's, not this sandbox's.
                        drop(pool);
                        accepted.template = template
                            .and_then(|k| templates.built.remove(&k))
                            .map(|t| t.tree);
                        drop(templates);
                        start_helper(accepted)
                    }
                    Ok(sys::Sibling::Caller(pid, pidfd)) => {
                        let layers = &accepted.spec.layers;
                        if layers.net_ns && !layers.user_ns {
                            // The child took this one (same pop on both sides).
                            drop(pool.pop());
                        }
                        drop(accepted);
                        send_reply(
                            &sock,
                            &Reply::Spawned { pid: pid as u32 },
                            Some(pidfd.as_fd()),
                        )
                    }
                    Err(e) => send_reply(
                        &sock,
                        &Reply::Refused {
                            reason: format!("clone3 failed: {e}"),
                        },
                        None,
                    ),
                }
            }
        };
        if let Err(e) = sent {
            eprintln!("plugd sandbox fork server: replying to the host: {e}");
            sys::exit_now(1)
        }
    }
}

/// Makes a network namespace without staying in it: unshare, keep a
/// descriptor, return. The flag says whether the way back failed, leaving
/// this process in the new namespace.
fn make_netns() -> Result<OwnedFd, (io::Error, bool)> {
    use crate::sys::Sys;
    let here = std::fs::File::open("/proc/self/ns/net").map_err(|e| (e, false))?;
    sys::LinuxSys
        .unshare(libc::CLONE_NEWNET)
        .map_err(|e| (e, false))?;
    let made = std::fs::File::open("/proc/self/ns/net");
    sys::LinuxSys
        .setns_net(here.as_fd())
        .map_err(|e| (e, true))?;
    made.map(OwnedFd::from).map_err(|e| (e, false))
}

/// In the forked helper: take the stdio and report pipe, then continue
/// exactly as a re-executed helper would.
fn start_helper(accepted: Accepted) -> ! {
    let forked = crate::trace::monotonic_ns();
    let Accepted {
        mut spec,
        stdio,
        report,
        netns,
        template,
        times,
    } = accepted;
    spec.netns_fd = netns.map(IntoRawFd::into_raw_fd);
    spec.root_template_fd = template.map(IntoRawFd::into_raw_fd);
    let _ = sys::set_default_disposition(libc::SIGABRT);
    if let Err(e) = sys::install_stdio(stdio) {
        eprintln!("plugd sandbox helper: installing the plugin's stdio: {e}");
        sys::exit_now(SETUP_FAILED_EXIT)
    }
    spec.report_fd = report.into_raw_fd();
    let mut marks = Marks::new(spec.trace);
    marks.at("server: request received", times[0]);
    marks.at("server: request parsed", times[1]);
    marks.at("helper: forked by the fork server", forked);
    init::run(spec, marks, init::Origin::ForkServer)
}

// ---------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------

/// The plugin's stdin, stdout and stderr for [`ForkServer::spawn`]; `None`
/// is `/dev/null`. Pipes come from [`std::io::pipe`] (pass the ends the
/// plugin uses; keep the others).
#[derive(Debug, Default)]
pub struct ServerStdio {
    /// The plugin's stdin.
    pub stdin: Option<OwnedFd>,
    /// The plugin's stdout.
    pub stdout: Option<OwnedFd>,
    /// The plugin's stderr.
    pub stderr: Option<OwnedFd>,
}

impl ServerStdio {
    /// All three on `/dev/null`.
    pub fn null() -> ServerStdio {
        ServerStdio::default()
    }
}

/// Talking to the fork server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForkServerError {
    /// The server could not be started.
    #[error("could not start the sandbox fork server {program}: {source}")]
    Start {
        /// Helper binary.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The server is gone or the socket failed; start a new one.
    #[error(
        "the sandbox fork server (pid {pid}) is not answering ({source}); start a new one with ForkServer::start, or spawn with SandboxCommand::spawn_with"
    )]
    Gone {
        /// The server's pid.
        pid: u32,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The server refused the request; nothing was started.
    #[error("the sandbox fork server refused to start the plugin: {0}")]
    Refused(String),
    /// The server answered something unreadable.
    #[error("the sandbox fork server sent an unreadable reply: {0}")]
    BadReply(String),
    /// Preparing the plugin's stdio failed.
    #[error("preparing the plugin's stdio for the fork server failed: {0}")]
    Stdio(#[source] io::Error),
}

impl From<ForkServerError> for SpawnError {
    fn from(e: ForkServerError) -> SpawnError {
        SpawnError::ForkServer(e)
    }
}

#[derive(Debug)]
struct Conn {
    sock: Option<OwnedFd>,
    server: std::process::Child,
}

/// A running fork server: spawns sandboxed commands without re-executing the
/// helper binary (see the module doc of `server`). Cheap to share: spawns
/// from several threads take turns on one socket (each request is one
/// fork, a fraction of a millisecond).
///
/// Dropping it closes the socket; the server exits, and helpers it started
/// keep running (they are this process's children).
#[derive(Debug)]
pub struct ForkServer {
    pid: u32,
    conn: Mutex<Conn>,
}

impl ForkServer {
    /// Starts a server running `helper` (whose `main` calls
    /// [`crate::run_helper_if_requested`] first). Blocks for one exec of the
    /// helper, a millisecond or two.
    pub fn start(helper: &Helper) -> Result<ForkServer, ForkServerError> {
        ForkServer::start_inner(helper, true)
    }

    /// [`ForkServer::start`] without root templates: every sandbox builds
    /// its minimal root per spawn, as a re-executed helper does. For
    /// side-by-side measurements (`benches/spawn.rs`), and a way out should
    /// a kernel refuse what templates need.
    pub fn start_without_root_templates(helper: &Helper) -> Result<ForkServer, ForkServerError> {
        ForkServer::start_inner(helper, false)
    }

    fn start_inner(helper: &Helper, root_templates: bool) -> Result<ForkServer, ForkServerError> {
        let start_err = |source| ForkServerError::Start {
            program: helper.program().to_path_buf(),
            source,
        };
        let (host, server) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| start_err(e.into()))?;
        let server = sys::dup_above_stdio(server).map_err(start_err)?;
        let mut cmd = helper.command();
        cmd.env(
            SPEC_ENV,
            serde_json::to_string(&InitRequest::Serve {
                socket_fd: server.as_raw_fd(),
                root_templates,
            })
            .expect("serialisable"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        sys::inherit_in_child(&mut cmd, server.as_raw_fd());
        let child = cmd.spawn().map_err(start_err)?;
        drop(server);
        Ok(ForkServer {
            pid: child.id(),
            conn: Mutex::new(Conn {
                sock: Some(host),
                server: child,
            }),
        })
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Spawns `command` (from [`crate::Sandbox::command`]; its stdio and
    /// process-group settings are not used, `stdio` is) and returns the
    /// helper, which is this process's child, with its [`Monitor`].
    pub fn spawn(
        &self,
        command: SandboxCommand,
        stdio: ServerStdio,
    ) -> Result<(ServerChild, Monitor), ForkServerError> {
        let (request, report_read, report_write) = command.into_request();
        let null = || -> Result<OwnedFd, ForkServerError> {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(ForkServerError::Stdio)
        };
        let stdin = stdio.stdin.map_or_else(null, Ok)?;
        let stdout = stdio.stdout.map_or_else(null, Ok)?;
        let stderr = stdio.stderr.map_or_else(null, Ok)?;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let gone = |source| ForkServerError::Gone {
            pid: self.pid,
            source,
        };
        let Some(sock) = conn.sock.as_ref() else {
            return Err(gone(io::Error::other(
                "a previous request broke the connection",
            )));
        };
        let exchanged = (|| -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
            let fds = [
                stdin.as_fd(),
                stdout.as_fd(),
                stderr.as_fd(),
                report_write.as_fd(),
            ];
            let mut space =
                [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(REQUEST_FDS))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            rustix::net::sendmsg(
                sock,
                &[IoSlice::new(request.as_bytes())],
                &mut control,
                SendFlags::NOSIGNAL,
            )?;
            let mut buf = vec![0u8; MAX_REPLY];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = loop {
                match rustix::net::recvmsg(
                    sock,
                    &mut [IoSliceMut::new(&mut buf)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                ) {
                    Err(rustix::io::Errno::INTR) => continue,
                    other => break other?,
                }
            };
            let mut fds = Vec::new();
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = m {
                    fds.extend(received);
                }
            }
            if msg.bytes == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            if msg
                .flags
                .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
            {
                return Err(io::Error::other("the reply was truncated"));
            }
            buf.truncate(msg.bytes);
            Ok((buf, fds))
        })();
        // The server has its own copies now (or never will).
        drop((stdin, stdout, stderr, report_write));
        let (bytes, mut fds) = match exchanged {
            Ok(x) => x,
            Err(e) => {
                // A half-finished exchange leaves the stream out of step:
                // never reuse it.
                conn.sock = None;
                return Err(gone(e));
            }
        };
        drop(conn);
        let reply: Reply =
            serde_json::from_slice(&bytes).map_err(|e| ForkServerError::BadReply(e.to_string()))?;
        match reply {
            Reply::Refused { reason } => Err(ForkServerError::Refused(reason)),
            Reply::Spawned { pid } => {
                if fds.len() != 1 || pid == 0 {
                    return Err(ForkServerError::BadReply(format!(
                        "`spawned` with pid {pid} and {} descriptors instead of one pidfd",
                        fds.len()
                    )));
                }
                let pidfd = fds.pop().expect("one descriptor");
                Ok((
                    ServerChild {
                        pid,
                        pidfd,
                        status: None,
                    },
                    Monitor::from_report_pipe(report_read),
                ))
            }
        }
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        // End of file on its socket makes the server exit.
        conn.sock = None;
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            match conn.server.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= until => {
                    let _ = conn.server.kill();
                    let _ = conn.server.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

/// A helper started by a [`ForkServer`]: a child of this process, like
/// `std::process::Child`, named by a pidfd so no recycled pid is ever
/// signalled or waited for.
#[derive(Debug)]
pub struct ServerChild {
    pid: u32,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
}

impl ServerChild {
    /// The helper's pid (what [`crate::terminate`] and
    /// [`crate::connect_loopback`] take).
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The pidfd: becomes readable when the helper exits (register it with
    /// `tokio::io::unix::AsyncFd` to wait without a thread).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The exit status if the helper has exited (reaps it).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(rustix::process::WaitIdOptions::NOHANG)
    }

    /// Blocks until the helper exits (reaps it). The helper exits with the
    /// plugin's status: the same code, or death by the same signal.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.reap(rustix::process::WaitIdOptions::empty())? {
                return Ok(s);
            }
        }
    }

    fn reap(&mut self, extra: rustix::process::WaitIdOptions) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let opts = rustix::process::WaitIdOptions::EXITED | extra;
        let got = loop {
            match rustix::process::waitid(rustix::process::WaitId::PidFd(self.pidfd.as_fd()), opts)
            {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other?,
            }
        };
        let Some(st) = got else {
            return Ok(None);
        };
        let raw = if let Some(code) = st.exit_status() {
            (code & 0xff) << 8
        } else if let Some(sig) = st.terminating_signal() {
            sig | if st.dumped() { 0x80 } else { 0 }
        } else {
            return Ok(None);
        };
        let status = ExitStatus::from_raw(raw);
        self.status = Some(status);
        Ok(Some(status))
    }

    /// Asks the sandbox to stop, like [`crate::terminate`]: SIGTERM to the
    /// helper, which forwards it and escalates after the grace period.
    pub fn terminate(&self) -> io::Result<()> {
        self.signal(rustix::process::Signal::TERM)
    }

    /// SIGKILL to the helper (no accounting; prefer [`Self::terminate`]).
    pub fn kill(&self) -> io::Result<()> {
        self.signal(rustix::process::Signal::KILL)
    }

    fn signal(&self, sig: rustix::process::Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        rustix::process::pidfd_send_signal(&self.pidfd, sig)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
            .collect()
    }

    fn run_request() -> Vec<u8> {
        let spec = RunSpec {
            policy: crate::Policy::sandboxed(),
            target: crate::Target::new("/bin/true"),
            layers: Default::default(),
            report_fd: 9,
            cgroups: Vec::new(),
            seccomp: None,
            trace: false,
            netns_fd: None,
            root_template_fd: None,
        };
        serde_json::to_vec(&InitRequest::Run(Box::new(spec))).unwrap()
    }

    #[test]
    fn accepts_a_run_request_with_four_descriptors() {
        let a = accept(&run_request(), fds(4), false).unwrap();
        assert_eq!(a.spec.target.program, PathBuf::from("/bin/true"));
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        let cases: Vec<(Vec<u8>, usize, bool, &str)> = vec![
            (run_request(), 4, true, "larger than"),
            (run_request(), 3, false, "got 3"),
            (run_request(), 0, false, "got 0"),
            (b"{not json".to_vec(), 4, false, "unreadable request"),
            (b"".to_vec(), 4, false, "unreadable request"),
            (
                br#"{"mode":"probe"}"#.to_vec(),
                4,
                false,
                "only serves `run`",
            ),
            (
                br#"{"mode":"serve","socket_fd":3}"#.to_vec(),
                4,
                false,
                "only serves `run`",
            ),
            (
                br#"{"mode":"run","policy":1}"#.to_vec(),
                4,
                false,
                "unreadable",
            ),
        ];
        for (bytes, n, truncated, want) in cases {
            let err = accept(&bytes, fds(n), truncated).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn replies_round_trip_and_reject_garbage() {
        for r in [
            Reply::Spawned { pid: 7 },
            Reply::Refused { reason: "x".into() },
        ] {
            let b = serde_json::to_vec(&r).unwrap();
            assert_eq!(serde_json::from_slice::<Reply>(&b).unwrap(), r);
        }
        assert!(serde_json::from_slice::<Reply>(br#"{"reply":"spawned","pid":-1}"#).is_err());
        assert!(serde_json::from_slice::<Reply>(br#"{"reply":"boom"}"#).is_err());
    }
}
