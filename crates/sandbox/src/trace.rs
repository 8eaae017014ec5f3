//! Step timestamps, to see where a spawn's time goes.
//!
//! With `PLUGD_SANDBOX_TRACE=1` in the host's environment (read when a
//! command is built), the helper and its child record `CLOCK_MONOTONIC` at
//! each setup step and send them to the host as [`Report::Timings`]
//! messages; [`crate::Monitor::timings`] returns them. The clock is the same
//! in every process of the machine (namespaces do not change it; there is no
//! time namespace here), so host-side timestamps taken with
//! [`monotonic_ns`] line up with the helper's. Off by default: it costs a few
//! `clock_gettime` calls and one more report line.
//!
//! [`Report::Timings`]: crate::message::Report::Timings

use serde::{Deserialize, Serialize};

/// Host environment variable that turns step timestamps on.
pub const TRACE_ENV: &str = "PLUGD_SANDBOX_TRACE";

/// Nanoseconds of `CLOCK_MONOTONIC`, the clock the helper's marks use.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// One timestamp: a step that just finished, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMark {
    /// The step (`helper: namespaces`, `child: mounts`, …).
    pub step: String,
    /// [`monotonic_ns`] when it finished.
    pub at_ns: u64,
}

/// Marks recorded by one process; a no-op when tracing is off.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    on: bool,
    marks: Vec<StepMark>,
}

impl Marks {
    pub(crate) fn new(on: bool) -> Marks {
        Marks {
            on,
            marks: Vec::new(),
        }
    }

    /// Records `step` at `at_ns` (for a time taken before the marks existed).
    pub(crate) fn at(&mut self, step: &str, at_ns: u64) {
        if self.on {
            self.marks.push(StepMark {
                step: step.to_string(),
                at_ns,
            });
        }
    }

    /// Records `step` now.
    pub(crate) fn mark(&mut self, step: &str) {
        if self.on {
            self.at(step, monotonic_ns());
        }
    }

    /// The marks, if there are any to send.
    pub(crate) fn take(&mut self) -> Option<Vec<StepMark>> {
        (self.on && !self.marks.is_empty()).then(|| std::mem::take(&mut self.marks))
    }
}

/// Whether the host asked for step timestamps.
pub(crate) fn requested() -> bool {
    std::env::var_os(TRACE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_when_on() {
        let mut off = Marks::new(false);
        off.mark("a");
        assert_eq!(off.take(), None);
        let mut on = Marks::new(true);
        on.mark("a");
        on.mark("b");
        let v = on.take().unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].at_ns <= v[1].at_ns && v[0].at_ns > 0);
        assert_eq!(on.take(), None);
    }
}
