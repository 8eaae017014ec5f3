//! The values the store takes and gives back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A version about to be committed by [`Store::commit_install`](crate::Store::commit_install).
///
/// The store does not look inside `manifest_json`; it keeps it verbatim for the host to parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVersion {
    /// Plugin id (one safe path component; the host checks it is kebab-case).
    pub id: String,
    /// Human-readable name; becomes the plugin's name while this version is active.
    pub name: String,
    /// Version string (semver in practice; one safe path component in any case).
    pub version: String,
    /// Content digest of the package tree; decides whether a reinstall is a no-op.
    pub digest: String,
    /// The normalised manifest, serialised by the host.
    pub manifest_json: String,
    /// The runtime name (`ndjson`, `python-function`, …).
    pub runtime: String,
    /// `trusted`, `verified` or `sandboxed`.
    pub trust_level: String,
    /// Where the package came from (a path or URL), for `plugd info`.
    pub source: String,
    /// Whether a newly created plugin starts enabled. Ignored when the plugin exists already:
    /// installing another version never changes the enabled state.
    pub enable: bool,
}

/// What [`Store::commit_install`](crate::Store::commit_install) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The version was moved into the store and recorded.
    Installed {
        /// The version's directory (`$PLUGD_HOME/store/<id>/<version>`).
        dir: PathBuf,
    },
    /// The same id, version and digest were installed already; nothing changed and the staged
    /// copy was discarded.
    AlreadyInstalled {
        /// The directory of the copy already installed.
        dir: PathBuf,
    },
}

impl CommitOutcome {
    /// The installed version's directory, whichever way it got there.
    pub fn dir(&self) -> &std::path::Path {
        match self {
            CommitOutcome::Installed { dir } | CommitOutcome::AlreadyInstalled { dir } => dir,
        }
    }
}

/// Why a version becomes the active one, as written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationEvent {
    /// Switching to a newer version (after its health check).
    Update,
    /// Switching back to an older version, usually with a reason.
    Rollback,
}

impl ActivationEvent {
    /// The audit log's event name: `update` or `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationEvent::Update => "update",
            ActivationEvent::Rollback => "rollback",
        }
    }
}

/// One installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRecord {
    /// Plugin id.
    pub id: String,
    /// Name of the active version.
    pub name: String,
    /// Whether the plugin may run.
    pub enabled: bool,
    /// The version that runs.
    pub active_version: String,
    /// When the first version was installed (RFC 3339, UTC).
    pub installed_at: String,
    /// When the plugin row last changed (RFC 3339, UTC).
    pub updated_at: String,
}

/// One installed version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    /// Plugin id.
    pub plugin_id: String,
    /// Version string.
    pub version: String,
    /// The name this version's manifest gives the plugin.
    pub name: String,
    /// Content digest of the package tree.
    pub digest: String,
    /// The normalised manifest as the host serialised it.
    pub manifest_json: String,
    /// Runtime name.
    pub runtime: String,
    /// Trust level.
    pub trust_level: String,
    /// Where the package came from.
    pub source: String,
    /// When this version was installed (RFC 3339, UTC).
    pub installed_at: String,
    /// Whether this is the plugin's active version.
    pub active: bool,
    /// The security scanner's findings, as JSON, once recorded.
    pub scan_json: Option<String>,
    /// Who signed the package, once verified.
    pub signer: Option<String>,
}

/// One execution of one plugin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Unique id (the host uses a UUID); recording the same id twice is refused.
    pub id: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Version that ran.
    pub version: String,
    /// Action called, if any.
    pub action: Option<String>,
    /// Envelope status: `ok`, `error` or `busy`.
    pub status: String,
    /// Envelope code, if any.
    pub code: Option<i64>,
    /// When the call started, RFC 3339. Stored (and returned) normalised to UTC with
    /// microseconds, so that history sorts by time.
    pub started_at: String,
    /// Wall-clock duration in microseconds.
    pub duration_us: u64,
    /// The error message, for failed calls.
    pub error_message: Option<String>,
    /// CPU time used, when the sandbox measured it.
    pub cpu_time_us: Option<u64>,
    /// Peak memory, when the sandbox measured it.
    pub peak_memory_bytes: Option<u64>,
    /// Why the process ended (`exit`, `timeout`, `oom`, `signal`, …), when known.
    pub end_reason: Option<String>,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log; increases by one per entry.
    pub seq: i64,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// Plugin id.
    pub plugin_id: String,
    /// `install`, `enable`, `disable`, `update`, `rollback` or `uninstall`.
    pub event: String,
    /// The version concerned (the new one for `update`/`rollback`).
    pub version: Option<String>,
    /// The version active before, for events that change it.
    pub from_version: Option<String>,
    /// Free text: the rollback reason, the versions an uninstall removed, …
    pub detail: Option<String>,
}

/// A marketplace review of a plugin (installed or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Unique id (a UUID).
    pub id: String,
    /// The plugin reviewed.
    pub plugin_id: String,
    /// 1 to 5 stars.
    pub rating: u8,
    /// Who wrote it, if given.
    pub author: Option<String>,
    /// The text, if any.
    pub comment: Option<String>,
    /// When it was written (RFC 3339, UTC).
    pub at: String,
}

/// The ratings of one plugin, summed up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatingSummary {
    /// The plugin.
    pub plugin_id: String,
    /// How many ratings there are.
    pub count: u64,
    /// Their mean, when there is at least one.
    pub average: Option<f64>,
}

/// What [`Store::check`](crate::Store::check) found; everything empty and `integrity` equal to
/// `["ok"]` means the store is consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreCheck {
    /// The lines of SQLite's `PRAGMA integrity_check` (`["ok"]` when sound).
    pub integrity: Vec<String>,
    /// `(id, version)` rows whose directory is missing (someone deleted it by hand).
    pub rows_without_dir: Vec<(String, String)>,
    /// Directories under `store/` without a row (garbage that the next `open` removes).
    pub dirs_without_row: Vec<PathBuf>,
    /// Plugins whose active version has no row.
    pub dangling_active: Vec<String>,
}

impl StoreCheck {
    /// Whether nothing was found.
    pub fn is_ok(&self) -> bool {
        self.integrity == ["ok"]
            && self.rows_without_dir.is_empty()
            && self.dirs_without_row.is_empty()
            && self.dangling_active.is_empty()
    }
}
