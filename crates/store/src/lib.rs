//! plugd's store: everything plugd keeps under `$PLUGD_HOME`.
//!
//! # What it owns
//!
//! ```text
//! $PLUGD_HOME/            mode 0700
//!   plugd.db              SQLite database (+ plugd.db-wal, plugd.db-shm)
//!   store/<id>/<version>/ the files of one installed version (read-only; made so by the caller)
//!   staging/<uuid>/       an install in progress, with its lock file staging/<uuid>.lock
//!   lock                  advisory flock(2) lock serialising changes to the store
//! ```
//!
//! [`Store`] is the entry point: [`Store::open`], [`Store::stage`] and
//! [`Store::commit_install`] to install, then the listing, state, history and audit calls.
//! [`Staging`] is a directory the caller unpacks into. The records ([`NewVersion`],
//! [`PluginRecord`], [`VersionRecord`], [`ExecutionRecord`], [`AuditEntry`], [`Review`]) are
//! plain serde types; [`StoreError`] is the one error type. [`PluginStore`] is the same API as
//! an object-safe trait, for the host and server to hold as `Arc<dyn PluginStore>` (and to fake
//! in their tests).
//!
//! The store knows nothing about manifests (it keeps the host's JSON verbatim), archives or
//! running plugins. It is synchronous: every call is one short SQLite statement or
//! transaction, cheap enough to make from async code.
//!
//! # Why it is built this way
//!
//! **The database is the source of truth.** A version exists exactly when its row does; a
//! directory under `store/` without a row is garbage. An install is therefore: unpack into
//! staging (slow, no lock held), then, under the home lock and inside one `BEGIN IMMEDIATE`
//! transaction, check the rows, `rename(2)` the package root to `store/<id>/<version>` (atomic,
//! same filesystem), insert the rows, commit. Killed at any instant, the process leaves either
//! the old state or the new one, at worst with a directory that has no row, which the next
//! [`Store::open`] removes under the lock. Uninstall is the mirror image: delete the rows in one
//! transaction, then the directories. Before commit the filesystem is flushed (`syncfs`) and
//! after the rename the parent directories are `fsync`ed, so the same holds after a power cut.
//!
//! **Concurrency.** Any number of `plugd` processes (or `Store`s in one process) may share a
//! home. Changes to the set of installed versions take the exclusive `flock` on
//! `$PLUGD_HOME/lock` (so garbage collection never races a commit); every multi-statement
//! change is one `BEGIN IMMEDIATE` transaction, the database is in WAL mode (readers never block
//! the writer) and waits up to 5 s for a busy lock. Staging directories carry their own `flock`
//! held by their owner, so recovery removes exactly those whose owner died, without PID files
//! (see the `lock` module for why).
//!
//! **Refusing foreign files.** `open` reads the SQLite header with plain file I/O and checks
//! `user_version` and `application_id` before its first write, so a file that is not plugd's,
//! or was written by a newer plugd, is refused and left byte-for-byte untouched.
//!
//! # Schema
//!
//! Versioned by `PRAGMA user_version`; migrations (`schema.rs`) are an append-only list, run in
//! one transaction. Tables:
//!
//! | table | key | columns |
//! | --- | --- | --- |
//! | `plugins` | `id` | `name`, `enabled` (0/1), `active_version`, `installed_at`, `updated_at` |
//! | `versions` | `(plugin_id, version)` | `name`, `digest`, `manifest_json`, `runtime`, `trust_level`, `source`, `installed_at`, `scan_json`?, `signer`? |
//! | `audit_log` | `seq` | `at`, `plugin_id`, `event`, `version`?, `from_version`?, `detail`? (append-only) |
//! | `executions` | `id` | `plugin_id`, `version`, `action`?, `status`, `code`?, `started_at`, `duration_us`, `error_message`?, `cpu_time_us`?, `peak_memory_bytes`?, `end_reason`? |
//! | `reviews` | `id` | `plugin_id`, `rating` (1–5), `author`?, `comment`?, `at` |
//!
//! Indexes: `audit_log (plugin_id, seq)`, `executions (plugin_id, started_at)`,
//! `executions (started_at)`, `reviews (plugin_id, at)`.
//!
//! The schema must also run on PostgreSQL, so the migrations use only portable SQL: `TEXT`,
//! `INTEGER`/`BIGINT`, explicit primary keys, `CHECK`s and `REFERENCES`; timestamps are RFC 3339
//! UTC text with microseconds (fixed width, so text order is time order); the audit `seq` is
//! computed with `MAX(seq) + 1` in the writing transaction instead of relying on rowids. The
//! SQLite-specific parts all live in Rust, not in the migrations: the `PRAGMA`s
//! (`user_version`, `application_id`, `journal_mode = WAL`, `foreign_keys`, `integrity_check`),
//! `BEGIN IMMEDIATE`, the busy timeout and the `sqlite_master` lookup in `open`. A PostgreSQL
//! port would keep the schema version in a one-row table.

mod error;
mod fsutil;
mod lock;
mod names;
mod records;
mod schema;
mod staging;
mod store;

use std::path::{Path, PathBuf};

pub use crate::error::StoreError;
pub use crate::records::{
    ActivationEvent, AuditEntry, CommitOutcome, ExecutionRecord, NewVersion, PluginRecord,
    RatingSummary, Review, StoreCheck, VersionRecord,
};
pub use crate::staging::Staging;
pub use crate::store::{DB_FILE, INVALID_VERSION_DIR, LOCK_FILE, STAGING_DIR, STORE_DIR, Store};

/// The newest database schema version this build understands (`PRAGMA user_version`).
pub fn schema_version() -> i64 {
    schema::latest_version()
}

/// [`Store`]'s API as an object-safe trait, so the host and the server can hold an
/// `Arc<dyn PluginStore>` and tests can substitute a fake. Each method behaves exactly like the
/// [`Store`] method of the same name.
pub trait PluginStore: Send + Sync {
    /// See [`Store::home`].
    fn home(&self) -> &Path;
    /// See [`Store::stage`].
    fn stage(&self) -> Result<Staging, StoreError>;
    /// See [`Store::commit_install`].
    fn commit_install(
        &self,
        staging: Staging,
        package_root: &Path,
        new: &NewVersion,
        activate: bool,
    ) -> Result<CommitOutcome, StoreError>;
    /// See [`Store::version_dir`].
    fn version_dir(&self, id: &str, version: &str) -> PathBuf;
    /// See [`Store::plugins`].
    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError>;
    /// See [`Store::plugin`].
    fn plugin(&self, id: &str) -> Result<Option<PluginRecord>, StoreError>;
    /// See [`Store::versions`].
    fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError>;
    /// See [`Store::version`].
    fn version(&self, id: &str, version: &str) -> Result<Option<VersionRecord>, StoreError>;
    /// See [`Store::set_enabled`].
    fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError>;
    /// See [`Store::activate`].
    fn activate(
        &self,
        id: &str,
        version: &str,
        event: ActivationEvent,
        reason: Option<&str>,
    ) -> Result<String, StoreError>;
    /// See [`Store::uninstall`].
    fn uninstall(&self, id: &str) -> Result<Vec<String>, StoreError>;
    /// See [`Store::record_execution`].
    fn record_execution(&self, rec: &ExecutionRecord) -> Result<(), StoreError>;
    /// See [`Store::executions`].
    fn executions(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// See [`Store::audit`].
    fn audit(&self, plugin: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Fault injection for the crash tests: a child test process sets a point and `abort()`s there,
/// so the parent can check what a real death at that instant leaves behind.
#[cfg(test)]
pub(crate) mod crash {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Where to die.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub(crate) enum Point {
        None = 0,
        AfterRename = 1,
        AfterUninstallCommit = 2,
    }

    static ARMED: AtomicU8 = AtomicU8::new(Point::None as u8);

    pub(crate) fn arm(point: Point) {
        ARMED.store(point as u8, Ordering::SeqCst);
    }

    pub(crate) fn hit(point: Point) {
        if point != Point::None && ARMED.load(Ordering::SeqCst) == point as u8 {
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod crash_tests;
