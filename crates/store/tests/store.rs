//! Integration tests of the public API, against real SQLite databases in temporary homes.
//! (The crash tests, which need a fault-injection hook, live in `src/crash_tests.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use plugd_store::{
    ActivationEvent, CommitOutcome, ExecutionRecord, INVALID_VERSION_DIR, NewVersion, PluginStore,
    Store, StoreError,
};

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    store: Store,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let store = Store::open(&home).unwrap();
    let home = store.home().to_path_buf();
    Fixture {
        _tmp: tmp,
        home,
        store,
    }
}

fn new_version(id: &str, version: &str, digest: &str) -> NewVersion {
    NewVersion {
        id: id.into(),
        name: format!("{id} {version}"),
        version: version.into(),
        digest: digest.into(),
        manifest_json: format!(r#"{{"id":"{id}","version":"{version}"}}"#),
        runtime: "ndjson".into(),
        trust_level: "sandboxed".into(),
        source: format!("/packages/{id}-{version}.tar.gz"),
        enable: false,
    }
}

/// Stages a package (read-only, with a nested read-only directory and file) under
/// `staging/<uuid>/package` and commits it.
fn install_with(
    store: &Store,
    new: &NewVersion,
    activate: bool,
) -> Result<CommitOutcome, StoreError> {
    let staging = store.stage()?;
    let root = staging.path().join("package");
    fs::create_dir_all(root.join("src/deep")).unwrap();
    fs::write(
        root.join("main.py"),
        format!("VERSION = {:?}\n", new.version),
    )
    .unwrap();
    fs::write(root.join("src/deep/data.txt"), &new.digest).unwrap();
    fs::set_permissions(
        root.join("src/deep/data.txt"),
        fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    for dir in ["src/deep", "src", ""] {
        fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o555)).unwrap();
    }
    store.commit_install(staging, &root, new, activate)
}

fn install(store: &Store, id: &str, version: &str, digest: &str) -> CommitOutcome {
    install_with(store, &new_version(id, version, digest), true).unwrap()
}

fn staging_is_empty(home: &Path) -> bool {
    fs::read_dir(home.join("staging")).unwrap().next().is_none()
}

fn version_names(store: &Store, id: &str) -> Vec<String> {
    store
        .versions(id)
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect()
}

fn execution(id: &str, plugin: &str, started_at: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        plugin_id: plugin.into(),
        version: "1.0.0".into(),
        action: Some("greet".into()),
        status: "ok".into(),
        code: Some(0),
        started_at: started_at.into(),
        duration_us: 1234,
        error_message: None,
        cpu_time_us: Some(1000),
        peak_memory_bytes: Some(4096),
        end_reason: Some("exit".into()),
    }
}

/// Every version row has its directory and every directory its row, checked with plain
/// `rusqlite` and `read_dir` rather than with the store's own `check`.
fn assert_rows_match_dirs(home: &Path) {
    let conn = rusqlite::Connection::open(home.join("plugd.db")).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut stmt = conn
        .prepare("SELECT plugin_id, version FROM versions")
        .unwrap();
    let rows: BTreeSet<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut dirs = BTreeSet::new();
    for id in fs::read_dir(home.join("store")).unwrap() {
        let id = id.unwrap();
        for version in fs::read_dir(id.path()).unwrap() {
            dirs.insert((
                id.file_name().into_string().unwrap(),
                version.unwrap().file_name().into_string().unwrap(),
            ));
        }
    }
    assert_eq!(rows, dirs);
    let dangling: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM plugins p WHERE NOT EXISTS (SELECT 1 FROM versions v
             WHERE v.plugin_id = p.id AND v.version = p.active_version)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dangling, 0);
}

// ---------------------------------------------------------------------------------------------
// Layout

#[test]
fn open_creates_a_private_home_with_a_wal_database() {
    let f = fixture();
    let mode = fs::metadata(&f.home).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    for entry in ["plugd.db", "store", "staging", "lock"] {
        assert!(f.home.join(entry).exists(), "{entry} missing");
    }
    let conn = rusqlite::Connection::open(f.home.join("plugd.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, plugd_store::schema_version());
}

#[test]
fn store_is_send_sync_and_usable_as_a_trait_object() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let f = fixture();
    install(&f.store, "hello", "1.0.0", "d1");
    let shared: Arc<dyn PluginStore> = Arc::new(f.store);
    assert_eq!(shared.plugins().unwrap().len(), 1);
    assert_eq!(
        shared.version_dir("hello", "1.0.0"),
        f.home.join("store/hello/1.0.0")
    );
}

// ---------------------------------------------------------------------------------------------
// Install, list, info

#[test]
fn install_list_and_info_round_trip() {
    let f = fixture();
    let new = new_version("hello", "1.0.0", "sha256:aa");
    let outcome = install_with(&f.store, &new, false).unwrap();
    let dir = f.home.join("store/hello/1.0.0");
    assert_eq!(outcome, CommitOutcome::Installed { dir: dir.clone() });
    assert_eq!(f.store.version_dir("hello", "1.0.0"), dir);
    assert_eq!(
        fs::read_to_string(dir.join("main.py")).unwrap(),
        "VERSION = \"1.0.0\"\n"
    );
    // The caller's read-only mode survives the move into the store.
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o555
    );
    assert!(staging_is_empty(&f.home));

    let plugins = f.store.plugins().unwrap();
    assert_eq!(plugins.len(), 1);
    let p = &plugins[0];
    assert_eq!(
        (
            p.id.as_str(),
            p.name.as_str(),
            p.enabled,
            p.active_version.as_str()
        ),
        ("hello", "hello 1.0.0", false, "1.0.0"),
        "first version is active even without `activate`, and a new plugin starts disabled"
    );
    assert_eq!(p.installed_at, p.updated_at);
    assert_eq!(f.store.plugin("hello").unwrap().as_ref(), Some(p));
    assert_eq!(f.store.plugin("nope").unwrap(), None);

    let v = f.store.version("hello", "1.0.0").unwrap().unwrap();
    assert_eq!(v.digest, "sha256:aa");
    assert_eq!(v.manifest_json, new.manifest_json);
    assert_eq!(v.runtime, "ndjson");
    assert_eq!(v.trust_level, "sandboxed");
    assert_eq!(v.source, new.source);
    assert!(v.active);
    assert_eq!((v.scan_json, v.signer), (None, None));
    assert_eq!(f.store.versions("hello").unwrap().len(), 1);
    assert!(matches!(
        f.store.versions("nope"),
        Err(StoreError::NotInstalled { .. })
    ));

    let audit = f.store.audit(Some("hello"), 10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].event, "install");
    assert_eq!(audit[0].version.as_deref(), Some("1.0.0"));
    assert_eq!(audit[0].detail.as_deref(), Some("new plugin, disabled"));

    // Serialisable for `--json`.
    let json = serde_json::to_value(&plugins).unwrap();
    assert_eq!(json[0]["enabled"], false);

    // Everything survives a reopen.
    drop(f.store);
    let again = Store::open(&f.home).unwrap();
    assert_eq!(again.plugins().unwrap(), plugins);
    assert!(dir.join("src/deep/data.txt").exists());
}

#[test]
fn further_versions_sort_by_semver_and_activate_only_when_asked() {
    let f = fixture();
    let mut first = new_version("calc", "1.2.0", "d120");
    first.enable = true;
    install_with(&f.store, &first, false).unwrap();
    for (version, activate) in [
        ("1.10.0", false),
        ("1.9.0", false),
        ("2.0.0-rc.1", false),
        ("1.10.1", true),
    ] {
        let mut new = new_version("calc", version, &format!("d{version}"));
        new.enable = false; // ignored: an existing plugin keeps its state
        install_with(&f.store, &new, activate).unwrap();
    }
    assert_eq!(
        version_names(&f.store, "calc"),
        ["2.0.0-rc.1", "1.10.1", "1.10.0", "1.9.0", "1.2.0"]
    );
    let p = f.store.plugin("calc").unwrap().unwrap();
    assert!(p.enabled);
    assert_eq!(p.active_version, "1.10.1");
    assert_eq!(p.name, "calc 1.10.1");
    let active: Vec<_> = f
        .store
        .versions("calc")
        .unwrap()
        .into_iter()
        .filter(|v| v.active)
        .map(|v| v.version)
        .collect();
    assert_eq!(active, ["1.10.1"]);

    let audit = f.store.audit(Some("calc"), 1).unwrap();
    assert_eq!(audit[0].from_version.as_deref(), Some("1.2.0"));
    assert_eq!(audit[0].detail.as_deref(), Some("installed and activated"));
    let alongside = &f.store.audit(Some("calc"), 2).unwrap()[1];
    assert_eq!(
        alongside.detail.as_deref(),
        Some("installed alongside; 1.2.0 stays active")
    );
}

#[test]
fn reinstalling_the_same_digest_is_a_no_op_and_another_digest_conflicts() {
    let f = fixture();
    install(&f.store, "hello", "1.0.0", "sha256:aa");
    let audit_before = f.store.audit(None, 100).unwrap();
    let plugin_before = f.store.plugin("hello").unwrap();

    let again = install(&f.store, "hello", "1.0.0", "sha256:aa");
    assert_eq!(
        again,
        CommitOutcome::AlreadyInstalled {
            dir: f.home.join("store/hello/1.0.0")
        }
    );
    assert!(staging_is_empty(&f.home), "the staged copy is discarded");

    let err =
        install_with(&f.store, &new_version("hello", "1.0.0", "sha256:bb"), true).unwrap_err();
    match &err {
        StoreError::DigestConflict {
            id,
            version,
            installed,
            offered,
        } => {
            assert_eq!(
                (
                    id.as_str(),
                    version.as_str(),
                    installed.as_str(),
                    offered.as_str()
                ),
                ("hello", "1.0.0", "sha256:aa", "sha256:bb")
            );
        }
        other => panic!("expected a digest conflict, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("bump the version"), "{message}");
    assert!(message.contains("uninstall `hello` first"), "{message}");
    assert!(
        staging_is_empty(&f.home),
        "a refused staging is discarded too"
    );

    // Nothing changed: not the files, not the rows, not the log.
    assert_eq!(
        fs::read_to_string(f.home.join("store/hello/1.0.0/src/deep/data.txt")).unwrap(),
        "sha256:aa"
    );
    assert_eq!(f.store.audit(None, 100).unwrap(), audit_before);
    assert_eq!(f.store.plugin("hello").unwrap(), plugin_before);
}

// ---------------------------------------------------------------------------------------------
// State changes

#[test]
fn activate_and_rollback_record_from_to_and_reason() {
    let f = fixture();
    install(&f.store, "p", "1.0.0", "d1");
    install_with(&f.store, &new_version("p", "1.1.0", "d2"), false).unwrap();

    let previous = f
        .store
        .activate("p", "1.1.0", ActivationEvent::Update, None)
        .unwrap();
    assert_eq!(previous, "1.0.0");
    let previous = f
        .store
        .activate(
            "p",
            "1.0.0",
            ActivationEvent::Rollback,
            Some("Bug in new version"),
        )
        .unwrap();
    assert_eq!(previous, "1.1.0");
    assert_eq!(
        f.store.plugin("p").unwrap().unwrap().active_version,
        "1.0.0"
    );
    assert_eq!(f.store.plugin("p").unwrap().unwrap().name, "p 1.0.0");

    let audit = f.store.audit(Some("p"), 2).unwrap();
    assert_eq!(audit[0].event, "rollback");
    assert_eq!(audit[0].version.as_deref(), Some("1.0.0"));
    assert_eq!(audit[0].from_version.as_deref(), Some("1.1.0"));
    assert_eq!(audit[0].detail.as_deref(), Some("Bug in new version"));
    assert_eq!(audit[1].event, "update");
    assert_eq!(audit[1].version.as_deref(), Some("1.1.0"));
    assert_eq!(audit[1].from_version.as_deref(), Some("1.0.0"));
    assert_eq!(audit[0].seq, audit[1].seq + 1);

    // Activating the active version changes and records nothing.
    let count = f.store.audit(None, 100).unwrap().len();
    assert_eq!(
        f.store
            .activate("p", "1.0.0", ActivationEvent::Rollback, None)
            .unwrap(),
        "1.0.0"
    );
    assert_eq!(f.store.audit(None, 100).unwrap().len(), count);

    let err = f
        .store
        .activate("p", "3.0.0", ActivationEvent::Update, None)
        .unwrap_err();
    match &err {
        StoreError::VersionNotInstalled { installed, .. } => {
            assert_eq!(installed, &["1.1.0", "1.0.0"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("installed: 1.1.0, 1.0.0"), "{err}");
    assert!(matches!(
        f.store
            .activate("nope", "1.0.0", ActivationEvent::Update, None),
        Err(StoreError::NotInstalled { .. })
    ));
}

#[test]
fn enable_and_disable_are_audited_only_when_they_change_something() {
    let f = fixture();
    install(&f.store, "p", "1.0.0", "d1");
    assert!(f.store.set_enabled("p", true).unwrap());
    assert!(!f.store.set_enabled("p", true).unwrap());
    assert!(f.store.plugin("p").unwrap().unwrap().enabled);
    assert!(f.store.set_enabled("p", false).unwrap());
    assert!(!f.store.plugin("p").unwrap().unwrap().enabled);
    let events: Vec<_> = f
        .store
        .audit(Some("p"), 10)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["disable", "enable", "install"]);
    let err = f.store.set_enabled("ghost", true).unwrap_err();
    assert!(
        err.to_string().contains("`ghost` is not installed"),
        "{err}"
    );
}

#[test]
fn uninstall_removes_rows_and_read_only_dirs_but_keeps_history() {
    let f = fixture();
    install(&f.store, "p", "1.0.0", "d1");
    install(&f.store, "p", "1.1.0", "d2");
    install(&f.store, "keep", "0.1.0", "d3");
    f.store
        .record_execution(&execution("e1", "p", "2024-05-01T12:00:00Z"))
        .unwrap();
    // A deeper read-only tree than the fixture's, with a file the owner cannot write.
    let dir = f.home.join("store/p/1.0.0");
    assert_eq!(
        fs::metadata(dir.join("src/deep"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o555
    );

    assert_eq!(f.store.uninstall("p").unwrap(), ["1.1.0", "1.0.0"]);
    assert!(!f.home.join("store/p").exists());
    assert!(f.store.plugin("p").unwrap().is_none());
    assert!(f.store.version("p", "1.0.0").unwrap().is_none());
    assert!(f.home.join("store/keep/0.1.0/main.py").exists());
    assert_eq!(f.store.executions(Some("p"), 10).unwrap().len(), 1);
    let last = &f.store.audit(Some("p"), 1).unwrap()[0];
    assert_eq!(last.event, "uninstall");
    assert_eq!(last.version.as_deref(), Some("1.1.0"));
    assert!(matches!(
        f.store.uninstall("p"),
        Err(StoreError::NotInstalled { .. })
    ));

    // The same id and version can come back, with other content.
    install(&f.store, "p", "1.0.0", "different");
    assert_rows_match_dirs(&f.home);
}

#[test]
fn scan_results_and_signer_can_be_attached() {
    let f = fixture();
    install(&f.store, "p", "1.0.0", "d1");
    f.store
        .set_version_meta("p", "1.0.0", Some(r#"{"findings":[]}"#), Some("key-1"))
        .unwrap();
    let v = f.store.version("p", "1.0.0").unwrap().unwrap();
    assert_eq!(v.scan_json.as_deref(), Some(r#"{"findings":[]}"#));
    assert_eq!(v.signer.as_deref(), Some("key-1"));
    assert!(matches!(
        f.store.set_version_meta("p", "9.9.9", None, None),
        Err(StoreError::VersionNotInstalled { .. })
    ));
    assert!(matches!(
        f.store.set_version_meta("q", "1.0.0", None, None),
        Err(StoreError::NotInstalled { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// History

#[test]
fn executions_round_trip_filter_and_sort_newest_first() {
    let f = fixture();
    let mut failed = execution("e2", "b", "2024-05-01T12:00:01.5+02:00");
    failed.status = "error".into();
    failed.code = Some(301);
    failed.error_message = Some("timed out".into());
    failed.action = None;
    failed.cpu_time_us = None;
    failed.peak_memory_bytes = None;
    failed.end_reason = Some("timeout".into());
    failed.duration_us = u64::MAX;
    let records = [
        execution("e1", "a", "2024-05-01T10:00:00Z"),
        failed,
        execution("e3", "a", "2024-05-01T10:00:00.25Z"),
        execution("e4", "a", "2023-12-31T23:59:59.999999Z"),
    ];
    for rec in &records {
        f.store.record_execution(rec).unwrap();
    }

    let all = f.store.executions(None, 100).unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.id.as_str()).collect();
    // 10:00:01.5 at +02:00 is 10:00:01.5Z: newest, although it is not newest as written.
    assert_eq!(ids, ["e2", "e3", "e1", "e4"]);
    let e2 = &all[0];
    assert_eq!(e2.started_at, "2024-05-01T10:00:01.500000Z");
    assert_eq!(
        e2.duration_us,
        i64::MAX as u64,
        "saturated at BIGINT's maximum"
    );
    assert_eq!(e2.error_message.as_deref(), Some("timed out"));
    assert_eq!(e2.code, Some(301));
    assert_eq!((e2.action.as_ref(), e2.cpu_time_us), (None, None));
    let e1 = all.iter().find(|e| e.id == "e1").unwrap();
    assert_eq!(
        e1,
        &ExecutionRecord {
            started_at: "2024-05-01T10:00:00.000000Z".into(),
            ..records[0].clone()
        }
    );

    let only_a: Vec<_> = f
        .store
        .executions(Some("a"), 2)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(only_a, ["e3", "e1"]);
    assert!(f.store.executions(Some("nobody"), 10).unwrap().is_empty());
    assert!(f.store.executions(None, 0).unwrap().is_empty());

    // JSON round trip for the REST API.
    let json = serde_json::to_string(&all).unwrap();
    let back: Vec<ExecutionRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, all);
}

#[test]
fn bad_execution_records_are_refused() {
    let f = fixture();
    f.store
        .record_execution(&execution("e1", "a", "2024-05-01T10:00:00Z"))
        .unwrap();
    let err = f
        .store
        .record_execution(&execution("e1", "a", "2024-05-01T10:00:00Z"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateExecution { .. }),
        "{err:?}"
    );
    for bad in [
        "",
        "yesterday",
        "2024-05-01 10:00:00",
        "2024-13-01T00:00:00Z",
        "2024-05-01T10:00:00",
    ] {
        let err = f
            .store
            .record_execution(&execution("e9", "a", bad))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidTimestamp { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("RFC 3339"));
    }
    assert_eq!(f.store.executions(None, 10).unwrap().len(), 1);
}

#[test]
fn a_negative_duration_written_behind_our_back_is_reported_as_corrupt() {
    let f = fixture();
    f.store
        .record_execution(&execution("e1", "a", "2024-05-01T10:00:00Z"))
        .unwrap();
    let conn = rusqlite::Connection::open(f.home.join("plugd.db")).unwrap();
    conn.execute("UPDATE executions SET duration_us = -5", [])
        .unwrap();
    let err = f.store.executions(None, 10).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("-5"), "{err}");
}

#[test]
fn reviews_are_bounded_and_summarised() {
    let f = fixture();
    f.store
        .add_review("weather", 5, Some("ana"), Some("great"))
        .unwrap();
    let second = f.store.add_review("weather", 2, None, None).unwrap();
    f.store.add_review("other", 1, None, None).unwrap();
    let reviews = f.store.reviews("weather", 10).unwrap();
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[0], second);
    let summary = f.store.rating_summary("weather").unwrap();
    assert_eq!(summary.count, 2);
    assert_eq!(summary.average, Some(3.5));
    assert_eq!(f.store.rating_summary("none").unwrap().average, None);
    for rating in [0, 6] {
        let err = f
            .store
            .add_review("weather", rating, None, None)
            .unwrap_err();
        assert!(err.to_string().contains("1 to 5 stars"), "{err}");
    }
    let long = "x".repeat(10_001);
    assert!(f.store.add_review("weather", 3, None, Some(&long)).is_err());
    assert!(f.store.add_review("../etc", 3, None, None).is_err());
}

// ---------------------------------------------------------------------------------------------
// Refusing files that are not ours

#[test]
fn a_non_sqlite_database_file_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir(&home).unwrap();
    let db = home.join("plugd.db");
    let content = b"these are my notes, not a database\n".repeat(100);
    fs::write(&db, &content).unwrap();
    let err = Store::open(&home).unwrap_err();
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("plugd.db is not a plugd database"),
        "{message}"
    );
    assert!(message.contains("untouched"), "{message}");
    assert_eq!(fs::read(&db).unwrap(), content);
    assert!(!home.join("plugd.db-wal").exists());
}

#[test]
fn a_database_from_a_newer_plugd_is_refused_and_left_untouched() {
    let f = fixture();
    install(&f.store, "p", "1.0.0", "d1");
    drop(f.store);
    let db = f.home.join("plugd.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        // Back to a rollback journal, so that a premature switch to WAL would change the bytes.
        conn.pragma_update(None, "journal_mode", "delete").unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = fs::read(&db).unwrap();
    let err = Store::open(&f.home).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => assert_eq!((*found, *supported), (99, plugd_store::schema_version())),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("upgrade plugd"), "{err}");
    assert_eq!(fs::read(&db).unwrap(), before);
    assert!(!f.home.join("plugd.db-wal").exists());
    // The files of the newer plugd's plugins are not garbage-collected either.
    assert!(f.home.join("store/p/1.0.0/main.py").exists());
}

// ---------------------------------------------------------------------------------------------
// Garbage recovery

#[test]
fn open_removes_garbage_and_keeps_what_rows_account_for() {
    let f = fixture();
    install(&f.store, "live", "1.0.0", "d1");
    drop(f.store);
    let store_dir = f.home.join("store");
    // A version without a row, read-only like a real one, in a live plugin's directory...
    let orphan = store_dir.join("live/0.9.0");
    fs::create_dir_all(orphan.join("sub")).unwrap();
    fs::write(orphan.join("sub/f"), "x").unwrap();
    fs::set_permissions(orphan.join("sub"), fs::Permissions::from_mode(0o500)).unwrap();
    fs::set_permissions(&orphan, fs::Permissions::from_mode(0o500)).unwrap();
    // ...a whole plugin without rows, a stray file, and a name that is not a valid id.
    fs::create_dir_all(store_dir.join("ghost/1.0.0")).unwrap();
    fs::write(store_dir.join("stray.txt"), "x").unwrap();
    fs::create_dir_all(store_dir.join(".hidden/1.0.0")).unwrap();
    // A staging directory without its lock file, and a stale lock file with its directory.
    let staging = f.home.join("staging");
    fs::create_dir_all(staging.join("0123abcd/package")).unwrap();
    fs::create_dir_all(staging.join("4567ef/package")).unwrap();
    fs::write(staging.join("4567ef.lock"), "").unwrap();

    let store = Store::open(&f.home).unwrap();
    let mut left: Vec<_> = fs::read_dir(&store_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["live"]);
    assert!(!orphan.exists());
    assert!(store_dir.join("live/1.0.0/main.py").exists());
    assert!(staging_is_empty(&f.home));
    let check = store.check().unwrap();
    assert!(check.is_ok(), "{check:?}");
}

#[test]
fn check_reports_what_is_out_of_step() {
    let f = fixture();
    install(&f.store, "a", "1.0.0", "d1");
    install(&f.store, "b", "1.0.0", "d2");
    fs::create_dir_all(f.home.join("store/c/2.0.0")).unwrap();
    let gone = f.home.join("store/b/1.0.0");
    fs::set_permissions(&gone, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&gone).unwrap();
    let check = f.store.check().unwrap();
    assert!(!check.is_ok());
    assert_eq!(check.integrity, ["ok"]);
    assert_eq!(
        check.rows_without_dir,
        [("b".to_owned(), "1.0.0".to_owned())]
    );
    assert_eq!(check.dirs_without_row, [f.home.join("store/c/2.0.0")]);
    assert!(check.dangling_active.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Defence in depth

#[test]
fn unsafe_ids_and_versions_never_become_paths() {
    let f = fixture();
    for (id, version) in [
        ("../evil", "1.0.0"),
        ("ok", "../../x"),
        ("", "1.0.0"),
        ("ok", "a\0b"),
        ("a/b", "1"),
    ] {
        let err = install_with(&f.store, &new_version(id, version, "d"), true).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidName { .. }),
            "{id:?} {version:?}: {err:?}"
        );
        assert_eq!(
            f.store.version_dir(id, version),
            PathBuf::from(INVALID_VERSION_DIR)
        );
        assert!(f.store.try_version_dir(id, version).is_err());
    }
    assert!(matches!(
        f.store.uninstall(".."),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(f.store.plugins().unwrap().is_empty());
    assert!(staging_is_empty(&f.home));
    assert!(!f.home.parent().unwrap().join("evil").exists());
}

#[test]
fn the_package_root_must_be_a_real_directory_inside_its_staging() {
    let f = fixture();
    let new = new_version("p", "1.0.0", "d");

    let outside = tempfile::tempdir().unwrap();
    let staging = f.store.stage().unwrap();
    let err = f
        .store
        .commit_install(staging, outside.path(), &new, true)
        .unwrap_err();
    assert!(
        err.to_string().contains("outside the staging directory"),
        "{err}"
    );
    assert!(
        outside.path().exists(),
        "a directory outside staging is never moved"
    );

    let staging = f.store.stage().unwrap();
    let link = staging.path().join("link");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let err = f
        .store
        .commit_install(staging, &link, &new, true)
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    // A real directory reached through a symlink inside staging is still outside.
    let staging = f.store.stage().unwrap();
    fs::create_dir(outside.path().join("inner")).unwrap();
    fs::create_dir(staging.path().join("real")).unwrap();
    std::os::unix::fs::symlink(outside.path(), staging.path().join("real/escape")).unwrap();
    let sneaky = staging.path().join("real/escape/inner");
    let err = f
        .store
        .commit_install(staging, &sneaky, &new, true)
        .unwrap_err();
    assert!(
        err.to_string().contains("outside the staging directory"),
        "{err}"
    );
    assert!(outside.path().join("inner").is_dir());

    let staging = f.store.stage().unwrap();
    let missing = staging.path().join("never-unpacked");
    let err = f
        .store
        .commit_install(staging, &missing, &new, true)
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    let staging = f.store.stage().unwrap();
    let file = staging.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = f
        .store
        .commit_install(staging, &file, &new, true)
        .unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");

    let other = fixture();
    let foreign = other.store.stage().unwrap();
    let root = foreign.path().to_path_buf();
    let err = f
        .store
        .commit_install(foreign, &root, &new, true)
        .unwrap_err();
    assert!(matches!(err, StoreError::ForeignStaging { .. }), "{err:?}");

    assert!(f.store.plugins().unwrap().is_empty());
    assert!(staging_is_empty(&f.home));
    assert!(staging_is_empty(&other.home));
}

#[test]
fn the_whole_staging_directory_may_be_the_package_root() {
    let f = fixture();
    let staging = f.store.stage().unwrap();
    fs::write(staging.path().join("main.sh"), "echo hi\n").unwrap();
    let root = staging.path().to_path_buf();
    let outcome = f
        .store
        .commit_install(staging, &root, &new_version("p", "1.0.0", "d"), true)
        .unwrap();
    assert!(outcome.dir().join("main.sh").exists());
    assert!(staging_is_empty(&f.home));
}

// ---------------------------------------------------------------------------------------------
// Concurrency

#[test]
fn concurrent_stores_on_one_home_stay_consistent() {
    const THREADS: usize = 8;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // Each thread installs the same six (id, version) pairs, in its own order, plus one
    // version of its own; thread 0 also offers a conflicting digest for one pair.
    let shared: Vec<(String, String)> = ["alpha", "beta", "gamma"]
        .iter()
        .flat_map(|id| ["1.0.0", "1.1.0"].map(|v| (id.to_string(), v.to_string())))
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let home = home.clone();
            let barrier = Arc::clone(&barrier);
            let mut work = shared.clone();
            work.rotate_left(t % shared.len());
            if t % 2 == 1 {
                work.reverse();
            }
            work.push((format!("own-{t}"), "0.1.0".to_owned()));
            std::thread::spawn(move || {
                barrier.wait();
                let store = Store::open(&home).unwrap();
                let mut outcomes = Vec::new();
                for (id, version) in &work {
                    let digest = format!("{id}@{version}");
                    let outcome = install(&store, id, version, &digest);
                    outcomes.push(((id.clone(), version.clone()), outcome));
                    if t == 0 && id == "beta" && version == "1.0.0" {
                        let err = install_with(&store, &new_version(id, version, "evil"), true)
                            .unwrap_err();
                        assert!(matches!(err, StoreError::DigestConflict { .. }));
                    }
                }
                store
                    .record_execution(&execution(
                        &format!("run-{t}"),
                        "alpha",
                        "2024-01-01T00:00:00Z",
                    ))
                    .unwrap();
                outcomes
            })
        })
        .collect();

    let mut installed: BTreeMap<(String, String), usize> = BTreeMap::new();
    for handle in handles {
        for (key, outcome) in handle.join().unwrap() {
            let count = installed.entry(key).or_default();
            if matches!(outcome, CommitOutcome::Installed { .. }) {
                *count += 1;
            }
        }
    }
    assert!(
        installed.values().all(|&n| n == 1),
        "every version is installed exactly once: {installed:?}"
    );
    assert_eq!(installed.len(), shared.len() + THREADS);

    let store = Store::open(&home).unwrap();
    assert_rows_match_dirs(store.home());
    let check = store.check().unwrap();
    assert!(check.is_ok(), "{check:?}");
    assert_eq!(store.plugins().unwrap().len(), 3 + THREADS);
    assert_eq!(store.executions(None, 100).unwrap().len(), THREADS);
    let installs = store
        .audit(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "install")
        .count();
    assert_eq!(installs, shared.len() + THREADS);
    let seqs: Vec<i64> = store
        .audit(None, 1000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] == w[1] + 1), "{seqs:?}");
    assert!(staging_is_empty(store.home()));
    for (id, version) in &shared {
        let v = store.version(id, version).unwrap().unwrap();
        assert_eq!(v.digest, format!("{id}@{version}"));
    }
}
