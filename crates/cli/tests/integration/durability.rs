//! plugd killed at random moments, and several plugd processes on one home: the
//! store must always hold either the old state or the new one, complete.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use crate::util::{Env, python_fixture};

/// A plugin with enough files that unpacking takes a while, so kills land in
/// every phase of an install.
fn many_file_plugin(env: &Env) -> std::path::PathBuf {
    let dir = env.plugin(
        "big",
        &python_fixture("big", "1.0.0", "reply(req, body={})"),
    );
    for i in 0..300 {
        std::fs::write(
            dir.join(format!("data-{i:03}.txt")),
            format!("{i}\n").repeat(200),
        )
        .unwrap();
    }
    dir
}

/// Checks that the home is consistent: either `big` is fully installed (its
/// files give the expected digest) or there is no trace of it.
fn assert_consistent(env: &Env, expected_digest: &str) -> bool {
    let list = env.json(&["list"]);
    let plugins = list["plugins"].as_array().unwrap();
    let store_dir = env.home.path().join("store").join("big");
    let staging = env.home.path().join("staging");
    let leftovers: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "staging not cleaned after a kill: {leftovers:?}"
    );
    if plugins.is_empty() {
        assert!(
            !store_dir.exists() || std::fs::read_dir(&store_dir).unwrap().next().is_none(),
            "files of an uninstalled plugin remain in {}",
            store_dir.display()
        );
        return false;
    }
    let info = env.json(&["info", "big"]);
    assert_eq!(info["versions"][0]["digest"], expected_digest);
    let repacked = env.json(&[
        "pack",
        store_dir.join("1.0.0").to_str().unwrap(),
        "-o",
        env.path("check.tar.gz").to_str().unwrap(),
    ]);
    assert_eq!(
        repacked["digest"], expected_digest,
        "the installed files are incomplete"
    );
    true
}

#[test]
fn killing_plugd_at_any_moment_leaves_the_old_or_the_new_state() {
    let env = Env::new();
    let dir = many_file_plugin(&env);
    let expected = env.json(&[
        "pack",
        dir.to_str().unwrap(),
        "-o",
        env.path("ref.tar.gz").to_str().unwrap(),
    ])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Kill delays span a whole install, measured here, so kills land in every phase.
    let probe = Env::new();
    let started = Instant::now();
    probe.ok(&["install", dir.to_str().unwrap()]);
    let span = (started.elapsed().as_micros() as u64 * 3 / 2).max(1);
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill-loop seed {seed}");
    let (mut installed_seen, mut absent_seen) = (0, 0);
    for round in 0..24 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % span);
        let present = env.json(&["list"])["plugins"].as_array().unwrap().len() == 1;
        let args: Vec<&str> = if present {
            vec!["uninstall", "big"]
        } else {
            vec!["install", dir.to_str().unwrap()]
        };
        let mut child = env
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        if assert_consistent(&env, &expected) {
            installed_seen += 1;
        } else {
            absent_seen += 1;
        }
        eprintln!(
            "round {round}: {} after killing `{}` at {delay:?}",
            if present { "uninstall" } else { "install" },
            args[0]
        );
    }
    // both outcomes must have occurred, or the loop did not test anything
    assert!(
        installed_seen > 0 && absent_seen > 0,
        "installed {installed_seen}, absent {absent_seen}"
    );
}

#[test]
fn racing_installs_on_one_home_never_corrupt_it() {
    let env = Env::new();
    let shared = env.plugin(
        "shared",
        &python_fixture("shared", "1.0.0", "reply(req, body={})"),
    );
    let mut dirs = vec![shared.clone(), shared.clone(), shared];
    for id in ["solo-a", "solo-b", "solo-c"] {
        dirs.push(env.plugin(id, &python_fixture(id, "1.0.0", "reply(req, body={})")));
    }
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            env.command(&["--json", "install", d.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut statuses = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a racing install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        statuses.push((
            doc["id"].as_str().unwrap().to_string(),
            doc["status"].as_str().unwrap().to_string(),
        ));
    }
    let shared_installed = statuses
        .iter()
        .filter(|(id, s)| id == "shared" && s == "installed")
        .count();
    assert_eq!(
        shared_installed, 1,
        "exactly one racer installs `shared`, the others find it unchanged: {statuses:?}"
    );
    let list = env.json(&["list"]);
    let mut ids: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["shared", "solo-a", "solo-b", "solo-c"]);
    for id in ids {
        let info = env.json(&["info", id]);
        assert_eq!(info["versions"].as_array().unwrap().len(), 1);
        assert!(
            Path::new(info["versions"][0]["dir"].as_str().unwrap())
                .join("manifest.yaml")
                .exists()
        );
    }
}
