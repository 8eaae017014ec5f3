//! Resource limits set with `setrlimit(2)` just before exec.
//!
//! Soft and hard limits are equal (the plugin cannot raise them without
//! `CAP_SYS_RESOURCE`, which it no longer has), except CPU time, whose hard
//! limit is one second above the soft one so the plugin first gets
//! `SIGXCPU` and the accounting can say "cpu" rather than "killed".
//!
//! Two limits are fallbacks for missing cgroups: `RLIMIT_AS` (address space,
//! set generously at 4× the memory limit, at least 1 GiB, because runtimes
//! such as V8 and Go reserve far more address space than they use) and
//! `RLIMIT_NPROC` (counted per user, so with a shared sandbox uid it is a
//! machine-wide cap across all sandboxes rather than a per-plugin one; in a
//! user namespace it is counted per namespace).

use crate::message::{SetupFailure, Step};
use crate::policy::Limits;
use crate::sys::{Resource, Sys};

const GIB: u64 = 1024 * 1024 * 1024;

/// Which cgroup controllers are in force for this spawn.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CgroupCoverage {
    pub memory: bool,
    pub pids: bool,
}

/// The limits to set, as `(resource, soft, hard)`.
pub(crate) fn plan(limits: &Limits, cg: CgroupCoverage) -> Vec<(Resource, u64, u64)> {
    let cpu = limits.cpu_time.as_secs().max(1);
    let mut v = vec![
        (Resource::Core, 0, 0),
        (Resource::Cpu, cpu, cpu + 1),
        (
            Resource::FileSize,
            limits.file_size_bytes,
            limits.file_size_bytes,
        ),
        (Resource::OpenFiles, limits.open_files, limits.open_files),
        (Resource::Stack, limits.stack_bytes, limits.stack_bytes),
    ];
    if !cg.memory {
        let r#as = limits.memory_bytes.saturating_mul(4).max(GIB);
        v.push((Resource::AddressSpace, r#as, r#as));
    }
    if !cg.pids {
        let n = u64::from(limits.processes);
        v.push((Resource::Processes, n, n));
    }
    v
}

/// Sets the limits.
pub(crate) fn apply(
    sys: &dyn Sys,
    limits: &Limits,
    cg: CgroupCoverage,
) -> Result<(), SetupFailure> {
    for (r, soft, hard) in plan(limits, cg) {
        sys.setrlimit(r, soft, hard).map_err(|e| {
            SetupFailure::io(Step::Rlimits, format!("setrlimit({r:?}, {soft})"), &e)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::test::RecordingSys;

    #[test]
    fn defaults_with_cgroups() {
        let p = plan(
            &Limits::default(),
            CgroupCoverage {
                memory: true,
                pids: true,
            },
        );
        assert!(p.contains(&(Resource::Core, 0, 0)));
        assert!(p.contains(&(Resource::Cpu, 30, 31)));
        assert!(p.contains(&(Resource::Stack, 10 << 20, 10 << 20)));
        assert!(
            !p.iter()
                .any(|(r, _, _)| *r == Resource::AddressSpace || *r == Resource::Processes)
        );
    }

    #[test]
    fn fallbacks_without_cgroups() {
        let p = plan(&Limits::default(), CgroupCoverage::default());
        assert!(p.contains(&(Resource::AddressSpace, GIB, GIB)));
        assert!(p.contains(&(Resource::Processes, 100, 100)));
        let big = Limits {
            memory_bytes: 2 * GIB,
            ..Limits::default()
        };
        assert!(plan(&big, CgroupCoverage::default()).contains(&(
            Resource::AddressSpace,
            8 * GIB,
            8 * GIB
        )));
    }

    #[test]
    fn apply_reports_the_failing_limit() {
        let sys = RecordingSys {
            fail_on: Some("setrlimit Cpu".into()),
            ..Default::default()
        };
        let err = apply(&sys, &Limits::default(), CgroupCoverage::default()).unwrap_err();
        assert_eq!(err.step, Step::Rlimits);
        assert!(err.detail.contains("Cpu"));
    }
}
