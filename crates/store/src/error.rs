//! The one error type of the store.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// Each message says what was wrong, where, and what the user can do about it. Causes are kept
/// as `source()` so a caller printing the chain ("Caused by: …") shows the underlying
/// SQLite or operating-system error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A plugin id or version cannot be used as a directory name under `$PLUGD_HOME/store`.
    #[error(
        "invalid {what} {value:?}: {reason}; the store only accepts ids and versions that are \
         a single safe path component"
    )]
    InvalidName {
        /// Which string was refused (`"plugin id"` or `"version"`).
        what: &'static str,
        /// The string as given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// No plugin with this id is installed.
    #[error("plugin `{id}` is not installed; `plugd list` shows the installed plugins")]
    NotInstalled {
        /// The plugin id asked for.
        id: String,
    },

    /// The plugin is installed, but not in this version.
    #[error(
        "plugin `{id}` has no installed version {version} (installed: {}); install that version \
         first or pick one of the installed ones",
        installed.join(", ")
    )]
    VersionNotInstalled {
        /// The plugin id.
        id: String,
        /// The version asked for.
        version: String,
        /// The versions that are installed, newest first.
        installed: Vec<String>,
    },

    /// The same id and version are installed already, with different content.
    #[error(
        "plugin `{id}` version {version} is already installed with different content (installed \
         digest {installed}, offered digest {offered}); bump the version in the manifest, or \
         uninstall `{id}` first"
    )]
    DigestConflict {
        /// The plugin id.
        id: String,
        /// The version both packages claim.
        version: String,
        /// The digest of the installed copy.
        installed: String,
        /// The digest of the package offered now.
        offered: String,
    },

    /// The database file exists but is not an SQLite database.
    #[error(
        "{path} is not a plugd database (it is not an SQLite file); plugd left it untouched: \
         move it away or set PLUGD_HOME to another directory"
    )]
    NotSqlite {
        /// The database file.
        path: PathBuf,
    },

    /// The database file is an SQLite database that some other program created.
    #[error(
        "{path} is an SQLite database, but not one plugd created ({detail}); plugd left it \
         untouched: move it away or set PLUGD_HOME to another directory"
    )]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
        /// What gave it away.
        detail: String,
    },

    /// The database was written by a newer plugd whose schema this one does not understand.
    #[error(
        "the database {path} has schema version {found}, but this plugd understands versions up \
         to {supported}; upgrade plugd (the file was not modified)"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },

    /// The database holds a value this plugd cannot have written (edited by hand or damaged).
    #[error(
        "the plugd database holds an impossible value: {detail}; the file was edited by hand or \
         is damaged (`plugd doctor` checks it)"
    )]
    Corrupt {
        /// What was wrong, with table and column.
        detail: String,
    },

    /// Another plugd process kept `$PLUGD_HOME/lock` for too long.
    #[error(
        "another plugd process has held the store lock {path} for more than {waited_secs} s; \
         wait for it to finish, or stop it and retry"
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited_secs: u64,
    },

    /// SQLite stayed busy (locked by another process) longer than the busy timeout.
    #[error(
        "the plugd database stayed locked by another plugd process for more than 5 s; retry \
         when the other command has finished"
    )]
    Busy(#[source] rusqlite::Error),

    /// The database could not switch to write-ahead logging.
    #[error(
        "the database {path} cannot use write-ahead logging (journal mode stayed `{mode}`); \
         put PLUGD_HOME on a local filesystem that supports shared memory (not NFS)"
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },

    /// The staging directory handed to `commit_install` does not belong to this store.
    #[error(
        "the staging directory {path} does not belong to the store at {home}; create it with \
         `Store::stage` on the same store"
    )]
    ForeignStaging {
        /// The staging directory.
        path: PathBuf,
        /// This store's home.
        home: PathBuf,
    },

    /// The package root is not a real directory inside the staging directory.
    #[error("cannot install {path}: {reason} (it must be a directory inside {staging})")]
    BadPackageRoot {
        /// The package root as given.
        path: PathBuf,
        /// The staging directory it must be inside.
        staging: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An execution with this id was recorded already.
    #[error("execution `{id}` is already in the history; every execution needs a fresh id")]
    DuplicateExecution {
        /// The execution id.
        id: String,
    },

    /// A timestamp given by the caller is not RFC 3339.
    #[error("{field} {value:?} is not an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)")]
    InvalidTimestamp {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: String,
    },

    /// A marketplace review is out of bounds.
    #[error("invalid review for `{plugin_id}`: {reason}")]
    InvalidReview {
        /// The plugin reviewed.
        plugin_id: String,
        /// What is wrong.
        reason: String,
    },

    /// A filesystem operation under `$PLUGD_HOME` failed.
    #[error("could not {op} {path}")]
    Io {
        /// What the store was doing (`"create directory"`, `"rename"`, …).
        op: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// Any other SQLite error.
    #[error(
        "the plugd database reported an error; if it persists, `plugd doctor` checks the store"
    )]
    Db(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy(e)
            }
            _ => StoreError::Db(e),
        }
    }
}

/// Shorthand for `map_err` on filesystem calls: `fs::rename(a, b).map_err(io("rename", a))`.
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { op, path, source }
}
