//! Identity and capabilities: the plugin ends up unprivileged with no way
//! back.
//!
//! Order matters. The bounding set can only be shrunk while `CAP_SETPCAP` is
//! still held, so it goes first. Switching from uid 0 to the sandbox user
//! then clears the permitted and effective sets (no `SECBIT_KEEP_CAPS`).
//! Clearing every set explicitly afterwards covers the user-namespace case,
//! where the uid does not change. `no_new_privs` last: from then on no
//! set-uid binary or file capability can give anything back, and Landlock
//! and seccomp may be applied without `CAP_SYS_ADMIN`.

use crate::message::{LayerPlan, SetupFailure, Step};
use crate::policy::Policy;
use crate::sys::Sys;

/// Drops to the plan's identity and clears capabilities.
pub(crate) fn drop_privileges(
    sys: &dyn Sys,
    plan: &LayerPlan,
    policy: &Policy,
) -> Result<(), SetupFailure> {
    if plan.drop_caps {
        sys.drop_bounding_set()
            .map_err(|e| SetupFailure::io(Step::Capabilities, "dropping the bounding set", &e))?;
    }
    if plan.switch_user {
        sys.set_ids(policy.uid, policy.gid).map_err(|e| {
            SetupFailure::io(
                Step::Identity,
                format!("switching to uid {} gid {}", policy.uid, policy.gid),
                &e,
            )
        })?;
    }
    if plan.drop_caps {
        sys.clear_capabilities()
            .map_err(|e| SetupFailure::io(Step::Capabilities, "clearing capability sets", &e))?;
        sys.set_no_new_privs()
            .map_err(|e| SetupFailure::io(Step::NoNewPrivs, "prctl(PR_SET_NO_NEW_PRIVS)", &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::test::RecordingSys;

    #[test]
    fn bounding_set_before_uid_switch_and_nnp_last() {
        let plan = LayerPlan {
            drop_caps: true,
            switch_user: true,
            ..Default::default()
        };
        let sys = RecordingSys::default();
        drop_privileges(&sys, &plan, &Policy::sandboxed()).unwrap();
        assert_eq!(
            sys.lines(),
            vec![
                "drop_bounding_set",
                "set_ids 65534:65534",
                "clear_capabilities",
                "no_new_privs"
            ]
        );
    }

    #[test]
    fn trusted_keeps_everything() {
        let sys = RecordingSys::default();
        drop_privileges(&sys, &LayerPlan::default(), &Policy::sandboxed()).unwrap();
        assert!(sys.lines().is_empty());
    }

    #[test]
    fn failure_names_the_step() {
        let plan = LayerPlan {
            drop_caps: true,
            switch_user: true,
            ..Default::default()
        };
        let sys = RecordingSys {
            fail_on: Some("set_ids".into()),
            ..Default::default()
        };
        let err = drop_privileges(&sys, &plan, &Policy::sandboxed()).unwrap_err();
        assert_eq!(err.step, Step::Identity);
        assert!(err.detail.contains("uid 65534"));
    }
}
