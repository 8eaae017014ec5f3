//! Cgroups: memory, pids and CPU limits per sandbox, accounting, and
//! teardown.
//!
//! Each sandbox gets its own cgroup, `plugd-sbx-<helper pid>`, created by the
//! helper directly under plugd's own cgroup in every hierarchy that offers a
//! needed controller, and entered by the plugin's process as it is forked
//! (born in the v2 cgroup with `clone3`, moved into v1 ones right after),
//! before any other setup step (so everything it starts is inside). Both
//! cgroup v2 and the v1 controllers some machines still mount (this one has
//! memory, pids and cpu on v1 and an empty v2 hierarchy) are handled: each
//! controller is taken from whichever hierarchy actually has it.
//!
//! On cgroup v2 a controller can only be handed to children of plugd's cgroup
//! if that cgroup has no processes of its own (the "no internal processes"
//! rule) — under systemd, run plugd with `Delegate=yes` and have it live in a
//! leaf of its delegated subtree. When that is not the case the controller is
//! reported unavailable with that reason, never silently dropped.
//!
//! At teardown the helper kills whatever is left
//! (`cgroup.kill` on v2, a kill loop over `cgroup.procs` on v1), reads the
//! accounting and removes the directory. A helper killed with SIGKILL cannot
//! clean up; [`sweep_stale`] removes such leftovers when the next
//! [`crate::Sandbox`] is created.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message::{Layer, LayerStatus};
use crate::policy::Limits;

/// Prefix of every sandbox cgroup's name.
pub(crate) const PREFIX: &str = "plugd-sbx-";

/// Cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Version {
    V1,
    V2,
}

/// One mounted hierarchy and plugd's place in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Hierarchy {
    pub version: Version,
    /// v1: the controllers bound to it; v2: those available in `own`.
    pub controllers: Vec<String>,
    /// Absolute path of plugd's own cgroup directory.
    pub own: PathBuf,
}

/// Decodes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct MountLine {
    root: String,
    mount_point: String,
    fstype: String,
    super_opts: Vec<String>,
}

fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 3 {
        return None;
    }
    Some(MountLine {
        root: unescape(l[3]),
        mount_point: unescape(l[4]),
        fstype: r[0].to_string(),
        super_opts: r[2].split(',').map(str::to_string).collect(),
    })
}

/// plugd's cgroup directory in a hierarchy mounted with `root` at
/// `mount_point`, or `None` if plugd's cgroup is outside what is mounted.
fn own_dir(mount_point: &str, root: &str, cgroup_path: &str) -> Option<PathBuf> {
    let rel = Path::new(cgroup_path).strip_prefix(root).ok()?;
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    Some(Path::new(mount_point).join(rel))
}

/// Finds the hierarchies plugd is in, from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`. Pure, so it is tested on canned inputs; both files
/// are treated as untrusted text (malformed lines are skipped).
pub(crate) fn parse(mountinfo: &str, self_cgroup: &str) -> Vec<Hierarchy> {
    let mounts: Vec<MountLine> = mountinfo.lines().filter_map(parse_mountinfo_line).collect();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            if let Some(m) = mounts.iter().find(|m| m.fstype == "cgroup2")
                && let Some(own) = own_dir(&m.mount_point, &m.root, path)
            {
                out.push(Hierarchy {
                    version: Version::V2,
                    controllers: Vec::new(),
                    own,
                });
            }
            continue;
        }
        let wanted: Vec<&str> = ctrls
            .split(',')
            .filter(|c| !c.is_empty() && !c.starts_with("name="))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        if let Some(m) = mounts.iter().find(|m| {
            m.fstype == "cgroup" && wanted.iter().all(|w| m.super_opts.iter().any(|o| o == w))
        }) && let Some(own) = own_dir(&m.mount_point, &m.root, path)
        {
            out.push(Hierarchy {
                version: Version::V1,
                controllers: wanted.iter().map(|s| s.to_string()).collect(),
                own,
            });
        }
    }
    out
}

/// The hierarchies on this machine, with v2's available controllers filled in.
pub(crate) fn discover() -> Vec<Hierarchy> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut hs = parse(&mountinfo, &cgroup);
    for h in &mut hs {
        if h.version == Version::V2 {
            h.controllers = std::fs::read_to_string(h.own.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
        }
    }
    hs
}

/// A controller the sandbox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Pids,
    Cpu,
    /// Accounting only (v1 `cpuacct`; on v2 `cpu.stat` is always there).
    CpuAcct,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::CpuAcct => "cpuacct",
        }
    }

    fn layer(self) -> Option<Layer> {
        match self {
            Controller::Memory => Some(Layer::CgroupMemory),
            Controller::Pids => Some(Layer::CgroupPids),
            Controller::Cpu => Some(Layer::CgroupCpu),
            Controller::CpuAcct => None,
        }
    }
}

/// The hierarchy that offers `c`: a v1 hierarchy it is bound to, else v2.
///
/// CPU accounting is only taken where it comes free: from v2's `cpu.stat`
/// or a v1 `cpuacct` mounted together with `cpu`. A separate v1 `cpuacct`
/// hierarchy would cost one more cgroup per spawn; the helper then falls
/// back to `wait4`'s rusage.
pub(crate) fn hierarchy_for(hs: &[Hierarchy], c: Controller) -> Option<&Hierarchy> {
    if c == Controller::CpuAcct {
        return hs
            .iter()
            .find(|h| {
                h.version == Version::V1
                    && h.controllers.iter().any(|x| x == "cpuacct")
                    && h.controllers.iter().any(|x| x == "cpu")
            })
            .or_else(|| hs.iter().find(|h| h.version == Version::V2));
    }
    hs.iter()
        .find(|h| h.version == Version::V1 && h.controllers.iter().any(|x| x == c.name()))
        .or_else(|| {
            hs.iter().find(|h| {
                h.version == Version::V2
                    && (c == Controller::CpuAcct || h.controllers.iter().any(|x| x == c.name()))
            })
        })
}

fn unavailable_reason(hs: &[Hierarchy], c: Controller) -> String {
    let v2 = hs.iter().find(|h| h.version == Version::V2);
    match v2 {
        Some(h) => format!(
            "no hierarchy offers the {} controller (cgroup v2 at {} offers: {})",
            c.name(),
            h.own.display(),
            if h.controllers.is_empty() {
                "nothing".to_string()
            } else {
                h.controllers.join(" ")
            }
        ),
        None => format!(
            "no cgroup hierarchy with the {} controller is mounted",
            c.name()
        ),
    }
}

/// One directory of a sandbox cgroup.
#[derive(Debug)]
struct Part {
    version: Version,
    parent: PathBuf,
    dir: PathBuf,
    roles: Vec<Controller>,
}

/// A sandbox's cgroup, across hierarchies.
#[derive(Debug, Default)]
pub(crate) struct SandboxCgroup {
    parts: Vec<Part>,
}

/// Accounting read at teardown.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CgroupStats {
    pub peak_memory: Option<u64>,
    pub oom_kills: u64,
    pub pids_max_hit: bool,
    pub cpu: Option<Duration>,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Enables `controllers` for children of a v2 cgroup.
fn enable_v2(own: &Path, controllers: &[Controller]) -> io::Result<()> {
    let enabled = std::fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| **c != Controller::CpuAcct)
        .filter(|c| !enabled.split_whitespace().any(|e| e == c.name()))
        .map(|c| format!("+{}", c.name()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::write(own.join("cgroup.subtree_control"), missing.join(" ")).map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            io::Error::new(
                e.kind(),
                format!(
                    "cgroup v2 forbids enabling {} below {} while that cgroup holds processes (plugd itself); run plugd in a leaf of a delegated cgroup (systemd: Delegate=yes)",
                    missing.join(" "),
                    own.display()
                ),
            )
        } else {
            io::Error::new(e.kind(), format!("enabling {} in {}: {e}", missing.join(" "), own.display()))
        }
    })
}

fn apply_limit(part: &Part, c: Controller, limits: &Limits) -> io::Result<()> {
    let d = &part.dir;
    match (part.version, c) {
        (Version::V1, Controller::Memory) => {
            write(
                &d.join("memory.limit_in_bytes"),
                &limits.memory_bytes.to_string(),
            )?;
            // Swap counts against the same limit (absent without swap accounting).
            let memsw = d.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &limits.memory_bytes.to_string())?;
            }
            Ok(())
        }
        (Version::V2, Controller::Memory) => {
            write(&d.join("memory.max"), &limits.memory_bytes.to_string())?;
            let swap = d.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
            // Kill the whole sandbox on OOM rather than one arbitrary process.
            let group = d.join("memory.oom.group");
            if group.exists() {
                write(&group, "1")?;
            }
            Ok(())
        }
        (_, Controller::Pids) => write(&d.join("pids.max"), &limits.processes.to_string()),
        (v, Controller::Cpu) => {
            let Some(cores) = limits.cpu_cores else {
                return Ok(());
            };
            let period = 100_000u64;
            let quota = ((cores * period as f64) as u64).max(1000);
            if v == Version::V1 {
                write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&d.join("cpu.cfs_quota_us"), &quota.to_string())
            } else {
                write(&d.join("cpu.max"), &format!("{quota} {period}"))
            }
        }
        (_, Controller::CpuAcct) => Ok(()),
    }
}

impl SandboxCgroup {
    /// Creates `name` in every hierarchy that offers a wanted controller and
    /// applies `limits`. Returns what could not be set up, per layer.
    pub(crate) fn create(
        hs: &[Hierarchy],
        name: &str,
        limits: &Limits,
        wanted: &[Controller],
    ) -> (SandboxCgroup, Vec<(Layer, String)>) {
        let mut skipped = Vec::new();
        let mut cg = SandboxCgroup::default();
        for &c in wanted {
            let Some(h) = hierarchy_for(hs, c) else {
                if let Some(layer) = c.layer() {
                    skipped.push((layer, unavailable_reason(hs, c)));
                }
                continue;
            };
            if let Some(p) = cg.parts.iter_mut().find(|p| p.parent == h.own) {
                p.roles.push(c);
                continue;
            }
            if c == Controller::CpuAcct && h.version == Version::V1 {
                // Accounting alone never justifies another v1 cgroup.
                continue;
            }
            cg.parts.push(Part {
                version: h.version,
                parent: h.own.clone(),
                dir: h.own.join(name),
                roles: vec![c],
            });
        }
        let mut keep = Vec::new();
        for mut part in std::mem::take(&mut cg.parts) {
            let made = (|| -> io::Result<()> {
                if part.version == Version::V2 {
                    enable_v2(&part.parent, &part.roles)?;
                }
                match std::fs::create_dir(&part.dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                    Err(e) => Err(io::Error::new(
                        e.kind(),
                        format!(
                            "cannot create {}: {e} (plugd needs write access to its own cgroup; as non-root, ask for a delegated cgroup)",
                            part.dir.display()
                        ),
                    )),
                }
            })();
            if let Err(e) = made {
                for c in &part.roles {
                    if let Some(layer) = c.layer() {
                        skipped.push((layer, e.to_string()));
                    }
                }
                continue;
            }
            let mut roles = Vec::new();
            for &c in &part.roles {
                match apply_limit(&part, c, limits) {
                    Ok(()) => roles.push(c),
                    Err(e) => {
                        if let Some(layer) = c.layer() {
                            skipped.push((layer, e.to_string()));
                        }
                    }
                }
            }
            part.roles = roles;
            if part.roles.is_empty() {
                let _ = std::fs::remove_dir(&part.dir);
            } else {
                keep.push(part);
            }
        }
        cg.parts = keep;
        (cg, skipped)
    }

    /// Whether `c` is in force.
    pub(crate) fn has(&self, c: Controller) -> bool {
        self.parts.iter().any(|p| p.roles.contains(&c))
    }

    /// Opens what the child needs to join: the v2 directory, to be born in
    /// with `clone3(CLONE_INTO_CGROUP)`, and the v1 `tasks` files, to move
    /// into with [`join_self`].
    ///
    /// The helper itself never joins, and nothing is migrated with
    /// `cgroup.procs`: that takes a global lock whose writer side waits for
    /// an RCU grace period (about 10 ms on this VM). v1's `tasks` with "0"
    /// (the writer itself) skips the lock, and moving the single thread of
    /// the freshly forked child moves the whole process.
    pub(crate) fn open_for_child(&self) -> io::Result<ChildJoin> {
        let mut join = ChildJoin::default();
        for p in &self.parts {
            let open = |path: PathBuf, dir: bool| {
                let mut o = std::fs::OpenOptions::new();
                if dir {
                    o.read(true).custom_flags(libc::O_DIRECTORY);
                } else {
                    o.write(true);
                }
                o.open(&path).map_err(|e| {
                    io::Error::new(e.kind(), format!("opening {}: {e}", path.display()))
                })
            };
            match p.version {
                Version::V1 => join.v1_tasks.push(open(p.dir.join("tasks"), false)?),
                Version::V2 => {
                    join.v2_dir = Some(open(p.dir.clone(), true)?);
                    join.v2_procs = Some(open(p.dir.join("cgroup.procs"), false)?);
                }
            }
        }
        Ok(join)
    }

    pub(crate) fn kill_all(&self) {
        for p in &self.parts {
            let kill_file = p.dir.join("cgroup.kill");
            if p.version == Version::V2 && write(&kill_file, "1").is_ok() {
                continue;
            }
            // v1: no atomic kill. Repeat until empty; pids.max bounds how
            // fast a fork bomb can refill it.
            for _ in 0..200 {
                let procs = std::fs::read_to_string(p.dir.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<i32> = procs
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    let _ = crate::sys::kill(pid, libc::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Reads the accounting.
    pub(crate) fn stats(&self) -> CgroupStats {
        let mut s = CgroupStats::default();
        for p in &self.parts {
            let d = &p.dir;
            for c in &p.roles {
                match (p.version, c) {
                    (Version::V1, Controller::Memory) => {
                        s.peak_memory = read_u64(&d.join("memory.max_usage_in_bytes"));
                        s.oom_kills =
                            read_key(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0);
                    }
                    (Version::V2, Controller::Memory) => {
                        s.peak_memory = read_u64(&d.join("memory.peak"));
                        s.oom_kills = read_key(&d.join("memory.events"), "oom_kill").unwrap_or(0);
                    }
                    (_, Controller::Pids) => {
                        s.pids_max_hit = read_key(&d.join("pids.events"), "max").unwrap_or(0) > 0;
                    }
                    (Version::V1, Controller::CpuAcct) => {
                        s.cpu = read_u64(&d.join("cpuacct.usage")).map(Duration::from_nanos);
                    }
                    (Version::V2, _) if s.cpu.is_none() => {
                        s.cpu =
                            read_key(&d.join("cpu.stat"), "usage_usec").map(Duration::from_micros);
                    }
                    _ => {}
                }
            }
        }
        s
    }

    /// Removes the directories (retrying while dying processes are reaped).
    pub(crate) fn remove(&self) {
        for p in &self.parts {
            for _ in 0..100 {
                match std::fs::remove_dir(&p.dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
    }
}

/// Descriptors the plugin's process uses to enter its cgroups.
#[derive(Debug, Default)]
pub(crate) struct ChildJoin {
    /// v1 `tasks` files.
    pub v1_tasks: Vec<std::fs::File>,
    /// The v2 directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub v2_dir: Option<std::fs::File>,
    /// The v2 `cgroup.procs`, for kernels without `CLONE_INTO_CGROUP`.
    pub v2_procs: Option<std::fs::File>,
}

/// Moves the calling process into the v1 cgroups, and into the v2 one too
/// when it was not born there ("0" names the writer, in any pid namespace).
pub(crate) fn join_self(join: &ChildJoin, born_in_v2: bool) -> io::Result<()> {
    use std::io::Write;
    for mut f in &join.v1_tasks {
        f.write_all(b"0")?;
    }
    if !born_in_v2 && let Some(mut f) = join.v2_procs.as_ref() {
        f.write_all(b"0")?;
    }
    Ok(())
}

/// Removes sandbox cgroups whose helper no longer exists (a helper killed
/// with SIGKILL cannot clean up). Only empty cgroups can be removed, so a
/// live sandbox is never touched.
pub(crate) fn sweep_stale(hs: &[Hierarchy]) -> usize {
    let mut removed = 0;
    for h in hs {
        let Ok(entries) = std::fs::read_dir(&h.own) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() && std::fs::remove_dir(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Checks each cgroup layer for real: creates a probe cgroup with the default
/// limits, then removes it.
pub(crate) fn probe() -> Vec<LayerStatus> {
    let hs = discover();
    let name = format!("plugd-probe-{}", std::process::id());
    let wanted = [Controller::Memory, Controller::Pids, Controller::Cpu];
    let (cg, skipped) = SandboxCgroup::create(&hs, &name, &Limits::default(), &wanted);
    let mut out = Vec::new();
    for c in wanted {
        let layer = c.layer().expect("limit controllers have layers");
        let status = if let Some((_, reason)) = skipped.iter().find(|(l, _)| *l == layer) {
            LayerStatus {
                layer,
                active: false,
                detail: reason.clone(),
            }
        } else {
            let part = cg
                .parts
                .iter()
                .find(|p| p.roles.contains(&c))
                .expect("created");
            LayerStatus {
                layer,
                active: true,
                detail: format!(
                    "cgroup {} under {}",
                    if part.version == Version::V1 {
                        "v1"
                    } else {
                        "v2"
                    },
                    part.parent.display()
                ),
            }
        };
        out.push(status);
    }
    cg.remove();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
36 30 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
garbage line without separator
37 30 0:33 /sub /sys/fs/cgroup/w\\040space rw - cgroup cgroup rw,blkio
";
    const CGROUP_V1: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
7:blkio:/other
0::/
bad
";

    #[test]
    fn parses_mixed_v1_v2() {
        let hs = parse(MOUNTINFO_V1, CGROUP_V1);
        let mem = hierarchy_for(&hs, Controller::Memory).unwrap();
        assert_eq!(mem.version, Version::V1);
        assert_eq!(
            mem.own,
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(
            hierarchy_for(&hs, Controller::Pids).unwrap().own,
            PathBuf::from("/sys/fs/cgroup/pids")
        );
        assert_eq!(
            hierarchy_for(&hs, Controller::Cpu).unwrap().own,
            PathBuf::from("/sys/fs/cgroup/cpu")
        );
        // cpuacct on its own hierarchy costs a cgroup per spawn: accounting
        // falls back to the v2 hierarchy's cpu.stat instead.
        assert_eq!(
            hierarchy_for(&hs, Controller::CpuAcct).unwrap().version,
            Version::V2
        );
        let v2 = hs.iter().find(|h| h.version == Version::V2).unwrap();
        assert_eq!(v2.own, PathBuf::from("/sys/fs/cgroup/unified"));
        // blkio's cgroup (/other) lies outside the mounted root (/sub).
        assert!(
            !hs.iter()
                .any(|h| h.controllers.contains(&"blkio".to_string()))
        );
        // name=systemd is not a controller.
        assert!(
            !hs.iter()
                .any(|h| h.controllers.iter().any(|c| c.starts_with("name=")))
        );
    }

    #[test]
    fn pure_v2_with_nested_cgroup() {
        let mi = "40 22 0:35 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let mut hs = parse(mi, "0::/system.slice/plugd.service\n");
        assert_eq!(hs.len(), 1);
        assert_eq!(
            hs[0].own,
            PathBuf::from("/sys/fs/cgroup/system.slice/plugd.service")
        );
        assert!(hierarchy_for(&hs, Controller::Memory).is_none());
        assert!(unavailable_reason(&hs, Controller::Memory).contains("offers: nothing"));
        hs[0].controllers = vec!["memory".into(), "pids".into()];
        assert_eq!(
            hierarchy_for(&hs, Controller::Memory).unwrap().version,
            Version::V2
        );
        assert!(hierarchy_for(&hs, Controller::Cpu).is_none());
        // cpu.stat accounting exists in every v2 cgroup.
        assert!(hierarchy_for(&hs, Controller::CpuAcct).is_some());
    }

    #[test]
    fn hostile_paths_are_refused() {
        let mi = "40 22 0:35 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert!(parse(mi, "0::/../../etc\n").is_empty());
        assert!(parse(mi, "0::relative\n").is_empty());
        assert!(parse("", CGROUP_V1).is_empty());
        assert!(parse(MOUNTINFO_V1, "").is_empty());
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\04"), "/a\\04");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn reads_keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events"), "low 0\nmax 3\noom_kill 2\n").unwrap();
        assert_eq!(read_key(&dir.path().join("events"), "oom_kill"), Some(2));
        assert_eq!(read_key(&dir.path().join("events"), "nope"), None);
        std::fs::write(dir.path().join("bad"), "max notanumber\n").unwrap();
        assert_eq!(read_key(&dir.path().join("bad"), "max"), None);
    }

    #[test]
    fn limits_are_written_in_the_right_files() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().to_path_buf();
        let hs = vec![Hierarchy {
            version: Version::V1,
            controllers: vec!["memory".into(), "pids".into(), "cpu".into()],
            own: own.clone(),
        }];
        let (cg, skipped) = SandboxCgroup::create(
            &hs,
            "plugd-sbx-1",
            &Limits::default(),
            &[Controller::Memory, Controller::Pids, Controller::Cpu],
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        let d = own.join("plugd-sbx-1");
        assert_eq!(
            std::fs::read_to_string(d.join("memory.limit_in_bytes")).unwrap(),
            "268435456"
        );
        assert_eq!(std::fs::read_to_string(d.join("pids.max")).unwrap(), "100");
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.cfs_quota_us")).unwrap(),
            "100000"
        );
        assert!(cg.has(Controller::Pids));
        // A missing controller is reported per layer.
        let (_, skipped) = SandboxCgroup::create(
            &hs,
            "plugd-sbx-2",
            &Limits::default(),
            &[Controller::CpuAcct],
        );
        assert!(skipped.is_empty());
        let (_, skipped) = SandboxCgroup::create(
            &[],
            "plugd-sbx-3",
            &Limits::default(),
            &[Controller::Memory],
        );
        assert_eq!(skipped[0].0, Layer::CgroupMemory);
    }
}
