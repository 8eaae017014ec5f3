//! [`Store`]: the on-disk layout, the database, and the operations that keep them in step.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::StoreError;
use crate::error::io;
use crate::fsutil::{create_private_dir, remove_tree, sync_dir, sync_filesystem};
use crate::lock::{HOME_LOCK_TIMEOUT, HomeLock, try_lock};
use crate::names::check_component;
use crate::records::{
    ActivationEvent, AuditEntry, CommitOutcome, ExecutionRecord, NewVersion, PluginRecord,
    RatingSummary, Review, StoreCheck, VersionRecord,
};
use crate::schema;
use crate::staging::{LOCK_SUFFIX, Staging};

/// The database file, relative to the home.
pub const DB_FILE: &str = "plugd.db";
/// The directory of installed versions, relative to the home.
pub const STORE_DIR: &str = "store";
/// The directory of in-progress installs, relative to the home.
pub const STAGING_DIR: &str = "staging";
/// The advisory lock file that serialises changes, relative to the home.
pub const LOCK_FILE: &str = "lock";

/// Where [`Store::version_dir`] points for an id or version that is not a safe path component:
/// under `/dev/null`, so that the path and anything joined to it can never exist (`ENOTDIR`).
pub const INVALID_VERSION_DIR: &str = "/dev/null/plugd-invalid-name";

/// Longest review comment accepted, in bytes.
const MAX_REVIEW_COMMENT: usize = 10_000;
/// Longest review author accepted, in bytes.
const MAX_REVIEW_AUTHOR: usize = 200;

/// plugd's store under `$PLUGD_HOME`: installed versions on disk and the SQLite database.
///
/// `Send + Sync`: one connection behind a mutex, since every call is short. Several `Store`s, in
/// one process or many, may share a home; see the crate documentation for how they stay
/// consistent.
#[derive(Debug)]
pub struct Store {
    home: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens the store at `home`, creating what is missing (the home with mode 0700).
    ///
    /// Under the home lock it then refuses a database that is not plugd's or is newer than this
    /// build (leaving the file untouched), migrates an older one, and removes garbage: staging
    /// directories whose owner died, and version directories that have no database row.
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        create_private_dir(home)?;
        let home = fs::canonicalize(home).map_err(io("resolve", home))?;
        let _lock = HomeLock::acquire(&home.join(LOCK_FILE), HOME_LOCK_TIMEOUT)?;
        create_private_dir(&home.join(STORE_DIR))?;
        create_private_dir(&home.join(STAGING_DIR))?;
        let conn = schema::open(&home.join(DB_FILE))?;
        let store = Store {
            home,
            conn: Mutex::new(conn),
        };
        store.recover_staging()?;
        store.recover_versions()?;
        Ok(store)
    }

    /// The (canonical) home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.home.join(DB_FILE)
    }

    /// A fresh staging directory to unpack a package into; removed when dropped.
    pub fn stage(&self) -> Result<Staging, StoreError> {
        let _lock = self.lock_home()?;
        Staging::create(&self.staging_root())
    }

    /// Moves `package_root` (a directory inside `staging`) into the store as `new` and records it.
    ///
    /// Under the home lock and inside one `BEGIN IMMEDIATE` transaction: checks the database,
    /// renames the package root to `store/<id>/<version>` (one rename), inserts the rows, commits.
    /// A process killed at any point leaves the old state or the new one, plus at worst a
    /// directory without a row, which the next [`Store::open`] removes.
    ///
    /// A new plugin is created disabled unless `new.enable`, and its first version is always
    /// active. For an existing plugin, `activate` decides whether this version becomes the active
    /// one; its enabled state is left alone. The same id, version and digest again is a no-op
    /// ([`CommitOutcome::AlreadyInstalled`]); a different digest is a
    /// [`StoreError::DigestConflict`]. The staging directory is removed in every case.
    pub fn commit_install(
        &self,
        staging: Staging,
        package_root: &Path,
        new: &NewVersion,
        activate: bool,
    ) -> Result<CommitOutcome, StoreError> {
        check_component("plugin id", &new.id)?;
        check_component("version", &new.version)?;
        self.check_staging(&staging)?;
        let root = self.check_package_root(&staging, package_root)?;
        let id_dir = self.store_root().join(&new.id);
        let target = id_dir.join(&new.version);

        // The staged files must be on disk before the database says they are installed.
        sync_filesystem(staging.path())?;

        let _lock = self.lock_home()?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(installed) = tx
            .query_row(
                "SELECT digest FROM versions WHERE plugin_id = ?1 AND version = ?2",
                params![new.id, new.version],
                |row| row.get::<_, String>(0),
            )
            .optional()?
        {
            return if installed == new.digest {
                Ok(CommitOutcome::AlreadyInstalled { dir: target })
            } else {
                Err(StoreError::DigestConflict {
                    id: new.id.clone(),
                    version: new.version.clone(),
                    installed,
                    offered: new.digest.clone(),
                })
            };
        }

        prepare_dir(&id_dir)?;
        // No row but a directory: left by a process that died after its rename, since this
        // store was opened. It is garbage by definition.
        remove_tree(&target)?;
        rename_dir(&root, &target)?;
        sync_dir(&id_dir)?;
        sync_dir(&self.store_root())?;
        #[cfg(test)]
        crate::crash::hit(crate::crash::Point::AfterRename);

        let recorded = record_install(&tx, new, activate).and_then(|()| Ok(tx.commit()?));
        if let Err(e) = recorded {
            // Remove the directory only if the rows really are absent: a commit that reported an
            // error may still have reached the disk, and a row must never lose its directory.
            let row_exists = conn
                .query_row(
                    "SELECT 1 FROM versions WHERE plugin_id = ?1 AND version = ?2",
                    params![new.id, new.version],
                    |_| Ok(()),
                )
                .optional();
            if matches!(row_exists, Ok(None))
                && let Err(cleanup) = remove_tree(&target)
            {
                tracing::warn!(error = %cleanup, "could not remove an uncommitted version directory; the next start removes it");
            }
            return Err(e);
        }
        Ok(CommitOutcome::Installed { dir: target })
    }

    /// The directory of one installed version: `$PLUGD_HOME/store/<id>/<version>`.
    ///
    /// When `id` or `version` is not a safe path component (empty, `/`, `..`, NUL, …) no path is
    /// built from it: the answer is [`INVALID_VERSION_DIR`], under `/dev/null`, which never exists
    /// and never contains anything. [`Store::try_version_dir`] says why instead.
    pub fn version_dir(&self, id: &str, version: &str) -> PathBuf {
        self.try_version_dir(id, version).unwrap_or_else(|e| {
            tracing::error!(error = %e, "refused to build a store path");
            PathBuf::from(INVALID_VERSION_DIR)
        })
    }

    /// Like [`Store::version_dir`], but an unsafe id or version is an error.
    pub fn try_version_dir(&self, id: &str, version: &str) -> Result<PathBuf, StoreError> {
        check_component("plugin id", id)?;
        check_component("version", version)?;
        Ok(self.store_root().join(id).join(version))
    }

    /// Every installed plugin, by id.
    pub fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{PLUGIN_SELECT} ORDER BY id"))?;
        let rows = stmt.query_map([], plugin_from_row)?;
        collect(rows)
    }

    /// One plugin, if installed.
    pub fn plugin(&self, id: &str) -> Result<Option<PluginRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{PLUGIN_SELECT} WHERE id = ?1"))?;
        Ok(stmt.query_row([id], plugin_from_row).optional()?)
    }

    /// The installed versions of a plugin, newest first by semver precedence (versions that are
    /// not semver come last, newest install first). [`StoreError::NotInstalled`] for an unknown
    /// plugin.
    pub fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{VERSION_SELECT} WHERE v.plugin_id = ?1"))?;
        let mut versions = collect(stmt.query_map([id], version_from_row)?)?;
        if versions.is_empty() {
            return Err(StoreError::NotInstalled { id: id.to_owned() });
        }
        versions
            .sort_by(|a, b| newest_first(&a.version, &a.installed_at, &b.version, &b.installed_at));
        Ok(versions)
    }

    /// One installed version, if present.
    pub fn version(&self, id: &str, version: &str) -> Result<Option<VersionRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{VERSION_SELECT} WHERE v.plugin_id = ?1 AND v.version = ?2"
        ))?;
        Ok(stmt.query_row([id, version], version_from_row).optional()?)
    }

    /// Records the security scan (JSON) and the signer of an installed version.
    pub fn set_version_meta(
        &self,
        id: &str,
        version: &str,
        scan_json: Option<&str>,
        signer: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE versions SET scan_json = ?1, signer = ?2 WHERE plugin_id = ?3 AND version = ?4",
                params![scan_json, signer, id, version],
            )?;
            if changed == 0 {
                return Err(missing_version(tx, id, version)?);
            }
            Ok(())
        })
    }

    /// Enables or disables a plugin; `Ok(false)` when it already was in that state (nothing is
    /// written then). A change is audited as `enable` or `disable`.
    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        self.write(|tx| {
            let (current, active) = plugin_state(tx, id)?;
            if current == enabled {
                return Ok(false);
            }
            let now = now();
            tx.execute(
                "UPDATE plugins SET enabled = ?1, updated_at = ?2 WHERE id = ?3",
                params![enabled, now, id],
            )?;
            let event = if enabled { "enable" } else { "disable" };
            append_audit(tx, &now, id, event, Some(&active), None, None)?;
            Ok(true)
        })
    }

    /// Makes `version` the active version of `id` and returns the version that was active.
    ///
    /// Audited as `update` or `rollback` with the old and new version and `reason`. Activating
    /// the version that is already active changes and records nothing.
    pub fn activate(
        &self,
        id: &str,
        version: &str,
        event: ActivationEvent,
        reason: Option<&str>,
    ) -> Result<String, StoreError> {
        self.write(|tx| {
            let (_, previous) = plugin_state(tx, id)?;
            let name: Option<String> = tx
                .query_row(
                    "SELECT name FROM versions WHERE plugin_id = ?1 AND version = ?2",
                    params![id, version],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(name) = name else {
                return Err(missing_version(tx, id, version)?);
            };
            if previous == version {
                return Ok(previous);
            }
            let now = now();
            tx.execute(
                "UPDATE plugins SET active_version = ?1, name = ?2, updated_at = ?3 WHERE id = ?4",
                params![version, name, now, id],
            )?;
            append_audit(
                tx,
                &now,
                id,
                event.as_str(),
                Some(version),
                Some(&previous),
                reason,
            )?;
            Ok(previous)
        })
    }

    /// Removes a plugin and every version of it; returns the versions removed, newest first.
    ///
    /// The rows go first, in one transaction (audited as `uninstall`), then the directories; a
    /// crash in between leaves garbage directories for the next [`Store::open`]. The plugin's
    /// execution history, audit entries and reviews are kept.
    pub fn uninstall(&self, id: &str) -> Result<Vec<String>, StoreError> {
        check_component("plugin id", id)?;
        let _lock = self.lock_home()?;
        let removed = self.write(|tx| {
            let (_, active) = plugin_state(tx, id)?;
            let versions = installed_versions(tx, id)?;
            tx.execute("DELETE FROM versions WHERE plugin_id = ?1", [id])?;
            tx.execute("DELETE FROM plugins WHERE id = ?1", [id])?;
            let detail = format!("removed versions {}", versions.join(", "));
            append_audit(
                tx,
                &now(),
                id,
                "uninstall",
                Some(&active),
                None,
                Some(&detail),
            )?;
            Ok(versions)
        })?;
        #[cfg(test)]
        crate::crash::hit(crate::crash::Point::AfterUninstallCommit);
        let dir = self.store_root().join(id);
        if let Err(e) = remove_tree(&dir) {
            // The rows are gone, so the plugin is uninstalled; the leftover directory is garbage
            // that the next open removes.
            tracing::warn!(error = %e, "could not remove an uninstalled plugin's files yet");
        }
        Ok(removed)
    }

    /// Appends one execution to the history.
    ///
    /// `started_at` must be RFC 3339; it is stored in UTC with microseconds so that history
    /// sorts by time. Durations and sizes above `i64::MAX` (SQL `BIGINT`) are stored as
    /// `i64::MAX`.
    pub fn record_execution(&self, rec: &ExecutionRecord) -> Result<(), StoreError> {
        let started_at = normalize_timestamp("started_at", &rec.started_at)?;
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO executions (id, plugin_id, version, action, status, code, started_at,
                 duration_us, error_message, cpu_time_us, peak_memory_bytes, end_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                rec.id,
                rec.plugin_id,
                rec.version,
                rec.action,
                rec.status,
                rec.code,
                started_at,
                saturate(rec.duration_us),
                rec.error_message,
                rec.cpu_time_us.map(saturate),
                rec.peak_memory_bytes.map(saturate),
                rec.end_reason,
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                Err(StoreError::DuplicateExecution { id: rec.id.clone() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The `limit` most recent executions, of one plugin or of all, newest first.
    pub fn executions(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        const SELECT: &str = "SELECT id, plugin_id, version, action, status, code, started_at,
                duration_us, error_message, cpu_time_us, peak_memory_bytes, end_reason
             FROM executions";
        let conn = self.conn();
        let limit = sql_limit(limit);
        match plugin {
            Some(plugin) => {
                let mut stmt = conn.prepare_cached(&format!(
                    "{SELECT} WHERE plugin_id = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2"
                ))?;
                collect(stmt.query_map(params![plugin, limit], execution_from_row)?)
            }
            None => {
                let mut stmt = conn.prepare_cached(&format!(
                    "{SELECT} ORDER BY started_at DESC, id DESC LIMIT ?1"
                ))?;
                collect(stmt.query_map(params![limit], execution_from_row)?)
            }
        }
    }

    /// The `limit` most recent audit entries, of one plugin or of all, newest first.
    pub fn audit(&self, plugin: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        const SELECT: &str =
            "SELECT seq, at, plugin_id, event, version, from_version, detail FROM audit_log";
        let conn = self.conn();
        let limit = sql_limit(limit);
        match plugin {
            Some(plugin) => {
                let mut stmt = conn.prepare_cached(&format!(
                    "{SELECT} WHERE plugin_id = ?1 ORDER BY seq DESC LIMIT ?2"
                ))?;
                collect(stmt.query_map(params![plugin, limit], audit_from_row)?)
            }
            None => {
                let mut stmt =
                    conn.prepare_cached(&format!("{SELECT} ORDER BY seq DESC LIMIT ?1"))?;
                collect(stmt.query_map(params![limit], audit_from_row)?)
            }
        }
    }

    /// Adds a marketplace review (1 to 5 stars) of a plugin, installed or not.
    pub fn add_review(
        &self,
        plugin_id: &str,
        rating: u8,
        author: Option<&str>,
        comment: Option<&str>,
    ) -> Result<Review, StoreError> {
        check_component("plugin id", plugin_id)?;
        let invalid = |reason: String| StoreError::InvalidReview {
            plugin_id: plugin_id.to_owned(),
            reason,
        };
        if !(1..=5).contains(&rating) {
            return Err(invalid(format!(
                "the rating is {rating}; give 1 to 5 stars"
            )));
        }
        if author.is_some_and(|a| a.len() > MAX_REVIEW_AUTHOR) {
            return Err(invalid(format!(
                "the author name is longer than {MAX_REVIEW_AUTHOR} bytes"
            )));
        }
        if comment.is_some_and(|c| c.len() > MAX_REVIEW_COMMENT) {
            return Err(invalid(format!(
                "the comment is longer than {MAX_REVIEW_COMMENT} bytes"
            )));
        }
        let review = Review {
            id: uuid::Uuid::new_v4().to_string(),
            plugin_id: plugin_id.to_owned(),
            rating,
            author: author.map(str::to_owned),
            comment: comment.map(str::to_owned),
            at: now(),
        };
        self.conn().execute(
            "INSERT INTO reviews (id, plugin_id, rating, author, comment, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                review.id,
                review.plugin_id,
                review.rating,
                review.author,
                review.comment,
                review.at
            ],
        )?;
        Ok(review)
    }

    /// The `limit` most recent reviews of a plugin, newest first.
    pub fn reviews(&self, plugin_id: &str, limit: usize) -> Result<Vec<Review>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, plugin_id, rating, author, comment, at FROM reviews
             WHERE plugin_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![plugin_id, sql_limit(limit)], |row| {
            Ok(Review {
                id: row.get(0)?,
                plugin_id: row.get(1)?,
                rating: row.get(2)?,
                author: row.get(3)?,
                comment: row.get(4)?,
                at: row.get(5)?,
            })
        })?;
        collect(rows)
    }

    /// How many ratings a plugin has and their mean.
    pub fn rating_summary(&self, plugin_id: &str) -> Result<RatingSummary, StoreError> {
        let (count, average): (i64, Option<f64>) = self.conn().query_row(
            "SELECT COUNT(*), AVG(rating) FROM reviews WHERE plugin_id = ?1",
            [plugin_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(RatingSummary {
            plugin_id: plugin_id.to_owned(),
            count: u64::try_from(count).unwrap_or(0),
            average,
        })
    }

    /// Checks the database (`PRAGMA integrity_check`) and that rows and directories match, for
    /// `plugd doctor`. Read-only: it reports garbage, [`Store::open`] removes it.
    pub fn check(&self) -> Result<StoreCheck, StoreError> {
        let _lock = self.lock_home()?;
        let conn = self.conn();
        let integrity = {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            collect(stmt.query_map([], |row| row.get::<_, String>(0))?)?
        };
        let rows = version_rows(&conn)?;
        let dangling_active = {
            let mut stmt = conn.prepare(
                "SELECT p.id FROM plugins p WHERE NOT EXISTS (SELECT 1 FROM versions v
                 WHERE v.plugin_id = p.id AND v.version = p.active_version) ORDER BY p.id",
            )?;
            collect(stmt.query_map([], |row| row.get::<_, String>(0))?)?
        };
        drop(conn);
        let mut rows_without_dir: Vec<(String, String)> = rows
            .iter()
            .filter(|(id, version)| !self.store_root().join(id).join(version).is_dir())
            .cloned()
            .collect();
        rows_without_dir.sort();
        let mut dirs_without_row = Vec::new();
        self.walk_store(&rows, |path| dirs_without_row.push(path.to_path_buf()))?;
        dirs_without_row.sort();
        Ok(StoreCheck {
            integrity,
            rows_without_dir,
            dirs_without_row,
            dangling_active,
        })
    }

    fn store_root(&self) -> PathBuf {
        self.home.join(STORE_DIR)
    }

    fn staging_root(&self) -> PathBuf {
        self.home.join(STAGING_DIR)
    }

    fn lock_home(&self) -> Result<HomeLock, StoreError> {
        HomeLock::acquire(&self.home.join(LOCK_FILE), HOME_LOCK_TIMEOUT)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the guard unwinds through any open `Transaction`, whose drop
        // rolls it back, so the connection is still sound afterwards.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits if it succeeds. Immediate, so a
    /// transaction never has to upgrade from reader to writer, the one case where SQLite gives
    /// up with `SQLITE_BUSY` instead of waiting out the busy timeout.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn check_staging(&self, staging: &Staging) -> Result<(), StoreError> {
        if staging.path().parent() == Some(self.staging_root().as_path()) {
            Ok(())
        } else {
            Err(StoreError::ForeignStaging {
                path: staging.path().to_path_buf(),
                home: self.home.clone(),
            })
        }
    }

    /// The canonical package root, if it is a real directory inside the staging directory.
    fn check_package_root(
        &self,
        staging: &Staging,
        package_root: &Path,
    ) -> Result<PathBuf, StoreError> {
        let bad = |reason| StoreError::BadPackageRoot {
            path: package_root.to_path_buf(),
            staging: staging.path().to_path_buf(),
            reason,
        };
        let meta = match fs::symlink_metadata(package_root) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(bad("it does not exist")),
            Err(e) => return Err(io("inspect", package_root)(e)),
        };
        if meta.file_type().is_symlink() {
            // Renaming a symlink would install the link, not the tree.
            return Err(bad("it is a symbolic link"));
        }
        if !meta.is_dir() {
            return Err(bad("it is not a directory"));
        }
        let canonical = fs::canonicalize(package_root).map_err(io("resolve", package_root))?;
        if !canonical.starts_with(staging.path()) {
            return Err(bad("it is outside the staging directory"));
        }
        Ok(canonical)
    }

    /// Removes staging directories whose owner is gone. Runs under the home lock.
    fn recover_staging(&self) -> Result<(), StoreError> {
        let root = self.staging_root();
        for entry in fs::read_dir(&root).map_err(io("list", &root))? {
            let entry = entry.map_err(io("list", &root))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(LOCK_SUFFIX) {
                let file = match fs::File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("open", &path)(e)),
                };
                if try_lock(&file, &path)? {
                    // Nobody holds it: the owner died (or dropped it just now, then both are
                    // already gone and the removals below find nothing).
                    discard_garbage(&root.join(stem), "stale staging directory");
                    discard_garbage(&path, "stale staging lock");
                }
            } else {
                let mut lock_name = entry.file_name();
                lock_name.push(LOCK_SUFFIX);
                // Staging creates the lock before the directory and removes it after, both under
                // the home lock we hold now, so a directory without a lock belongs to no one.
                if fs::symlink_metadata(root.join(lock_name)).is_err() {
                    discard_garbage(&path, "orphaned staging entry");
                }
            }
        }
        Ok(())
    }

    /// Removes version directories that have no row. Runs under the home lock.
    fn recover_versions(&self) -> Result<(), StoreError> {
        let rows = version_rows(&self.conn())?;
        self.walk_store(&rows, |path| {
            discard_garbage(path, "version directory without a database row")
        })?;
        // Plugin directories emptied above (or by an interrupted uninstall) go too.
        let plugins: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let root = self.store_root();
        for entry in fs::read_dir(&root).map_err(io("list", &root))? {
            let entry = entry.map_err(io("list", &root))?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(|id| plugins.contains(id)) {
                // Only empty ones: `remove_dir` refuses anything else, which walk_store
                // has already reported.
                let _ = fs::remove_dir(entry.path());
            }
        }
        for (id, version) in &rows {
            let dir = root.join(id).join(version);
            if !dir.is_dir() {
                tracing::warn!(
                    plugin = %id, %version, dir = %dir.display(),
                    "an installed version's directory is missing; reinstall the plugin"
                );
            }
        }
        Ok(())
    }

    /// Calls `garbage` for every entry under `store/` that no row accounts for: a version
    /// directory without a row, or anything at the plugin level that is not a directory or not
    /// a valid id.
    fn walk_store(
        &self,
        rows: &HashSet<(String, String)>,
        mut garbage: impl FnMut(&Path),
    ) -> Result<(), StoreError> {
        let root = self.store_root();
        for entry in fs::read_dir(&root).map_err(io("list", &root))? {
            let entry = entry.map_err(io("list", &root))?;
            let id_path = entry.path();
            let id = entry.file_name().into_string().ok();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let Some(id) = id.filter(|id| is_dir && check_component("plugin id", id).is_ok())
            else {
                garbage(&id_path);
                continue;
            };
            for version in fs::read_dir(&id_path).map_err(io("list", &id_path))? {
                let version = version.map_err(io("list", &id_path))?;
                let known = version
                    .file_name()
                    .into_string()
                    .is_ok_and(|v| rows.contains(&(id.clone(), v)));
                if !known {
                    garbage(&version.path());
                }
            }
        }
        Ok(())
    }
}

/// What the trait-object users (host, server) see; see [`crate::PluginStore`].
impl crate::PluginStore for Store {
    fn home(&self) -> &Path {
        Store::home(self)
    }
    fn stage(&self) -> Result<Staging, StoreError> {
        Store::stage(self)
    }
    fn commit_install(
        &self,
        staging: Staging,
        package_root: &Path,
        new: &NewVersion,
        activate: bool,
    ) -> Result<CommitOutcome, StoreError> {
        Store::commit_install(self, staging, package_root, new, activate)
    }
    fn version_dir(&self, id: &str, version: &str) -> PathBuf {
        Store::version_dir(self, id, version)
    }
    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        Store::plugins(self)
    }
    fn plugin(&self, id: &str) -> Result<Option<PluginRecord>, StoreError> {
        Store::plugin(self, id)
    }
    fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        Store::versions(self, id)
    }
    fn version(&self, id: &str, version: &str) -> Result<Option<VersionRecord>, StoreError> {
        Store::version(self, id, version)
    }
    fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        Store::set_enabled(self, id, enabled)
    }
    fn activate(
        &self,
        id: &str,
        version: &str,
        event: ActivationEvent,
        reason: Option<&str>,
    ) -> Result<String, StoreError> {
        Store::activate(self, id, version, event, reason)
    }
    fn uninstall(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Store::uninstall(self, id)
    }
    fn record_execution(&self, rec: &ExecutionRecord) -> Result<(), StoreError> {
        Store::record_execution(self, rec)
    }
    fn executions(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        Store::executions(self, plugin, limit)
    }
    fn audit(&self, plugin: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Store::audit(self, plugin, limit)
    }
}

const PLUGIN_SELECT: &str =
    "SELECT id, name, enabled, active_version, installed_at, updated_at FROM plugins";

const VERSION_SELECT: &str = "SELECT v.plugin_id, v.version, v.name, v.digest, v.manifest_json,
        v.runtime, v.trust_level, v.source, v.installed_at, v.scan_json, v.signer,
        v.version = p.active_version
     FROM versions v JOIN plugins p ON p.id = v.plugin_id";

fn plugin_from_row(row: &Row<'_>) -> rusqlite::Result<PluginRecord> {
    Ok(PluginRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        enabled: row.get(2)?,
        active_version: row.get(3)?,
        installed_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        plugin_id: row.get(0)?,
        version: row.get(1)?,
        name: row.get(2)?,
        digest: row.get(3)?,
        manifest_json: row.get(4)?,
        runtime: row.get(5)?,
        trust_level: row.get(6)?,
        source: row.get(7)?,
        installed_at: row.get(8)?,
        scan_json: row.get(9)?,
        signer: row.get(10)?,
        active: row.get(11)?,
    })
}

fn execution_from_row(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: row.get(0)?,
        plugin_id: row.get(1)?,
        version: row.get(2)?,
        action: row.get(3)?,
        status: row.get(4)?,
        code: row.get(5)?,
        started_at: row.get(6)?,
        duration_us: get_u64(row, 7)?,
        error_message: row.get(8)?,
        cpu_time_us: row
            .get::<_, Option<i64>>(9)?
            .map(|v| to_u64(9, v))
            .transpose()?,
        peak_memory_bytes: row
            .get::<_, Option<i64>>(10)?
            .map(|v| to_u64(10, v))
            .transpose()?,
        end_reason: row.get(11)?,
    })
}

/// Reads a `BIGINT` that must not be negative.
fn get_u64(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    to_u64(column, row.get(column)?)
}

fn to_u64(column: usize, value: i64) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.get(0)?,
        at: row.get(1)?,
        plugin_id: row.get(2)?,
        event: row.get(3)?,
        version: row.get(4)?,
        from_version: row.get(5)?,
        detail: row.get(6)?,
    })
}

/// Collects mapped rows; a value of the wrong type or range (a negative duration, an `enabled`
/// of 7, …) becomes [`StoreError::Corrupt`] rather than a bare SQLite error.
fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>, StoreError> {
    rows.map(|row| row.map_err(corrupt_or_db)).collect()
}

fn corrupt_or_db(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::IntegralValueOutOfRange(column, value) => StoreError::Corrupt {
            detail: format!("column {column} holds {value}, which is out of range"),
        },
        rusqlite::Error::FromSqlConversionFailure(column, kind, cause) => StoreError::Corrupt {
            detail: format!("column {column} holds a {kind} that cannot be read: {cause}"),
        },
        rusqlite::Error::InvalidColumnType(column, name, kind) => StoreError::Corrupt {
            detail: format!("column {column} (`{name}`) holds a {kind}"),
        },
        e => e.into(),
    }
}

/// Inserts the rows of a new version (and of its plugin, when new) and the `install` entry.
fn record_install(
    tx: &Transaction<'_>,
    new: &NewVersion,
    activate: bool,
) -> Result<(), StoreError> {
    let now = now();
    let previous: Option<String> = tx
        .query_row(
            "SELECT active_version FROM plugins WHERE id = ?1",
            [&new.id],
            |row| row.get(0),
        )
        .optional()?;
    if previous.is_none() {
        tx.execute(
            "INSERT INTO plugins (id, name, enabled, active_version, installed_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![new.id, new.name, new.enable, new.version, now],
        )?;
    }
    tx.execute(
        "INSERT INTO versions (plugin_id, version, name, digest, manifest_json, runtime,
             trust_level, source, installed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            new.id,
            new.version,
            new.name,
            new.digest,
            new.manifest_json,
            new.runtime,
            new.trust_level,
            new.source,
            now
        ],
    )?;
    let (from, detail) = match previous {
        None if new.enable => (None, "new plugin, enabled".to_owned()),
        None => (None, "new plugin, disabled".to_owned()),
        Some(previous) if activate => {
            tx.execute(
                "UPDATE plugins SET active_version = ?1, name = ?2, updated_at = ?3 WHERE id = ?4",
                params![new.version, new.name, now, new.id],
            )?;
            (Some(previous), "installed and activated".to_owned())
        }
        Some(previous) => (
            None,
            format!("installed alongside; {previous} stays active"),
        ),
    };
    append_audit(
        tx,
        &now,
        &new.id,
        "install",
        Some(&new.version),
        from.as_deref(),
        Some(&detail),
    )
}

/// Appends one audit entry. `seq` is computed as `MAX(seq) + 1` inside the caller's write
/// transaction rather than relying on SQLite's rowid, so the statement means the same thing on
/// PostgreSQL (run there at SERIALIZABLE, or replace with an identity column).
fn append_audit(
    tx: &Transaction<'_>,
    at: &str,
    plugin_id: &str,
    event: &str,
    version: Option<&str>,
    from_version: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (seq, at, plugin_id, event, version, from_version, detail)
         SELECT COALESCE(MAX(seq), 0) + 1, ?1, ?2, ?3, ?4, ?5, ?6 FROM audit_log",
        params![at, plugin_id, event, version, from_version, detail],
    )?;
    Ok(())
}

/// `(enabled, active_version)` of a plugin, or `NotInstalled`.
fn plugin_state(conn: &Connection, id: &str) -> Result<(bool, String), StoreError> {
    conn.query_row(
        "SELECT enabled, active_version FROM plugins WHERE id = ?1",
        [id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
    .map_err(corrupt_or_db)?
    .ok_or_else(|| StoreError::NotInstalled { id: id.to_owned() })
}

/// The versions of a plugin, newest first.
fn installed_versions(conn: &Connection, id: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT version, installed_at FROM versions WHERE plugin_id = ?1")?;
    let mut versions: Vec<(String, String)> =
        collect(stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?)?;
    versions.sort_by(|a, b| newest_first(&a.0, &a.1, &b.0, &b.1));
    Ok(versions.into_iter().map(|(v, _)| v).collect())
}

/// The error for a version that is not installed: `NotInstalled` when the plugin is missing too.
fn missing_version(conn: &Connection, id: &str, version: &str) -> Result<StoreError, StoreError> {
    let installed = installed_versions(conn, id)?;
    Ok(if installed.is_empty() {
        StoreError::NotInstalled { id: id.to_owned() }
    } else {
        StoreError::VersionNotInstalled {
            id: id.to_owned(),
            version: version.to_owned(),
            installed,
        }
    })
}

fn version_rows(conn: &Connection) -> Result<HashSet<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT plugin_id, version FROM versions")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(collect(rows)?.into_iter().collect())
}

/// Orders versions newest first: by semver precedence, then (for strings that are not semver,
/// which sort after all semver ones) by install time.
fn newest_first(a: &str, a_installed: &str, b: &str, b_installed: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => b.cmp(&a),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => b_installed.cmp(a_installed).then_with(|| b.cmp(a)),
    }
}

/// Creates `store/<id>`, replacing a non-directory squatting on the name.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => remove_tree(dir)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect", dir)(e)),
    }
    create_private_dir(dir)
}

/// Renames a directory that may be read-only.
///
/// Moving a directory to another parent rewrites its `..` entry, which needs write permission
/// on the directory itself: without it a non-root user gets `EACCES`. The caller made the tree
/// read-only on purpose, so `u+w` is added for the rename and the original mode put back.
fn rename_dir(from: &Path, to: &Path) -> Result<(), StoreError> {
    let mode = fs::symlink_metadata(from)
        .map_err(io("inspect", from))?
        .permissions()
        .mode();
    let read_only = mode & 0o200 == 0;
    if read_only {
        fs::set_permissions(from, fs::Permissions::from_mode(mode | 0o200))
            .map_err(io("make writable", from))?;
    }
    fs::rename(from, to).map_err(io("move the package into the store at", to))?;
    if read_only {
        fs::set_permissions(to, fs::Permissions::from_mode(mode))
            .map_err(io("make read-only again", to))?;
    }
    Ok(())
}

/// Removes something recovery found; a failure is logged, not fatal, since the garbage is
/// harmless where it is and the next open tries again.
fn discard_garbage(path: &Path, what: &str) {
    match remove_tree(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed {what}"),
        Err(e) => tracing::warn!(error = %e, "could not remove {what}"),
    }
}

/// Now, as RFC 3339 UTC with microseconds: fixed width, so text order is time order.
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 timestamp and rewrites it in the same fixed-width UTC form as [`now`].
fn normalize_timestamp(field: &'static str, value: &str) -> Result<String, StoreError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        })
        .map_err(|_| StoreError::InvalidTimestamp {
            field,
            value: value.to_owned(),
        })
}

/// A `u64` as SQL `BIGINT`, saturating: a measurement beyond 2^63 is already meaningless.
fn saturate(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
