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
    /// A `verified` plugin without a signature.
    #[error(
        "plugin `{id}` asks for trust level `verified`, which requires a signature by a trusted key, but it is unsigned (no {expected}); sign it with `plugd sign <package>` and trust the key with `plugd key trust`, or install it as `sandboxed`"
    )]
    VerifiedNeedsSignature {
        /// The plugin id.
        id: String,
        /// Where the signature was looked for.
        expected: String,
    },
    /// A `verified` plugin signed by a key that is not trusted.
    #[error(
        "plugin `{id}` asks for trust level `verified`, but its signature is by untrusted key {key_id}; if you trust the signer, add the key with `plugd key trust <public-key>`"
    )]
    UntrustedSigner {
        /// The plugin id.
        id: String,
        /// The signing key's id.
        key_id: String,
    },
    /// The package's signature failed to verify.
    #[error("the signature {path} was refused")]
    Signature {
        /// The signature file.
        path: String,
        /// What failed: bad signature, digest, id or version mismatch.
        #[source]
        source: plugd_package::SignatureError,
    },
    /// A keyring operation failed.
    #[error("the keyring failed")]
    Keys(#[from] crate::trust::KeyError),
    /// High-severity scan findings block a `trusted` or `verified` install.
    #[error(
        "plugin `{id}` is `{trust_level}` but the security scan found {high} high-severity finding(s):\n{}\nreview the code, then re-run with --accept-findings to install anyway, or install it as `sandboxed`",
        top.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n")
    )]
    FindingsBlock {
        /// The plugin id.
        id: String,
        /// Its trust level.
        trust_level: String,
        /// How many high findings.
        high: usize,
        /// The top findings, one line each.
        top: Vec<String>,
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
    /// `plugd test` was pointed at a plugin that does not speak the envelope.
    #[error(
        "plugd test checks the NDJSON protocol, which `{id}` does not speak (runtime `{runtime}`); try it with `plugd install` and `plugd exec` instead"
    )]
    NotConformanceTestable {
        /// The plugin id.
        id: String,
        /// Its runtime.
        runtime: String,
    },
    /// Warm pools exist only for runtimes that keep a process between calls.
    #[error(
        "`{id}` is a `{runtime}` plugin, which starts one process per call; warm pools (and `plugd bench`) need an `ndjson` or `python-function` plugin"
    )]
    NoWarmWorkers {
        /// The plugin id.
        id: String,
        /// Its runtime.
        runtime: String,
    },
    /// A plugd setting (environment variable) or a pool start failed.
    #[error("{0}")]
    Settings(String),
    /// The new version of an update failed its health check and was not made active.
    #[error(
        "{id} {version} is installed but was not made active: its health check failed: {reason}; fix the plugin and update again, or try it with `plugd test`"
    )]
    Unhealthy {
        /// The plugin id.
        id: String,
        /// The version checked.
        version: String,
        /// What went wrong.
        reason: String,
    },
    /// An update asks for permissions the active version does not have.
    #[error(
        "{id} {version} asks for permissions the active version does not have: {}; review them and run the update again with --accept-permissions",
        added.join(", ")
    )]
    PermissionsWidened {
        /// The plugin id.
        id: String,
        /// The offered version.
        version: String,
        /// The new permissions.
        added: Vec<String>,
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
    /// A Python requirement (manifest or `requirements.txt`) was refused.
    #[error("plugin `{id}`: the Python requirement `{text}` in {place} was refused: {reason}")]
    Requirement {
        /// The plugin id.
        id: String,
        /// Where it was written (`requirements.txt line 3`, the manifest).
        place: String,
        /// The offending text.
        text: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// Python packages are declared but no Python interpreter was found.
    #[error(
        "plugin `{id}` declares Python packages, but no `python3` was found on PATH to build its environment; install Python 3 (with the venv module) and try again"
    )]
    PythonMissing {
        /// The plugin id.
        id: String,
    },
    /// Building the plugin's environment failed (venv, pip or Rscript).
    #[error(
        "could not prepare the environment of plugin `{id}`: {step} failed: {detail}\nnothing was installed; fix the cause (package names, network, index) and install again"
    )]
    EnvBuild {
        /// The plugin id.
        id: String,
        /// The step (`pip install`, `python -m venv`, …).
        step: String,
        /// What happened, with the tool's last output lines.
        detail: String,
    },
    /// R packages are declared but `Rscript` was not found.
    #[error(
        "plugin `{id}` needs the R packages {}, but `Rscript` was not found on PATH; install R (e.g. `apt-get install r-base-core`) and the packages, then install the plugin again",
        packages.join(", ")
    )]
    RscriptMissing {
        /// The plugin id.
        id: String,
        /// The R packages it declares.
        packages: Vec<String>,
    },
    /// Declared R packages are not installed on this machine.
    #[error(
        "plugin `{id}` needs R packages that are not installed: {}; install them with `Rscript -e 'install.packages(c({}))'` (or your distribution's packages: {}), then install the plugin again",
        missing.join(", "),
        missing.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", "),
        missing.iter().map(|m| format!("r-cran-{}", m.to_lowercase())).collect::<Vec<_>>().join(" ")
    )]
    RPackagesMissing {
        /// The plugin id.
        id: String,
        /// The packages `requireNamespace` could not load.
        missing: Vec<String>,
    },
}
