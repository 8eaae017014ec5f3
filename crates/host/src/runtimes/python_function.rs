//! `python-function` plugins (DESIGN §4).

use plugd_runtime::CallReport;

use super::RunContext;
use crate::{Host, HostError};

impl Host {
    pub(crate) async fn run_python_function(
        &self,
        cx: &RunContext<'_>,
    ) -> Result<CallReport, HostError> {
        Err(HostError::RuntimeNotBuilt {
            id: cx.manifest.id.clone(),
            runtime: cx.manifest.runtime.to_string(),
        })
    }
}
