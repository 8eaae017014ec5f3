//! Crash tests: a child process (this test binary, re-run on one ignored test) dies with
//! `abort()` at a chosen point, and the parent checks that `Store::open` puts the store back in a
//! consistent state. A real process death, not an early return: no destructor runs, the kernel
//! drops the child's locks, and SQLite sees an unfinished transaction.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::crash::{Point, arm};
use crate::{ActivationEvent, CommitOutcome, NewVersion, Store};

const HOME_VAR: &str = "PLUGD_STORE_CRASH_HOME";
const POINT_VAR: &str = "PLUGD_STORE_CRASH_POINT";
const SIGABRT: i32 = 6;

fn new_version(id: &str, version: &str, digest: &str) -> NewVersion {
    NewVersion {
        id: id.into(),
        name: format!("{id} plugin"),
        version: version.into(),
        digest: digest.into(),
        manifest_json: format!(r#"{{"id":"{id}","version":"{version}"}}"#),
        runtime: "ndjson".into(),
        trust_level: "sandboxed".into(),
        source: "/tmp/pkg".into(),
        enable: true,
    }
}

/// Stages a small read-only package whose `main.sh` says which version it is, and commits it.
fn install(store: &Store, id: &str, version: &str, digest: &str) -> CommitOutcome {
    let staging = store.stage().unwrap();
    let root = staging.path().join("package");
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::write(root.join("main.sh"), format!("echo {version}\n")).unwrap();
    fs::write(root.join("lib/util.sh"), "true\n").unwrap();
    for dir in [root.join("lib"), root.clone()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
    }
    store
        .commit_install(staging, &root, &new_version(id, version, digest), true)
        .unwrap()
}

#[test]
#[ignore = "only runs as the child process of the crash tests"]
fn crash_child() {
    let (Some(home), Ok(point)) = (std::env::var_os(HOME_VAR), std::env::var(POINT_VAR)) else {
        return;
    };
    let store = Store::open(Path::new(&home)).unwrap();
    match point.as_str() {
        "after-rename" => {
            arm(Point::AfterRename);
            install(&store, "p", "2.0.0", "sha256:two");
        }
        "after-uninstall-commit" => {
            arm(Point::AfterUninstallCommit);
            store.uninstall("p").unwrap();
        }
        "while-staged" => {
            let staging = store.stage().unwrap();
            fs::write(staging.path().join("half-unpacked"), "x").unwrap();
            std::process::abort();
        }
        other => panic!("unknown crash point {other}"),
    }
    panic!("the crash point {point} was not reached");
}

fn crash_child_at(home: &Path, point: &str) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_tests::crash_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(HOME_VAR, home)
        .env(POINT_VAR, point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "the child should have died at {point}, got {status}"
    );
}

fn staging_entries(home: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(home.join("staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_crash_between_rename_and_commit_leaves_the_old_state() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let store = Store::open(&home).unwrap();
    install(&store, "p", "1.0.0", "sha256:one");
    let audit_before = store.audit(None, 100).unwrap();
    drop(store);

    crash_child_at(&home, "after-rename");

    // The child really died after its rename: the new directory is there, without a row, and
    // its staging directory was never cleaned up.
    let garbage = home.join("store/p/2.0.0");
    assert_eq!(
        fs::read_to_string(garbage.join("main.sh")).unwrap(),
        "echo 2.0.0\n"
    );
    assert_eq!(
        staging_entries(&home).len(),
        2,
        "{:?}",
        staging_entries(&home)
    );

    let store = Store::open(&home).unwrap();
    assert!(
        !garbage.exists(),
        "open must remove the uncommitted version"
    );
    assert!(
        staging_entries(&home).is_empty(),
        "{:?}",
        staging_entries(&home)
    );
    let versions: Vec<_> = store
        .versions("p")
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, ["1.0.0"]);
    assert_eq!(store.plugin("p").unwrap().unwrap().active_version, "1.0.0");
    assert_eq!(
        fs::read_to_string(home.join("store/p/1.0.0/main.sh")).unwrap(),
        "echo 1.0.0\n"
    );
    assert_eq!(store.audit(None, 100).unwrap(), audit_before);
    let check = store.check().unwrap();
    assert!(check.is_ok(), "{check:?}");

    // And the same version installs cleanly afterwards.
    assert!(matches!(
        install(&store, "p", "2.0.0", "sha256:two"),
        CommitOutcome::Installed { .. }
    ));
    store
        .activate("p", "1.0.0", ActivationEvent::Rollback, Some("test"))
        .unwrap();
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn a_crash_between_uninstall_commit_and_removal_leaves_only_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let store = Store::open(&home).unwrap();
    install(&store, "p", "1.0.0", "sha256:one");
    install(&store, "p", "1.1.0", "sha256:two");
    install(&store, "other", "0.1.0", "sha256:three");
    drop(store);

    crash_child_at(&home, "after-uninstall-commit");
    assert!(home.join("store/p/1.1.0/main.sh").exists());

    let store = Store::open(&home).unwrap();
    assert!(!home.join("store/p").exists());
    assert!(store.plugin("p").unwrap().is_none());
    assert!(home.join("store/other/0.1.0/main.sh").exists());
    let last = &store.audit(Some("p"), 1).unwrap()[0];
    assert_eq!(last.event, "uninstall");
    assert_eq!(
        last.detail.as_deref(),
        Some("removed versions 1.1.0, 1.0.0")
    );
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn staging_of_a_dead_process_is_removed_and_a_live_one_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let store = Store::open(&home).unwrap();
    let live = store.stage().unwrap();
    fs::write(live.path().join("busy"), "unpacking").unwrap();

    crash_child_at(&home, "while-staged");
    assert_eq!(
        staging_entries(&home).len(),
        4,
        "{:?}",
        staging_entries(&home)
    );

    let other = Store::open(&home).unwrap();
    let left = staging_entries(&home);
    assert_eq!(
        left.len(),
        2,
        "only the live staging and its lock remain: {left:?}"
    );
    assert!(left.contains(&live.path().to_path_buf()));
    assert!(live.path().join("busy").exists());

    drop(live);
    assert!(staging_entries(&home).is_empty());
    drop(other);
}
