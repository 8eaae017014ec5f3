//! What the host hands back to its callers: serde types shaped for people and for
//! `--json`, built from store records and stored manifests.

use serde::Serialize;

/// What an install or update did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// Whether anything changed.
    pub status: InstallStatus,
    /// The plugin id.
    pub id: String,
    /// The plugin's display name.
    pub name: String,
    /// The version installed.
    pub version: String,
    /// The canonical digest of the package's files.
    pub digest: String,
    /// The runtime plugd will use.
    pub runtime: String,
    /// The trust level the plugin runs at.
    pub trust_level: String,
    /// The manifest dialect the package was written in.
    pub dialect: String,
    /// Whether the plugin is enabled after the operation.
    pub enabled: bool,
    /// Whether this version is now the active one.
    pub active: bool,
    /// The version that was active before (for updates).
    pub previous_version: Option<String>,
    /// Where the version's files live.
    pub dir: String,
    /// The security scan's summary (the full report is stored with the version).
    pub scan: crate::trust::ScanSummary,
    /// What the signature check found.
    pub signature: crate::trust::SignatureCheck,
    /// Things the operator should know: findings let through, an untrusted signer.
    pub warnings: Vec<String>,
}

/// Whether an install changed the store.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InstallStatus {
    /// A new version was stored.
    Installed,
    /// The same id, version and digest were already installed: nothing changed.
    Unchanged,
}

/// One installed plugin, as `list` and `info` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    /// The plugin id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Whether calls are allowed.
    pub enabled: bool,
    /// The version calls go to.
    pub active_version: String,
    /// The active version's runtime.
    pub runtime: String,
    /// The active version's trust level.
    pub trust_level: String,
    /// The active version's description.
    pub description: Option<String>,
    /// The active version's declared actions.
    pub actions: Vec<String>,
    /// When the plugin was first installed.
    pub installed_at: String,
    /// When its state last changed.
    pub updated_at: String,
    /// Every installed version, newest first (only filled by `info`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionView>,
    /// The audit log of this plugin, newest first (only filled by `info`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<plugd_store::AuditEntry>,
}

/// One installed version of a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// The version.
    pub version: String,
    /// Whether it is the active one.
    pub active: bool,
    /// The canonical digest of its files.
    pub digest: String,
    /// Its runtime.
    pub runtime: String,
    /// Its trust level.
    pub trust_level: String,
    /// Where it was installed from.
    pub source: String,
    /// When it was installed.
    pub installed_at: String,
    /// Where its files live.
    pub dir: String,
    /// The security scan report stored at install (`null` when not recorded).
    pub scan: Option<plugd_scan::ScanReport>,
    /// Who signed it (`null` when unsigned).
    pub signer: Option<crate::trust::SignatureCheck>,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// The plugin id.
    pub id: String,
    /// The version that was active.
    pub from_version: String,
    /// The version now active.
    pub to_version: String,
    /// The reason recorded in the audit log.
    pub reason: String,
}
