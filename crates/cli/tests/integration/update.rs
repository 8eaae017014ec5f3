//! `plugd update` checks the new version before switching to it (DESIGN §6):
//! it must answer a health check, and new permissions need consent.

use crate::util::{Env, Fixture, python_fixture};

const RUN: &str = r#"reply(req, body={"ok": True})"#;

/// A version whose process dies at start.
fn broken(version: &'static str) -> Fixture {
    Fixture {
        id: "upd",
        version,
        language: "python",
        entry: "plugin.py",
        actions: &["run"],
        code: "import sys\nsys.stderr.write('config file missing\\n')\nsys.exit(3)\n",
    }
}

#[test]
fn an_unhealthy_new_version_is_installed_but_not_activated() {
    let env = Env::new();
    let v1 = env.plugin("v1", &python_fixture("upd", "1.0.0", RUN));
    let v2 = env.plugin("v2", &broken("1.1.0"));
    env.ok(&["install", "--enable", v1.to_str().unwrap()]);

    let run = env.fails(&["update", "upd", v2.to_str().unwrap()]);
    assert!(
        run.stderr.contains("was not made active") && run.stderr.contains("health check failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("config file missing"), "{}", run.stderr);

    let info = env.json(&["info", "upd"]);
    assert_eq!(info["active_version"], "1.0.0", "{info}");
    let versions: Vec<&str> = info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert!(versions.contains(&"1.1.0"), "{versions:?}");
    assert_eq!(
        env.json(&["exec", "upd", "run"])["response"]["body"]["ok"],
        true
    );

    // A fixed 1.2.0 passes and becomes active.
    let v3 = env.plugin("v3", &python_fixture("upd", "1.2.0", RUN));
    let updated = env.json(&["update", "upd", v3.to_str().unwrap()]);
    assert_eq!(updated["version"], "1.2.0", "{updated}");
    assert_eq!(env.json(&["info", "upd"])["active_version"], "1.2.0");
}

#[test]
fn new_permissions_need_accept_permissions() {
    let env = Env::new();
    let v1 = env.plugin("v1", &python_fixture("perm", "1.0.0", RUN));
    env.ok(&["install", "--enable", v1.to_str().unwrap()]);
    let v2 = env.plugin("v2", &python_fixture("perm", "1.1.0", RUN));
    let manifest = v2.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}permissions:\n  - net:connect\n")).unwrap();

    let before = env.home_tree();
    let run = env.fails(&["update", "perm", v2.to_str().unwrap()]);
    assert!(
        run.stderr.contains("net:connect") && run.stderr.contains("--accept-permissions"),
        "{}",
        run.stderr
    );
    assert_eq!(env.home_tree(), before, "a refused update left traces");
    assert_eq!(env.json(&["info", "perm"])["active_version"], "1.0.0");

    let updated = env.json(&[
        "update",
        "perm",
        v2.to_str().unwrap(),
        "--accept-permissions",
    ]);
    assert_eq!(updated["version"], "1.1.0", "{updated}");
}
