//! The plugd facade: the one crate the command line and the REST server call.
//!
//! A [`Host`] joins the lower crates into the operations a user asks for:
//!
//! - **install / update** ([`Host::install`], [`Host::update`]): read a package
//!   ([`plugd_package`]), unpack it safely into the store's staging area, load and
//!   validate its manifest ([`plugd_manifest`]), scan it ([`plugd_scan`]), digest
//!   it, verify its signature, and commit it with one rename plus one transaction
//!   ([`plugd_store`]); the trust policy (which findings and signatures block
//!   which trust levels) and the keyring live in [`trust`];
//! - **rollback, enable, disable, uninstall**: state changes, each audited;
//! - **execute** ([`Host::exec`]): start the active version of a plugin through its
//!   runtime ([`plugd_runtime`]), and record the execution in the history.
//!
//! The host owns no format, protocol or storage of its own: it decides *order* and
//! *policy* (what is refused, what is recorded), so that the CLI and the server
//! behave the same. Every failure is a [`HostError`], whose message says what to do.
//!
//! Views returned to callers ([`PluginView`], [`InstallReport`], [`ExecOutcome`], …)
//! are plain serde types: the CLI prints them as tables or, with `--json`, as-is.

mod confine;
mod conformance;
mod environment;
mod error;
mod exec;
mod health;
mod lifecycle;
mod pools;
mod runtimes;
pub mod trust;
mod views;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use confine::SandboxMode;
pub use conformance::ConformanceReport;
pub use environment::PluginEnv;
pub use error::HostError;
pub use exec::{ExecOptions, ExecOutcome};
pub use lifecycle::{InstallOptions, Progress, SilentProgress};
pub use pools::BenchReport;
pub use trust::{Keyring, ScanSummary, SignatureCheck, TrustedKey};
pub use views::{InstallReport, InstallStatus, PluginView, RollbackReport, VersionView};

use plugd_runtime::Interpreters;
use plugd_store::Store;

/// Everything a [`Host`] needs to know about its environment.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `$PLUGD_HOME`: the store, the database and the work directories.
    pub home: PathBuf,
    /// Bounds applied while unpacking packages.
    pub unpack_limits: plugd_package::Limits,
    /// How plugin processes are sandboxed.
    pub sandbox: SandboxMode,
}

impl HostConfig {
    /// A configuration with default limits for the given home.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            unpack_limits: plugd_package::Limits::default(),
            sandbox: SandboxMode::default(),
        }
    }
}

/// An open plugd home: the entry point for every operation.
pub struct Host {
    store: Store,
    config: HostConfig,
    /// Discovering interpreters runs `python3` once (costly behind a pyenv shim),
    /// so it happens on the first execution that needs it, never at open.
    interpreters: OnceLock<Interpreters>,
    /// Probed on the first sandboxed execution (see [`Host::sandbox`]).
    sandbox: OnceLock<Result<std::sync::Arc<plugd_sandbox::Sandbox>, String>>,
    /// Warm worker pools, by plugin version (see [`Host::pool`]).
    pools: pools::Pools,
}

impl Host {
    /// Opens (creating when missing) the home named in `config`.
    pub fn open(config: HostConfig) -> Result<Self, HostError> {
        let store = Store::open(&config.home)?;
        let host = Self {
            store,
            config,
            interpreters: OnceLock::new(),
            sandbox: OnceLock::new(),
            pools: pools::Pools::default(),
        };
        host.sweep_envs();
        Ok(host)
    }

    /// The home this host works in.
    pub fn home(&self) -> &Path {
        self.store.home()
    }

    /// The underlying store, for read-only views the facade does not wrap.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn interpreters(&self) -> &Interpreters {
        self.interpreters.get_or_init(Interpreters::discover)
    }
}

/// Loads and validates the manifest of a plugin directory, a package or a manifest
/// file, without installing anything (`plugd validate`).
///
/// A `.tar.gz` is unpacked into a temporary directory first, under the same
/// hostile-input rules as an install.
pub fn validate(
    path: &Path,
    limits: &plugd_package::Limits,
) -> Result<plugd_manifest::Loaded, HostError> {
    if path.is_file()
        && let Ok(source @ plugd_package::Source::Archive(_)) = plugd_package::Source::detect(path)
    {
        let scratch = tempfile::tempdir().map_err(|source| HostError::Io {
            context: "creating a temporary directory to unpack the package".into(),
            source,
        })?;
        let unpacked = plugd_package::unpack(&source, &scratch.path().join("pkg"), limits)?;
        return Ok(plugd_manifest::load(&unpacked.root)?);
    }
    Ok(plugd_manifest::load(path)?)
}
