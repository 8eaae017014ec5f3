//! The database schema, its migrations, and the checks made before touching an existing file.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::StoreError;
use crate::error::io;

/// How long one SQLite statement waits for another process's write lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA application_id` of a plugd database (`"plgd"` in ASCII), so that `open` can tell its
/// own file from another program's SQLite database.
pub(crate) const APPLICATION_ID: i32 = 0x706c_6764;

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// One schema change. `version` is what `PRAGMA user_version` says once it has run.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first. Append only: a released migration is never edited, because
/// databases in the field have already run it. Only portable SQL goes in here (see the crate
/// doc); the PRAGMAs live in Rust.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: "
CREATE TABLE plugins (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    enabled        INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    active_version TEXT    NOT NULL,
    installed_at   TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE TABLE versions (
    plugin_id     TEXT NOT NULL REFERENCES plugins (id),
    version       TEXT NOT NULL,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    runtime       TEXT NOT NULL,
    trust_level   TEXT NOT NULL,
    source        TEXT NOT NULL,
    installed_at  TEXT NOT NULL,
    scan_json     TEXT,
    signer        TEXT,
    PRIMARY KEY (plugin_id, version)
);
CREATE TABLE audit_log (
    seq          BIGINT NOT NULL PRIMARY KEY,
    at           TEXT   NOT NULL,
    plugin_id    TEXT   NOT NULL,
    event        TEXT   NOT NULL,
    version      TEXT,
    from_version TEXT,
    detail       TEXT
);
CREATE INDEX audit_log_by_plugin ON audit_log (plugin_id, seq);
CREATE TABLE executions (
    id                TEXT   NOT NULL PRIMARY KEY,
    plugin_id         TEXT   NOT NULL,
    version           TEXT   NOT NULL,
    action            TEXT,
    status            TEXT   NOT NULL,
    code              BIGINT,
    started_at        TEXT   NOT NULL,
    duration_us       BIGINT NOT NULL,
    error_message     TEXT,
    cpu_time_us       BIGINT,
    peak_memory_bytes BIGINT,
    end_reason        TEXT
);
CREATE INDEX executions_by_plugin_time ON executions (plugin_id, started_at);
CREATE INDEX executions_by_time ON executions (started_at);
CREATE TABLE reviews (
    id        TEXT    NOT NULL PRIMARY KEY,
    plugin_id TEXT    NOT NULL,
    rating    INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    author    TEXT,
    comment   TEXT,
    at        TEXT    NOT NULL
);
CREATE INDEX reviews_by_plugin_time ON reviews (plugin_id, at);
",
}];

/// The schema version this build writes and understands.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Opens (creating if needed) the database at `path`, refuses files that are not ours or too
/// new, then switches to WAL and migrates. Call with the home lock held.
///
/// Nothing is written to an existing file until it has passed every check: the header is read
/// with plain file I/O first, and SQLite only reads (`user_version`, `application_id`, the table
/// list) before the first write, which is the switch to WAL.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let existing = check_header(path)?;
    let conn = Connection::open(path).map_err(|e| not_a_database(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if existing {
        inspect_existing(&conn, path)?;
    }
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "foreign_keys", true)?;
    let mut conn = conn;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// `Ok(true)` when `path` holds an SQLite database, `Ok(false)` when it is missing or empty
/// (SQLite treats an empty file as a new database), `NotSqlite` otherwise.
fn check_header(path: &Path) -> Result<bool, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("open", path)(e)),
    };
    let mut header = [0u8; 100];
    let mut filled = 0;
    while filled < header.len() {
        match file.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("read", path)(e)),
        }
    }
    match filled {
        0 => Ok(false),
        100 if header.starts_with(SQLITE_MAGIC) => Ok(true),
        _ => Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        }),
    }
}

/// Read-only checks on an existing database: is it ours, and not from the future?
fn inspect_existing(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| not_a_database(path, e))?;
    if version > latest_version() {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: latest_version(),
        });
    }
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase {
            path: path.to_path_buf(),
            detail: format!("its application id is {application_id:#x}"),
        });
    }
    if version == 0 {
        let table: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(table) = table {
            return Err(StoreError::ForeignDatabase {
                path: path.to_path_buf(),
                detail: format!("it has a table `{table}` but no plugd schema version"),
            });
        }
    }
    Ok(())
}

/// Runs the missing migrations and sets `user_version`, all in one write transaction, so a
/// crash mid-migration leaves the old schema and the next start runs them again.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read again inside the write transaction: another process may have migrated since the
    // read-only check (it cannot while we hold the home lock, but the database must not depend
    // on every writer being a well-behaved plugd).
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > latest_version() {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: current,
            supported: latest_version(),
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(migration.sql)?;
        tracing::debug!(version = migration.version, "applied a database migration");
    }
    if current < latest_version() {
        tx.pragma_update(None, "user_version", latest_version())?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    tx.commit()?;
    Ok(())
}

/// SQLite's "file is not a database" becomes `NotSqlite`; anything else stays a database error.
fn not_a_database(path: &Path, e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        StoreError::NotSqlite {
            path: path.to_path_buf(),
        }
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
    }

    #[test]
    fn migrations_use_no_sqlite_only_column_types() {
        // The schema must port to PostgreSQL: no AUTOINCREMENT, no WITHOUT ROWID, no STRICT,
        // no BLOB/DATETIME/BOOLEAN affinity tricks.
        for m in MIGRATIONS {
            let sql = m.sql.to_ascii_uppercase();
            for banned in [
                "AUTOINCREMENT",
                "WITHOUT ROWID",
                "STRICT",
                "BLOB",
                "DATETIME",
                "PRAGMA",
            ] {
                assert!(
                    !sql.contains(banned),
                    "migration {} uses {banned}",
                    m.version
                );
            }
        }
    }

    #[test]
    fn a_short_or_garbled_header_is_not_sqlite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        std::fs::write(&path, b"SQLite format 3\0 but far too short").unwrap();
        assert!(matches!(
            check_header(&path),
            Err(StoreError::NotSqlite { .. })
        ));
        std::fs::write(&path, [b'x'; 4096]).unwrap();
        assert!(matches!(
            check_header(&path),
            Err(StoreError::NotSqlite { .. })
        ));
        std::fs::write(&path, b"").unwrap();
        assert!(!check_header(&path).unwrap());
    }

    #[test]
    fn a_valid_header_with_a_garbage_body_is_refused_without_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let mut bytes = SQLITE_MAGIC.to_vec();
        bytes.extend(std::iter::repeat_n(0xA5u8, 8192 - bytes.len()));
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NotSqlite { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn another_programs_database_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT)")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let err = open(&path).unwrap_err();
        assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
        assert!(err.to_string().contains("`notes`"));
        assert_eq!(std::fs::read(&path).unwrap(), before);

        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", 42).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        let err = open(&path).unwrap_err();
        assert!(err.to_string().contains("application id is 0x2a"), "{err}");
    }

    #[test]
    fn open_migrates_once_and_reopens_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, latest_version());
        drop(conn);
        let conn = open(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let app: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
    }
}
