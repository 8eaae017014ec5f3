//! How the host confines each plugin process: the manifest's trust level,
//! permissions and resources turned into a sandbox [`Policy`] (DESIGN §5).
//!
//! The sandbox is probed once per [`Host`], on the first execution that needs it,
//! because probing starts the helper a few times.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plugd_manifest::Manifest;
use plugd_runtime::Isolation;
use plugd_sandbox::policy::{OperatorSettings, PluginGrant, ResourceRequest, TrustLevel};
use plugd_sandbox::{Helper, LayerStatus, Policy, Sandbox};

use crate::{Host, HostError};

/// Whether and how plugin processes are sandboxed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SandboxMode {
    /// Through the running executable re-executed as the sandbox helper (the
    /// `plugd` binary, whose `main` starts with
    /// `plugd_sandbox::run_helper_if_requested`).
    #[default]
    CurrentExe,
    /// Through this helper binary.
    Helper(PathBuf),
    /// No sandbox: every plugin runs as a plain child process. Only for
    /// embedding hosts that confine plugd itself; `plugd` never uses it.
    Off,
}

/// Extra wall time the sandbox allows beyond the call timeout, so that the
/// host's own timeout (which answers 301) fires first.
const SANDBOX_TIMEOUT_SLACK: Duration = Duration::from_secs(2);

/// What one plugin process looks like, for [`Host::isolation_for`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessShape<'a> {
    /// The plugin files the process sees at `/plugin` (the installed copy, or a
    /// per-call copy for the `file` runtime).
    pub plugin_dir: &'a Path,
    /// Its private work directory, seen at `/work`.
    pub work_dir: &'a Path,
    /// The program it runs (an interpreter's prefix is made visible).
    pub program: &'a Path,
    /// More paths to show read-only (a plugin's virtualenv).
    pub extra_paths: &'a [PathBuf],
    /// How long the call may take; the sandbox's own limit is a little longer.
    pub timeout: Duration,
    /// It is an HTTP server that needs its own loopback network.
    pub http_server: bool,
}

impl Host {
    /// The sandbox, probed on first use. An error says why it cannot be used.
    pub fn sandbox(&self) -> Result<Arc<Sandbox>, HostError> {
        let probed = self.sandbox.get_or_init(|| {
            let helper = match &self.config.sandbox {
                SandboxMode::Off => return Err("the sandbox is switched off".to_string()),
                SandboxMode::CurrentExe => Helper::current_exe()
                    .map_err(|e| format!("cannot find the running executable: {e}"))?,
                SandboxMode::Helper(path) => Helper::at(path.clone()),
            };
            Sandbox::new(helper)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        probed
            .clone()
            .map_err(|reason| HostError::SandboxUnavailable { reason })
    }

    /// What this machine supports, layer by layer (`plugd doctor`).
    pub fn isolation_layers(&self) -> Result<Vec<LayerStatus>, HostError> {
        Ok(self.sandbox()?.layers().to_vec())
    }

    /// The isolation one process of `manifest` gets: its trust level, declared
    /// permissions and resources, the plugin dir at `/plugin`, `work_dir` at
    /// `/work`, and `runtime_paths` (interpreters, environments) visible
    /// read-only.
    pub(crate) fn isolation_for(
        &self,
        manifest: &Manifest,
        process: &ProcessShape<'_>,
    ) -> Result<Isolation, HostError> {
        let ProcessShape {
            plugin_dir,
            work_dir,
            program,
            extra_paths,
            timeout,
            http_server,
        } = *process;
        if self.config.sandbox == SandboxMode::Off {
            return Ok(Isolation::Direct);
        }
        let sandbox = self.sandbox()?;
        let mut runtime_paths = Vec::new();
        if !program.starts_with(plugin_dir) {
            // An interpreter outside the system dirs (a pyenv build) must be visible
            // at its own path, since its prefix is compiled in.
            if let Ok(paths) = plugd_sandbox::policy::interpreter_paths(program) {
                runtime_paths.extend(paths);
            }
        }
        for p in extra_paths {
            if !runtime_paths.contains(p) {
                runtime_paths.push(p.clone());
            }
        }
        let permissions: Vec<String> = manifest
            .permissions
            .iter()
            .map(|p| p.original.clone())
            .collect();
        let grant = PluginGrant {
            trust: trust_of(manifest),
            permissions: &permissions,
            resources: ResourceRequest {
                memory_bytes: manifest.resources.memory,
                cpu_time: None,
                cpu_cores: manifest.resources.cpu,
                processes: manifest.resources.processes,
                timeout: manifest.resources.timeout,
            },
            plugin_dir,
            work_dir,
            runtime_paths: &runtime_paths,
            http_server,
        };
        let policy = Policy::for_plugin(&grant, &OperatorSettings::default())
            .map_err(|e| HostError::Policy {
                id: manifest.id.clone(),
                reason: e.to_string(),
            })?
            .with_timeout(Some(timeout + SANDBOX_TIMEOUT_SLACK));
        for note in &policy.notes {
            tracing::info!(plugin = %manifest.id, "{note}");
        }
        Ok(Isolation::Sandboxed {
            sandbox,
            policy: Box::new(policy),
        })
    }
}

/// The manifest's trust level as the sandbox names it.
pub(crate) fn trust_of(manifest: &Manifest) -> TrustLevel {
    match manifest.trust_level {
        plugd_manifest::TrustLevel::Trusted => TrustLevel::Trusted,
        plugd_manifest::TrustLevel::Verified => TrustLevel::Verified,
        plugd_manifest::TrustLevel::Sandboxed => TrustLevel::Sandboxed,
    }
}
