use plugd_manifest::LoadError;
use plugd_package::PackageError;
use plugd_runtime::RuntimeError;
use plugd_store::StoreError;

/// Why a host operation failed. Lower crates' errors are kept as sources, so the
/// CLI can print the whole chain; the variants defined here are the host's own
/// policy decisions, each worded as what the user can do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The package could not be read or was refused while unpacking.
    #[error("the package was refused")]
    Package(#[from] PackageError),
    /// The manifest is missing, unreadable or invalid.
    #[error("the manifest was refused")]
    Manifest(#[from] LoadError),
    /// The store (database or on-disk layout) failed.
    #[error("the plugd store failed")]
    Store(#[from] StoreError),
    /// The runtime could not start the plugin.
    #[error("the plugin could not be started")]
    Runtime(#[from] RuntimeError),
    /// A file-system step of the host itself failed.
    #[error("{context}")]
    Io {
        /// What the host was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No plugin with this id is installed.
    #[error("plugin `{id}` is not installed (see `plugd list`)")]
    NotInstalled {
        /// The id asked for.
        id: String,
    },
    /// `install` of an id that is already installed at another version.
    #[error(
        "plugin `{id}` is already installed (active version {active}); to install version {offered} beside it, run `plugd update {id} <package>`"
    )]
    AlreadyInstalled {
        /// The plugin id.
        id: String,
        /// The active version.
        active: String,
        /// The version in the offered package.
        offered: String,
    },
    /// `update` given a package for another plugin.
    #[error(
        "the package is plugin `{found}`, not `{expected}`; install it with `plugd install` instead"
    )]
    UpdateIdMismatch {
        /// The id named on the command line.
        expected: String,
        /// The id in the package's manifest.
        found: String,
    },
    /// `update` given a version that is not newer than the active one.
    #[error(
        "version {offered} of `{id}` is not newer than the active version {active}; to go back to an installed version, use `plugd rollback {id} --to VERSION --reason TEXT`"
    )]
    NotNewer {
        /// The plugin id.
        id: String,
        /// The active version.
        active: String,
        /// The offered version.
        offered: String,
    },
    /// `rollback` without `--to` when no earlier version is installed.
    #[error("plugin `{id}` has no installed version older than {active} to roll back to")]
    NoRollbackTarget {
        /// The plugin id.
        id: String,
        /// The active version.
        active: String,
    },
    /// `rollback --to` naming the version that is already active.
    #[error("version {version} of `{id}` is already the active version")]
    AlreadyActive {
        /// The plugin id.
        id: String,
        /// The version.
        version: String,
    },
    /// A rollback without a reason.
    #[error("a rollback needs a reason (`--reason TEXT`): it is recorded in the audit log")]
    ReasonRequired,
    /// The plugin is installed but disabled.
    #[error("plugin `{id}` is disabled; enable it with `plugd enable {id}`")]
    Disabled {
        /// The plugin id.
        id: String,
    },
    /// The plugin asks for a trust level this plugd cannot grant yet.
    #[error(
        "plugin `{id}` asks for trust level `verified`, which requires a signature by a trusted key; plugd does not verify signatures yet, so `verified` plugins are refused (install it as `sandboxed` or `trusted`)"
    )]
    VerifiedNeedsSignature {
        /// The plugin id.
        id: String,
    },
    /// The sandbox cannot be used on this machine or with this configuration.
    #[error(
        "plugd cannot sandbox plugins here: {reason}; run `plugd doctor` to see which isolation layers work"
    )]
    SandboxUnavailable {
        /// Why.
        reason: String,
    },
    /// The manifest asks for something the sandbox policy cannot express.
    #[error("plugin `{id}` cannot be confined: {reason}; fix its `permissions` or `resources`")]
    Policy {
        /// The plugin id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin's runtime is not built yet.
    #[error(
        "plugd cannot run `{runtime}` plugins yet (only `ndjson` is built so far); `{id}` stays installed"
    )]
    RuntimeNotBuilt {
        /// The plugin id.
        id: String,
        /// The runtime named by its manifest.
        runtime: String,
    },
    /// The call named an action the manifest does not declare.
    #[error("plugin `{id}` has no action `{action}`; it declares: {}", known.join(", "))]
    UnknownAction {
        /// The plugin id.
        id: String,
        /// The action asked for.
        action: String,
        /// The actions the manifest declares.
        known: Vec<String>,
    },
    /// The call named no action and the plugin declares several.
    #[error("plugin `{id}` has several actions; name one: {}", known.join(", "))]
    ActionRequired {
        /// The plugin id.
        id: String,
        /// The actions the manifest declares.
        known: Vec<String>,
    },
    /// A stored manifest could not be read back (the database was edited by hand or is damaged).
    #[error("the stored manifest of `{id}` {version} cannot be read back: {message}")]
    StoredManifest {
        /// The plugin id.
        id: String,
        /// The version.
        version: String,
        /// What serde said.
        message: String,
    },
}
