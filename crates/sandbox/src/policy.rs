//! What confines one plugin process: [`Policy`], and the mapping from a
//! plugin's trust level, declared permissions and requested resources to it
//! ([`Policy::for_plugin`]).
//!
//! The mapping follows DESIGN.md §5:
//!
//! | trust | network | filesystem | layers |
//! | --- | --- | --- | --- |
//! | `sandboxed` | none (private loopback for HTTP servers) | system dirs and runtime read-only, plugin dir read-only, work dir and `/tmp` writable | all |
//! | `verified` | as sandboxed, unless a network permission keeps the host network | as sandboxed, plus exactly the declared `fs:read:`/`fs:write:` paths | all |
//! | `trusted` | host (private loopback for HTTP servers) | the whole host, plus `/plugin` and `/work` | rlimits, cgroups, timeout |
//!
//! Permissions from every dialect map onto the same policy: `net:connect`
//! (any `net:` or `network:` action), OmniScope `network` and Stage7
//! `network_access` keep a network; `fs:read:/path` and `fs:write:/path` add a
//! bind of that path; OmniScope `file_system` adds the operator's configured
//! data paths read-only. Everything else (`read_data`, `docker:restart`, …)
//! is about the host application's API, not the process, and is listed in
//! [`Policy::notes`] as having no sandbox effect.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Mebibyte, for readable limits.
const MIB: u64 = 1024 * 1024;

/// Where the plugin's files appear inside the sandbox.
pub const PLUGIN_MOUNT: &str = "/plugin";
/// Where the plugin's private writable directory appears (also `HOME`).
pub const WORK_MOUNT: &str = "/work";

/// How much plugd trusts a plugin (DESIGN.md §1, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Every layer; no network; writes only to the work dir and `/tmp`.
    #[default]
    Sandboxed,
    /// Sandboxed, widened exactly by the declared permissions.
    Verified,
    /// Built-in or operator-approved: a plain child with limits and timeout.
    Trusted,
}

impl TrustLevel {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Sandboxed => "sandboxed",
            TrustLevel::Verified => "verified",
            TrustLevel::Trusted => "trusted",
        }
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrustLevel {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sandboxed" => Ok(TrustLevel::Sandboxed),
            "verified" => Ok(TrustLevel::Verified),
            "trusted" => Ok(TrustLevel::Trusted),
            other => Err(PolicyError::UnknownTrustLevel(other.to_string())),
        }
    }
}

/// The network a plugin gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A new, empty network namespace (not even loopback is up), and Landlock
    /// denies TCP bind and connect.
    None,
    /// A new network namespace with only loopback up: an HTTP plugin can
    /// listen on its hard-coded port without colliding with other instances;
    /// plugd reaches it with [`crate::connect_loopback`].
    PrivateLoopback,
    /// The host's network.
    Host,
}

/// Whether a bind is writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Mounted read-only, nosuid, nodev; Landlock allows read and execute.
    ReadOnly,
    /// Mounted read-write, nosuid, nodev; Landlock allows everything.
    ReadWrite,
}

/// One host path made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Read-only or read-write.
    pub access: Access,
    /// A missing required source fails the spawn; a missing optional one
    /// (a system directory this distribution does not have) is skipped.
    pub required: bool,
}

impl Bind {
    /// A required read-only bind of `source` at `target`.
    pub fn read_only(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Bind {
        Bind {
            source: source.into(),
            target: target.into(),
            access: Access::ReadOnly,
            required: true,
        }
    }

    /// A required read-write bind of `source` at `target`.
    pub fn read_write(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Bind {
        Bind {
            source: source.into(),
            target: target.into(),
            access: Access::ReadWrite,
            required: true,
        }
    }

    /// An optional read-only bind of a host path at the same path.
    pub fn system(path: impl Into<PathBuf>) -> Bind {
        let path = path.into();
        Bind {
            source: path.clone(),
            target: path,
            access: Access::ReadOnly,
            required: false,
        }
    }
}

/// Resource limits. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory (cgroup `memory.max`; `RLIMIT_AS` of 4× this, at least 1 GiB,
    /// only when no memory cgroup can be made). Default 256 MiB.
    pub memory_bytes: u64,
    /// CPU time (`RLIMIT_CPU`: SIGXCPU at the limit, SIGKILL one second
    /// later). Default 30 s.
    pub cpu_time: Duration,
    /// Stack (`RLIMIT_STACK`). Default 10 MiB.
    pub stack_bytes: u64,
    /// Processes and threads (cgroup `pids.max`; `RLIMIT_NPROC` as the
    /// fallback). Default 100.
    pub processes: u32,
    /// Open files (`RLIMIT_NOFILE`). Default 1024.
    pub open_files: u64,
    /// Largest file the plugin may write (`RLIMIT_FSIZE`). Default 256 MiB.
    pub file_size_bytes: u64,
    /// Size of the private `/tmp` (tmpfs, charged to the memory cgroup).
    /// Default 64 MiB.
    pub tmp_bytes: u64,
    /// CPU bandwidth in cores (cgroup `cpu.max`), `None` for no cap.
    /// Default 1 core, so a spinning plugin leaves the host a core.
    pub cpu_cores: Option<f64>,
    /// Wall-clock limit for the whole process, `None` for none (warm workers
    /// are long-lived; their requests have their own timeouts).
    pub wall_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 * MIB,
            cpu_time: Duration::from_secs(30),
            stack_bytes: 10 * MIB,
            processes: 100,
            open_files: 1024,
            file_size_bytes: 256 * MIB,
            tmp_bytes: 64 * MIB,
            cpu_cores: Some(1.0),
            wall_timeout: None,
        }
    }
}

/// What a manifest's `resources` section asks for; `None` means "the default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceRequest {
    /// Memory in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU time.
    pub cpu_time: Option<Duration>,
    /// CPU bandwidth in cores.
    pub cpu_cores: Option<f64>,
    /// Processes.
    pub processes: Option<u32>,
    /// Wall-clock timeout.
    pub timeout: Option<Duration>,
}

/// Settings the operator controls (plugd's configuration), applied on top of
/// every manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSettings {
    /// The most a manifest may ask for. A request above a ceiling is lowered
    /// to it (and noted). Defaults to [`Limits::default`], so by default a
    /// manifest may ask for less than the defaults but not more.
    pub ceilings: Limits,
    /// Refuse to start a `sandboxed`/`verified` plugin when any layer is
    /// unavailable on this machine, instead of running with the others.
    pub require_full_isolation: bool,
    /// The unprivileged user plugins run as when plugd runs as root.
    pub uid: u32,
    /// The unprivileged group plugins run as when plugd runs as root.
    pub gid: u32,
    /// Host directories every plugin may read (system libraries, certificates).
    /// Missing ones are skipped.
    pub system_paths: Vec<PathBuf>,
    /// Host directories an OmniScope `file_system` permission makes readable.
    pub file_system_paths: Vec<PathBuf>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            ceilings: Limits::default(),
            require_full_isolation: false,
            uid: 65534,
            gid: 65534,
            system_paths: default_system_paths(),
            file_system_paths: Vec::new(),
        }
    }
}

/// The read-only system paths every sandbox gets: libraries, interpreters
/// installed by the distribution, certificates, time zones, and the few
/// `/etc` files the C library and language runtimes read at start-up.
pub fn default_system_paths() -> Vec<PathBuf> {
    [
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc/alternatives",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/pki",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/mime.types",
        "/etc/services",
        "/etc/protocols",
        "/etc/nsswitch.conf",
        "/etc/R",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Files that only make sense with the host network: name resolution.
fn host_network_paths() -> Vec<PathBuf> {
    [
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/gai.conf",
        "/etc/host.conf",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Everything the constructor needs to know about one plugin.
#[derive(Debug, Clone)]
pub struct PluginGrant<'a> {
    /// The plugin's trust level.
    pub trust: TrustLevel,
    /// Declared permissions, in any dialect (`net:connect`, `network`,
    /// `network_access`, `fs:read:/data`, `file_system`, …).
    pub permissions: &'a [String],
    /// The manifest's `resources`.
    pub resources: ResourceRequest,
    /// Installed plugin files, shown read-only at `/plugin`.
    pub plugin_dir: &'a Path,
    /// The plugin's private writable directory, shown at `/work`.
    pub work_dir: &'a Path,
    /// Interpreter prefixes and environments the runtime needs (a pyenv
    /// version, a virtualenv), shown read-only at their own paths because
    /// interpreters have their prefix compiled in. See
    /// [`interpreter_paths`].
    pub runtime_paths: &'a [PathBuf],
    /// The plugin is an HTTP server (runtime `http`): it gets a private
    /// network namespace with loopback up so its port is its own.
    pub http_server: bool,
}

/// Everything that decides how one plugin process is confined.
///
/// Built by [`Policy::for_plugin`] or by hand; checked by
/// [`Policy::validate`] before every spawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Trust level: `Trusted` skips namespaces (except mount, for `/plugin`
    /// and `/work`, and network, for HTTP servers), Landlock, seccomp and the
    /// identity switch.
    pub trust: TrustLevel,
    /// Binds, in any order (they are mounted parents first).
    pub binds: Vec<Bind>,
    /// The writable work directory (host path), shown at `/work` and used as
    /// `HOME`.
    pub work_dir: Option<PathBuf>,
    /// The network.
    pub network: Network,
    /// Resource limits.
    pub limits: Limits,
    /// User plugins run as when plugd is root.
    pub uid: u32,
    /// Group plugins run as when plugd is root.
    pub gid: u32,
    /// Refuse to start when a layer is unavailable (never for `Trusted`).
    pub require_full_isolation: bool,
    /// Host name inside the UTS namespace.
    pub hostname: String,
    /// How long a plugin gets to exit after SIGTERM is forwarded before it
    /// is killed.
    pub kill_grace: Duration,
    /// Human-readable decisions made while building the policy (lowered
    /// limits, permissions without sandbox effect), for logs and `inspect`.
    pub notes: Vec<String>,
}

impl Policy {
    /// A `sandboxed` policy with the default limits, the default system
    /// paths, no plugin dir, no work dir and no network. The building block
    /// for tests and for callers that assemble binds themselves.
    pub fn sandboxed() -> Policy {
        let op = OperatorSettings::default();
        Policy {
            trust: TrustLevel::Sandboxed,
            binds: op.system_paths.iter().cloned().map(Bind::system).collect(),
            work_dir: None,
            network: Network::None,
            limits: Limits::default(),
            uid: op.uid,
            gid: op.gid,
            require_full_isolation: false,
            hostname: "plugd-sandbox".to_string(),
            kill_grace: Duration::from_secs(1),
            notes: Vec::new(),
        }
    }

    /// Maps trust level × permissions × resources × operator settings to a
    /// policy (the table in the module doc).
    pub fn for_plugin(
        grant: &PluginGrant<'_>,
        op: &OperatorSettings,
    ) -> Result<Policy, PolicyError> {
        let mut notes = Vec::new();
        let limits = effective_limits(&grant.resources, &op.ceilings, &mut notes);
        let mut binds: Vec<Bind> = op.system_paths.iter().cloned().map(Bind::system).collect();
        binds.push(Bind::read_only(grant.plugin_dir, PLUGIN_MOUNT));
        for p in grant.runtime_paths {
            binds.push(Bind::read_only(p.clone(), p.clone()));
        }

        let mut wants_network = false;
        for perm in grant.permissions {
            match parse_permission(perm)? {
                PermissionEffect::Network => wants_network = true,
                PermissionEffect::Bind(path, access) => {
                    if grant.trust == TrustLevel::Verified {
                        let b = match access {
                            Access::ReadOnly => Bind::read_only(path.clone(), path),
                            Access::ReadWrite => Bind::read_write(path.clone(), path),
                        };
                        binds.push(b);
                    }
                }
                PermissionEffect::OperatorPaths => {
                    if grant.trust == TrustLevel::Verified {
                        if op.file_system_paths.is_empty() {
                            notes.push(format!(
                                "permission {perm:?} grants nothing: the operator has configured no file-system paths for plugins"
                            ));
                        }
                        for p in &op.file_system_paths {
                            binds.push(Bind::read_only(p.clone(), p.clone()));
                        }
                    }
                }
                PermissionEffect::NoSandboxEffect => notes.push(format!(
                    "permission {perm:?} is enforced by the host application, not the sandbox"
                )),
            }
        }
        if grant.trust == TrustLevel::Sandboxed
            && grant
                .permissions
                .iter()
                .any(|p| !matches!(parse_permission(p), Ok(PermissionEffect::NoSandboxEffect)))
        {
            notes.push(
                "trust level sandboxed ignores declared network and file-system permissions; sign the plugin (verified) to have them honoured"
                    .to_string(),
            );
        }

        let network = match grant.trust {
            _ if grant.http_server => {
                if wants_network && grant.trust == TrustLevel::Verified {
                    notes.push(
                        "HTTP plugins get a private loopback-only network so their port is their own; the declared network permission cannot also give outbound access"
                            .to_string(),
                    );
                }
                Network::PrivateLoopback
            }
            TrustLevel::Trusted => Network::Host,
            TrustLevel::Verified if wants_network => Network::Host,
            _ => Network::None,
        };
        if network == Network::Host && grant.trust != TrustLevel::Trusted {
            binds.extend(host_network_paths().into_iter().map(Bind::system));
        }

        let policy = Policy {
            trust: grant.trust,
            binds,
            work_dir: Some(grant.work_dir.to_path_buf()),
            network,
            limits,
            uid: op.uid,
            gid: op.gid,
            require_full_isolation: op.require_full_isolation && grant.trust != TrustLevel::Trusted,
            hostname: "plugd-sandbox".to_string(),
            kill_grace: Duration::from_secs(1),
            notes,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Sets the wall-clock timeout (builder style).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Policy {
        self.limits.wall_timeout = timeout;
        self
    }

    /// Checks that every path is absolute and normal, that no bind hides the
    /// sandbox's own mounts, and that limits are usable.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for b in &self.binds {
            check_absolute_normal(&b.source, "bind source")?;
            check_absolute_normal(&b.target, "bind target")?;
            if b.target == Path::new("/") {
                return Err(PolicyError::BadPath {
                    path: b.source.clone(),
                    what: "bind target",
                    reason: "binding over the sandbox root would expose or hide everything; name a narrower directory".into(),
                });
            }
            for reserved in ["/proc", "/dev", WORK_MOUNT] {
                if b.target.starts_with(reserved) {
                    return Err(PolicyError::BadPath {
                        path: b.target.clone(),
                        what: "bind target",
                        reason: format!(
                            "{reserved} is built by the sandbox itself and cannot be bound over"
                        ),
                    });
                }
            }
        }
        if let Some(w) = &self.work_dir {
            check_absolute_normal(w, "work dir")?;
        }
        let l = &self.limits;
        if l.memory_bytes < 4 * MIB {
            return Err(PolicyError::BadLimit(format!(
                "memory limit {} bytes is below the 4 MiB no process can start without",
                l.memory_bytes
            )));
        }
        if l.processes == 0 || l.open_files < 16 || l.cpu_time.is_zero() {
            return Err(PolicyError::BadLimit(
                "processes must be ≥ 1, open files ≥ 16 and CPU time > 0".into(),
            ));
        }
        if let Some(c) = l.cpu_cores
            && !(c.is_finite() && c >= 0.01)
        {
            return Err(PolicyError::BadLimit(format!(
                "cpu_cores {c} must be a number ≥ 0.01"
            )));
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 {
            return Err(PolicyError::BadLimit(
                "hostname must be 1 to 64 bytes".into(),
            ));
        }
        Ok(())
    }

    /// Whether this policy asks for the full sandbox (everything but
    /// `Trusted`).
    pub fn is_confined(&self) -> bool {
        self.trust != TrustLevel::Trusted
    }
}

fn check_absolute_normal(p: &Path, what: &'static str) -> Result<(), PolicyError> {
    if !p.is_absolute() {
        return Err(PolicyError::BadPath {
            path: p.to_path_buf(),
            what,
            reason: "must be an absolute path".into(),
        });
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(PolicyError::BadPath {
            path: p.to_path_buf(),
            what,
            reason: "must not contain `.` or `..` components".into(),
        });
    }
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(PolicyError::BadPath {
            path: p.to_path_buf(),
            what,
            reason: "must not contain a NUL byte".into(),
        });
    }
    Ok(())
}

fn effective_limits(req: &ResourceRequest, ceil: &Limits, notes: &mut Vec<String>) -> Limits {
    let d = Limits::default();
    let mut pick = |name: &str, asked: Option<u64>, default: u64, ceiling: u64| -> u64 {
        let want = asked.unwrap_or(default.min(ceiling));
        if want > ceiling {
            notes.push(format!(
                "{name} request {want} lowered to the operator's ceiling {ceiling}"
            ));
            ceiling
        } else {
            want
        }
    };
    let memory_bytes = pick(
        "memory",
        req.memory_bytes,
        d.memory_bytes,
        ceil.memory_bytes,
    );
    let cpu_secs = pick(
        "cpu time (s)",
        req.cpu_time.map(|t| t.as_secs().max(1)),
        d.cpu_time.as_secs(),
        ceil.cpu_time.as_secs(),
    );
    let processes = pick(
        "processes",
        req.processes.map(u64::from),
        u64::from(d.processes),
        u64::from(ceil.processes),
    ) as u32;
    let cpu_cores = match (req.cpu_cores, ceil.cpu_cores) {
        (Some(want), Some(c)) if want > c => {
            notes.push(format!(
                "cpu request {want} cores lowered to the operator's ceiling {c}"
            ));
            Some(c)
        }
        (Some(want), _) => Some(want),
        (None, c) => d.cpu_cores.map(|d| c.map_or(d, |c| d.min(c))),
    };
    let wall_timeout = match (req.timeout, ceil.wall_timeout) {
        (Some(want), Some(c)) if want > c => {
            notes.push(format!(
                "timeout request {want:?} lowered to the operator's ceiling {c:?}"
            ));
            Some(c)
        }
        (Some(want), _) => Some(want),
        (None, c) => c,
    };
    Limits {
        memory_bytes,
        cpu_time: Duration::from_secs(cpu_secs),
        stack_bytes: d.stack_bytes.min(ceil.stack_bytes),
        processes,
        open_files: d.open_files.min(ceil.open_files),
        file_size_bytes: d.file_size_bytes.min(ceil.file_size_bytes),
        tmp_bytes: d.tmp_bytes.min(ceil.tmp_bytes),
        cpu_cores,
        wall_timeout,
    }
}

/// What one declared permission does to the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionEffect {
    /// Keep a network (`net:connect`, `network`, `network_access`).
    Network,
    /// Bind this host path at the same path (`fs:read:/p`, `fs:write:/p`).
    Bind(PathBuf, Access),
    /// Bind the operator's file-system paths read-only (`file_system`,
    /// `fs:read` without a path).
    OperatorPaths,
    /// Enforced by the host application, not the process sandbox.
    NoSandboxEffect,
}

/// Parses one permission string of any dialect.
///
/// Malformed filesystem permissions are errors (a relative or `..` path, an
/// unknown `fs:` action) because silently ignoring them would leave the
/// plugin without access its author expected, or worse, guessed access.
pub fn parse_permission(perm: &str) -> Result<PermissionEffect, PolicyError> {
    let p = perm.trim();
    if p.is_empty() || p.len() > 4096 {
        return Err(PolicyError::BadPermission {
            permission: perm.chars().take(80).collect(),
            reason: "must be 1 to 4096 characters".into(),
        });
    }
    let lower = p.to_ascii_lowercase();
    match lower.as_str() {
        "network" | "network_access" | "net" => return Ok(PermissionEffect::Network),
        "file_system" | "filesystem" | "fs" | "fs:read" => {
            return Ok(PermissionEffect::OperatorPaths);
        }
        _ => {}
    }
    let (resource, rest) = lower.split_once(':').unwrap_or((lower.as_str(), ""));
    match resource {
        "net" | "network" => Ok(PermissionEffect::Network),
        "fs" | "file" | "files" => {
            // Keep the path's original case: only the prefix is case-folded.
            let (action, path) = rest.split_once(':').unwrap_or((rest, ""));
            let path_original = &p[p.len() - path.len()..];
            let access = match action {
                "read" | "ro" => Access::ReadOnly,
                "write" | "rw" => Access::ReadWrite,
                other => {
                    return Err(PolicyError::BadPermission {
                        permission: perm.to_string(),
                        reason: format!(
                            "unknown fs action {other:?}; use fs:read:/path or fs:write:/path"
                        ),
                    });
                }
            };
            if path_original.is_empty() {
                return Ok(if access == Access::ReadOnly {
                    PermissionEffect::OperatorPaths
                } else {
                    return Err(PolicyError::BadPermission {
                        permission: perm.to_string(),
                        reason: "fs:write needs a path (fs:write:/path)".into(),
                    });
                });
            }
            let path = PathBuf::from(path_original);
            check_absolute_normal(&path, "permission path").map_err(|e| {
                PolicyError::BadPermission {
                    permission: perm.to_string(),
                    reason: e.to_string(),
                }
            })?;
            if path == Path::new("/") {
                return Err(PolicyError::BadPermission {
                    permission: perm.to_string(),
                    reason: "granting the whole host filesystem is not a sandbox; name a directory"
                        .into(),
                });
            }
            Ok(PermissionEffect::Bind(path, access))
        }
        _ => Ok(PermissionEffect::NoSandboxEffect),
    }
}

/// The host paths an interpreter needs visible at their own paths: the
/// prefix of the (symlink-resolved) executable and, for a Python virtualenv,
/// the base interpreter's prefix named by `pyvenv.cfg`. Paths already under
/// the default system paths are left out.
///
/// `/root/.pyenv/versions/3.11.7/bin/python3` → `[/root/.pyenv/versions/3.11.7]`;
/// `/srv/venvs/p/bin/python` → `[/srv/venvs/p, <its base prefix>]`.
pub fn interpreter_paths(executable: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let system = default_system_paths();
    let add = |p: PathBuf, out: &mut Vec<PathBuf>| {
        if !system.iter().any(|s| p.starts_with(s)) && !out.contains(&p) {
            out.push(p);
        }
    };
    // A venv's `bin/python` is a symlink to the base interpreter: the venv
    // itself must be visible (site-packages), and so must the target.
    if let Some(venv) = prefix_of(executable)
        && venv.join("pyvenv.cfg").is_file()
    {
        add(venv.clone(), &mut out);
        if let Ok(cfg) = std::fs::read_to_string(venv.join("pyvenv.cfg")) {
            for line in cfg.lines() {
                if let Some((k, v)) = line.split_once('=')
                    && k.trim() == "home"
                {
                    let home = PathBuf::from(v.trim());
                    if let Some(base) = prefix_of(&home.join("python")) {
                        add(base, &mut out);
                    }
                }
            }
        }
    }
    let real = std::fs::canonicalize(executable)?;
    if let Some(prefix) = prefix_of(&real) {
        add(prefix, &mut out);
    } else if let Some(dir) = real.parent() {
        add(dir.to_path_buf(), &mut out);
    }
    Ok(out)
}

/// `/x/y/bin/tool` → `/x/y`.
fn prefix_of(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.file_name()? == "bin" {
        dir.parent().map(Path::to_path_buf)
    } else {
        None
    }
}

/// A policy that cannot be built or is unsafe to use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The trust level is not one of the three.
    #[error("unknown trust level {0:?}: use sandboxed, verified or trusted")]
    UnknownTrustLevel(String),
    /// A declared permission is malformed.
    #[error("permission {permission:?} is invalid: {reason}")]
    BadPermission {
        /// The permission as declared.
        permission: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path in the policy is unusable.
    #[error("{what} {path:?} {reason}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Which field.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A limit is unusable.
    #[error("invalid limit: {0}")]
    BadLimit(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant<'a>(trust: TrustLevel, perms: &'a [String], http: bool) -> PluginGrant<'a> {
        PluginGrant {
            trust,
            permissions: perms,
            resources: ResourceRequest::default(),
            plugin_dir: Path::new("/store/p/1.0.0"),
            work_dir: Path::new("/store/work/p"),
            runtime_paths: &[],
            http_server: http,
        }
    }

    fn perms(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sandboxed_has_no_network_and_ignores_permissions() {
        let p = perms(&["net:connect", "fs:read:/data"]);
        let pol = Policy::for_plugin(
            &grant(TrustLevel::Sandboxed, &p, false),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert_eq!(pol.network, Network::None);
        assert!(!pol.binds.iter().any(|b| b.target == Path::new("/data")));
        assert!(pol.notes.iter().any(|n| n.contains("sandboxed ignores")));
        let plugin = pol
            .binds
            .iter()
            .find(|b| b.target == Path::new(PLUGIN_MOUNT))
            .unwrap();
        assert_eq!(plugin.access, Access::ReadOnly);
        assert!(plugin.required);
        assert_eq!(pol.work_dir.as_deref(), Some(Path::new("/store/work/p")));
    }

    #[test]
    fn verified_is_widened_exactly_by_permissions() {
        for net in ["net:connect", "network", "network_access", "NET:*"] {
            let p = perms(&[net]);
            let pol = Policy::for_plugin(
                &grant(TrustLevel::Verified, &p, false),
                &OperatorSettings::default(),
            )
            .unwrap();
            assert_eq!(pol.network, Network::Host, "{net}");
            assert!(
                pol.binds
                    .iter()
                    .any(|b| b.target == Path::new("/etc/resolv.conf"))
            );
        }
        let p = perms(&["fs:read:/data/In", "fs:write:/srv/out", "read_data"]);
        let pol = Policy::for_plugin(
            &grant(TrustLevel::Verified, &p, false),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert_eq!(pol.network, Network::None);
        let data = pol
            .binds
            .iter()
            .find(|b| b.target == Path::new("/data/In"))
            .unwrap();
        assert_eq!(data.access, Access::ReadOnly);
        let out = pol
            .binds
            .iter()
            .find(|b| b.target == Path::new("/srv/out"))
            .unwrap();
        assert_eq!(out.access, Access::ReadWrite);
        assert!(pol.notes.iter().any(|n| n.contains("read_data")));
    }

    #[test]
    fn file_system_permission_uses_operator_paths() {
        let p = perms(&["file_system"]);
        let op = OperatorSettings {
            file_system_paths: vec![PathBuf::from("/srv/shared")],
            ..OperatorSettings::default()
        };
        let pol = Policy::for_plugin(&grant(TrustLevel::Verified, &p, false), &op).unwrap();
        assert!(
            pol.binds
                .iter()
                .any(|b| b.target == Path::new("/srv/shared") && b.access == Access::ReadOnly)
        );
        let pol = Policy::for_plugin(
            &grant(TrustLevel::Verified, &p, false),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert!(pol.notes.iter().any(|n| n.contains("no file-system paths")));
    }

    #[test]
    fn http_servers_get_private_loopback_at_every_trust_level() {
        for t in [
            TrustLevel::Sandboxed,
            TrustLevel::Verified,
            TrustLevel::Trusted,
        ] {
            let pol =
                Policy::for_plugin(&grant(t, &[], true), &OperatorSettings::default()).unwrap();
            assert_eq!(pol.network, Network::PrivateLoopback, "{t}");
        }
        let pol = Policy::for_plugin(
            &grant(TrustLevel::Trusted, &[], false),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert_eq!(pol.network, Network::Host);
        assert!(!pol.require_full_isolation);
    }

    #[test]
    fn resources_may_ask_for_less_and_operator_may_allow_more() {
        let mut g = grant(TrustLevel::Sandboxed, &[], false);
        g.resources = ResourceRequest {
            memory_bytes: Some(64 * MIB),
            processes: Some(500),
            cpu_cores: Some(4.0),
            ..Default::default()
        };
        let pol = Policy::for_plugin(&g, &OperatorSettings::default()).unwrap();
        assert_eq!(pol.limits.memory_bytes, 64 * MIB);
        assert_eq!(pol.limits.processes, 100);
        assert_eq!(pol.limits.cpu_cores, Some(1.0));
        assert!(
            pol.notes
                .iter()
                .any(|n| n.contains("processes request 500"))
        );
        let mut op = OperatorSettings::default();
        op.ceilings.processes = 1000;
        op.ceilings.cpu_cores = None;
        let pol = Policy::for_plugin(&g, &op).unwrap();
        assert_eq!(pol.limits.processes, 500);
        assert_eq!(pol.limits.cpu_cores, Some(4.0));
        let d = Policy::for_plugin(
            &grant(TrustLevel::Sandboxed, &[], false),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert_eq!(d.limits, Limits::default());
    }

    #[test]
    fn bad_permissions_are_rejected_with_reasons() {
        for bad in [
            "fs:read:relative/x",
            "fs:read:/a/../etc",
            "fs:exec:/x",
            "fs:write",
            "fs:read:/",
            "",
        ] {
            let err = parse_permission(bad).unwrap_err();
            assert!(
                matches!(err, PolicyError::BadPermission { .. }),
                "{bad}: {err}"
            );
        }
        let long = "x".repeat(5000);
        assert!(parse_permission(&long).is_err());
        assert_eq!(
            parse_permission("docker:restart").unwrap(),
            PermissionEffect::NoSandboxEffect
        );
        assert_eq!(
            parse_permission("fs:read").unwrap(),
            PermissionEffect::OperatorPaths
        );
    }

    #[test]
    fn validate_refuses_dangerous_binds() {
        let mut p = Policy::sandboxed();
        p.binds.push(Bind::read_only("/", "/"));
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("sandbox root")
        );
        let mut p = Policy::sandboxed();
        p.binds.push(Bind::read_write("/etc", "/proc/sys"));
        assert!(p.validate().unwrap_err().to_string().contains("/proc"));
        let mut p = Policy::sandboxed();
        p.binds.push(Bind::read_only("etc", "/etc2"));
        assert!(p.validate().unwrap_err().to_string().contains("absolute"));
        let mut p = Policy::sandboxed();
        p.limits.memory_bytes = 1;
        assert!(p.validate().is_err());
        let mut p = Policy::sandboxed();
        p.limits.cpu_cores = Some(f64::NAN);
        assert!(p.validate().is_err());
        assert!(Policy::sandboxed().validate().is_ok());
    }

    #[test]
    fn trust_level_parses_and_rejects() {
        assert_eq!(
            "Verified".parse::<TrustLevel>().unwrap(),
            TrustLevel::Verified
        );
        assert!(
            "root"
                .parse::<TrustLevel>()
                .unwrap_err()
                .to_string()
                .contains("sandboxed, verified or trusted")
        );
    }

    #[test]
    fn interpreter_paths_follow_venvs() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::fs::write(base.join("bin/python3.11"), "").unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::os::unix::fs::symlink(base.join("bin/python3.11"), venv.join("bin/python")).unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}\n", base.join("bin").display()),
        )
        .unwrap();
        let got = interpreter_paths(&venv.join("bin/python")).unwrap();
        let base = std::fs::canonicalize(&base).unwrap();
        assert!(got.contains(&venv), "{got:?}");
        assert!(
            got.contains(&base) || got.contains(&dir.path().join("base")),
            "{got:?}"
        );
        assert!(
            interpreter_paths(Path::new("/usr/bin/env"))
                .unwrap()
                .is_empty()
        );
    }
}
