//! The seccomp filter: a deny list for kernel attack surface a plugin has no
//! business touching, loaded last before `execve`.
//!
//! A deny list, not an allow list: plugins are arbitrary programs in any
//! language, and an allow list tight enough to matter breaks interpreters on
//! every kernel or libc upgrade. What is denied is what container runtimes
//! deny by default plus what the other layers already make pointless (so a
//! failure of one layer does not reopen it): tracing other processes,
//! mounting, namespaces, kernel modules, kexec, BPF, keyrings, perf,
//! io_uring (a large, frequently exploited surface whose operations bypass
//! seccomp), userfaultfd, handle-based opens (`open_by_handle_at`, the
//! "shocker" escape), clocks, swap, reboot, terminal injection (`TIOCSTI`).
//! Denied calls fail with `EPERM`, so well-behaved programs degrade instead
//! of dying; `clone3` fails with `ENOSYS` because its flags live in memory the
//! filter cannot read, and libc then falls back to `clone`, whose namespace
//! flags the filter checks.
//!
//! Any system call made through a foreign ABI (i386 `int 0x80`, x32) kills
//! the process: the list is written for the native numbers, and the same
//! number means a different call elsewhere.
//!
//! # Why the program is generated here
//!
//! `seccompiler` emits one comparison per listed call, in a line. Loading
//! such a filter is slow: the kernel builds a per-syscall action cache by
//! emulating the filter for every syscall number, so a 60-entry line costs
//! about 0.4 ms per spawn on the development VM. This module emits the same
//! decisions as a binary search over the sorted syscall numbers (a handful of
//! comparisons per call), which loads in a fraction of that. `seccompiler`
//! still provides the instruction type and the loading call, and serves as
//! the reference: a unit test compiles the same rules with it and checks,
//! with a small BPF interpreter, that both programs decide every syscall
//! and every interesting argument the same way.

use seccompiler::{BpfProgram, sock_filter};

use crate::message::{SetupFailure, Step};

/// System calls denied outright.
pub(crate) fn denied_syscalls() -> Vec<(&'static str, i64)> {
    macro_rules! sys {
        ($($name:ident),* $(,)?) => {
            vec![$((stringify!($name), libc::$name as i64)),*]
        };
    }
    #[allow(unused_mut, reason = "extended on some architectures only")]
    let mut v = sys![
        SYS_acct,
        SYS_add_key,
        SYS_bpf,
        SYS_chroot,
        SYS_clock_adjtime,
        SYS_clock_settime,
        SYS_delete_module,
        SYS_fanotify_init,
        SYS_finit_module,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fsopen,
        SYS_fspick,
        SYS_init_module,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_io_uring_setup,
        SYS_kcmp,
        SYS_kexec_file_load,
        SYS_kexec_load,
        SYS_keyctl,
        SYS_mount,
        SYS_mount_setattr,
        SYS_move_mount,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_open_tree,
        SYS_perf_event_open,
        SYS_pidfd_getfd,
        SYS_pivot_root,
        SYS_process_madvise,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_ptrace,
        SYS_quotactl,
        SYS_quotactl_fd,
        SYS_reboot,
        SYS_request_key,
        SYS_setdomainname,
        SYS_sethostname,
        SYS_setns,
        SYS_settimeofday,
        SYS_swapoff,
        SYS_swapon,
        SYS_syslog,
        SYS_umount2,
        SYS_unshare,
        SYS_userfaultfd,
        SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend(sys![
        SYS_nfsservctl,
        SYS_uselib,
        SYS_ustat,
        SYS_sysfs,
        SYS__sysctl,
        SYS_iopl,
        SYS_ioperm,
        SYS_lookup_dcookie,
    ]);
    v
}

/// Namespace flags refused in `clone(2)`'s flags argument. (`CLONE_NEWTIME`
/// shares its bit with the exit-signal field of `clone` and is only
/// accepted by `clone3`/`unshare`, both denied.)
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u32;

/// `personality(2)` values that are harmless (Docker's list); anything else
/// (e.g. `ADDR_NO_RANDOMIZE`) is denied.
const PERSONALITY_OK: [u32; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `ioctl(2)` requests denied: typing into the terminal, console control.
const IOCTL_DENIED: [u32; 2] = [libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xC000_00F3;
#[cfg(not(target_endian = "little"))]
compile_error!("the seccomp argument offsets assume a little-endian target");

const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

// seccomp_data offsets: nr, arch, instruction_pointer, args[6].
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian). The kernel truncates the
/// arguments checked here (clone flags' namespace bits, ioctl request,
/// personality) to 32 bits itself, so garbage in the high half is ignored on
/// both sides.
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// What the filter does with one listed syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Errno(u32),
    CloneFlags,
    Ioctl,
    Personality,
}

fn rules() -> Vec<(u32, Rule)> {
    let mut v: Vec<(u32, Rule)> = denied_syscalls()
        .into_iter()
        .map(|(_, nr)| (nr as u32, Rule::Errno(libc::EPERM as u32)))
        .collect();
    v.push((libc::SYS_clone3 as u32, Rule::Errno(libc::ENOSYS as u32)));
    v.push((libc::SYS_clone as u32, Rule::CloneFlags));
    v.push((libc::SYS_ioctl as u32, Rule::Ioctl));
    v.push((libc::SYS_personality as u32, Rule::Personality));
    v.sort_by_key(|(nr, _)| *nr);
    v.dedup_by_key(|(nr, _)| *nr);
    v
}

/// The decision for one syscall whose number is known to be `nr` (A holds
/// the number on entry; the block always returns).
fn leaf(rule: Rule) -> Vec<sock_filter> {
    let deny = RET_ERRNO | libc::EPERM as u32;
    match rule {
        Rule::Errno(e) => vec![stmt(RET_K, RET_ERRNO | e)],
        Rule::CloneFlags => vec![
            stmt(LD_W_ABS, off_arg_lo(0)),
            jump(JSET_K, CLONE_NS_FLAGS, 0, 1),
            stmt(RET_K, deny),
            stmt(RET_K, RET_ALLOW),
        ],
        Rule::Ioctl => {
            let mut v = vec![stmt(LD_W_ABS, off_arg_lo(1))];
            let n = IOCTL_DENIED.len();
            for (i, req) in IOCTL_DENIED.iter().enumerate() {
                // Match → jump to the deny after the remaining checks.
                v.push(jump(JEQ_K, *req, (n - i) as u8, 0));
            }
            v.push(stmt(RET_K, RET_ALLOW));
            v.push(stmt(RET_K, deny));
            v
        }
        Rule::Personality => {
            let mut v = vec![stmt(LD_W_ABS, off_arg_lo(0))];
            let n = PERSONALITY_OK.len();
            for (i, ok) in PERSONALITY_OK.iter().enumerate() {
                v.push(jump(JEQ_K, *ok, (n - i) as u8, 0));
            }
            v.push(stmt(RET_K, deny));
            v.push(stmt(RET_K, RET_ALLOW));
            v
        }
    }
}

/// Binary search over `entries` (sorted by number); A holds the syscall
/// number. Falls through to ALLOW for unlisted numbers.
fn search(entries: &[(u32, Rule)]) -> Vec<sock_filter> {
    if entries.len() <= 3 {
        let mut out = Vec::new();
        for (nr, rule) in entries {
            let body = leaf(*rule);
            out.push(jump(JEQ_K, *nr, 0, body.len() as u8));
            out.extend(body);
        }
        out.push(stmt(RET_K, RET_ALLOW));
        return out;
    }
    let mid = entries.len() / 2;
    let left = search(&entries[..mid]);
    let right = search(&entries[mid..]);
    let mut out = Vec::with_capacity(1 + left.len() + right.len());
    out.push(jump(JGE_K, entries[mid].0, left.len() as u8, 0));
    out.extend(left);
    out.extend(right);
    out
}

/// Builds the filter.
pub(crate) fn build() -> Result<BpfProgram, SetupFailure> {
    let mut prog = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
        // x32 calls carry the native AUDIT_ARCH and differ only in bit 30.
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, RET_KILL_PROCESS),
    ];
    prog.extend(search(&rules()));
    // Every jump offset is a u8: the layout above keeps all targets within
    // 255 instructions only while the whole program does.
    if prog.len() > 255 {
        return Err(SetupFailure::msg(
            Step::Seccomp,
            format!(
                "the generated filter has {} instructions; jump offsets need ≤ 255",
                prog.len()
            ),
        ));
    }
    Ok(prog)
}

/// The program as plain tuples, for the spawn request (the host compiles it
/// once per process instead of every helper building it again).
pub(crate) fn to_wire(prog: &BpfProgram) -> Vec<(u16, u8, u8, u32)> {
    prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
}

/// The inverse of [`to_wire`].
pub(crate) fn from_wire(insns: &[(u16, u8, u8, u32)]) -> BpfProgram {
    insns
        .iter()
        .map(|&(code, jt, jf, k)| sock_filter { code, jt, jf, k })
        .collect()
}

/// Loads the filter into the calling process. Requires `no_new_privs`.
pub(crate) fn apply(prog: &BpfProgram) -> Result<(), SetupFailure> {
    seccompiler::apply_filter(prog)
        .map_err(|e| SetupFailure::msg(Step::Seccomp, format!("loading the filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A classic-BPF interpreter for the instructions seccomp filters use.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    acc =
                        u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
                }
                0x06 => return i.k,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match i.code {
                        0x15 => acc == i.k,
                        0x25 => acc > i.k,
                        0x35 => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                0x05 => pc += i.k as usize,
                // ALU ops seccompiler uses for masked comparisons.
                0x54 => acc &= i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// The same rules compiled by seccompiler: the reference.
    fn reference() -> BpfProgram {
        use seccompiler::{
            SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
            SeccompFilter, SeccompRule, TargetArch,
        };
        let c = |arg, op, v| Cond::new(arg, Len::Dword, op, v).unwrap();
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for (_, nr) in denied_syscalls() {
            rules.insert(nr, vec![]);
        }
        rules.insert(
            libc::SYS_clone,
            (0..32)
                .map(|b| 1u64 << b)
                .filter(|bit| (CLONE_NS_FLAGS as u64) & bit != 0)
                .map(|bit| SeccompRule::new(vec![c(0, Op::MaskedEq(bit), bit)]).unwrap())
                .collect(),
        );
        rules.insert(
            libc::SYS_ioctl,
            IOCTL_DENIED
                .iter()
                .map(|r| SeccompRule::new(vec![c(1, Op::Eq, *r as u64)]).unwrap())
                .collect(),
        );
        rules.insert(
            libc::SYS_personality,
            vec![
                SeccompRule::new(
                    PERSONALITY_OK
                        .iter()
                        .map(|v| c(0, Op::Ne, *v as u64))
                        .collect(),
                )
                .unwrap(),
            ],
        );
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            TargetArch::x86_64,
        )
        .unwrap();
        f.try_into().unwrap()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn agrees_with_seccompiler_on_every_syscall() {
        let ours = build().unwrap();
        let theirs = reference();
        let interesting: Vec<[u64; 6]> = vec![
            [0; 6],
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            [
                libc::CLONE_NEWNET as u64 | libc::SIGCHLD as u64,
                0,
                0,
                0,
                0,
                0,
            ],
            [
                (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64,
                0,
                0,
                0,
                0,
                0,
            ],
            [0x1_0000_0000 | libc::CLONE_NEWPID as u64, 0, 0, 0, 0, 0],
            [3, libc::TIOCSTI, 0, 0, 0, 0],
            [3, libc::TIOCLINUX, 0, 0, 0, 0],
            [3, libc::TCGETS, 0, 0, 0, 0],
            [0x0040000, 0, 0, 0, 0, 0],
            [0xffff_ffff, 0, 0, 0, 0, 0],
            [0x20008, 0, 0, 0, 0, 0],
        ];
        for nr in 0..600u32 {
            for args in &interesting {
                let a = run(&ours, AUDIT_ARCH, nr, *args);
                let mut b = run(&theirs, AUDIT_ARCH, nr, *args);
                // The reference has no clone3 rule; ours answers ENOSYS.
                if nr == libc::SYS_clone3 as u32 {
                    assert_eq!(a, RET_ERRNO | libc::ENOSYS as u32);
                    continue;
                }
                if b == 0x7fff_0000 {
                    b = RET_ALLOW;
                }
                assert_eq!(
                    a, b,
                    "syscall {nr} args {args:x?}: ours {a:#x}, seccompiler {b:#x}"
                );
            }
        }
    }

    #[test]
    fn foreign_abis_are_killed() {
        let p = build().unwrap();
        assert_eq!(run(&p, 0x4000_0003, 1, [0; 6]), RET_KILL_PROCESS, "i386");
        assert_eq!(
            run(&p, AUDIT_ARCH, X32_SYSCALL_BIT | 1, [0; 6]),
            RET_KILL_PROCESS,
            "x32"
        );
        assert_eq!(
            run(&p, AUDIT_ARCH, libc::SYS_read as u32, [0; 6]),
            RET_ALLOW
        );
        assert_eq!(
            run(&p, AUDIT_ARCH, libc::SYS_ptrace as u32, [0; 6]),
            RET_ERRNO | libc::EPERM as u32
        );
        assert_eq!(
            run(
                &p,
                AUDIT_ARCH,
                libc::SYS_clone as u32,
                [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]
            ),
            RET_ERRNO | libc::EPERM as u32
        );
    }

    #[test]
    fn deny_list_covers_the_issue() {
        let names: Vec<&str> = denied_syscalls().iter().map(|(n, _)| *n).collect();
        for must in [
            "SYS_ptrace",
            "SYS_mount",
            "SYS_umount2",
            "SYS_pivot_root",
            "SYS_kexec_load",
            "SYS_kexec_file_load",
            "SYS_bpf",
            "SYS_keyctl",
            "SYS_add_key",
            "SYS_request_key",
            "SYS_perf_event_open",
            "SYS_unshare",
            "SYS_setns",
            "SYS_io_uring_setup",
            "SYS_init_module",
            "SYS_finit_module",
            "SYS_delete_module",
            "SYS_reboot",
            "SYS_swapon",
            "SYS_swapoff",
            "SYS_acct",
            "SYS_userfaultfd",
            "SYS_open_by_handle_at",
        ] {
            assert!(names.contains(&must), "{must} missing");
        }
    }

    #[test]
    fn wire_round_trip() {
        let prog = build().unwrap();
        assert_eq!(to_wire(&from_wire(&to_wire(&prog))), to_wire(&prog));
    }
}
