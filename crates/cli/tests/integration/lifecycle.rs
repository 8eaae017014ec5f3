use serde_json::Value;

use crate::util::{Env, example, python_fixture};

const VERSIONED: &str = r#"reply(req, body={"version": os.environ["PLUGD_PLUGIN_VERSION"]})"#;

#[test]
fn python_echo_example_installs_and_answers() {
    let env = Env::new();
    let dir = example("python-echo");
    env.ok(&["install", dir.to_str().unwrap(), "--enable"]);
    let out = env.ok(&[
        "exec",
        "python-echo",
        "echo",
        "--args",
        r#"{"message":"hello"}"#,
    ]);
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body["message"], "hello", "{}", out.stdout);
}

#[test]
fn every_example_manifest_validates() {
    let env = Env::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(crate::util::workspace().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_str().unwrap();
            let path = crate::util::example_package(name, env.scratch.path());
            let doc = env.json(&["validate", path.to_str().unwrap()]);
            assert_eq!(doc["valid"], true, "{}: {doc}", path.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 7,
        "expected the NDJSON examples and one manifest per dialect, found {seen}"
    );
}

#[test]
fn validate_reports_every_problem_with_its_path() {
    let env = Env::new();
    let dir = env.path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.yaml"),
        "id: Not_Kebab\nname: bad\nversion: one\nruntime: teleport\nlanguage: cobol\nentry_point: missing.py\ntrust_level: godlike\npermissions: ['NET CONNECT']\n",
    )
    .unwrap();
    let run = env.fails(&["--json", "validate", dir.to_str().unwrap()]);
    let doc = run.json();
    assert_eq!(doc["valid"], false);
    let paths: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for expected in [
        "id",
        "version",
        "runtime",
        "language",
        "trust_level",
        "entry_point",
        "permissions[0]",
    ] {
        assert!(
            paths.contains(&expected),
            "no problem reported at `{expected}`; got {paths:?}"
        );
    }
    let text = env.fails(&["validate", dir.to_str().unwrap()]);
    assert!(text.stdout.contains("version"), "{}", text.stdout);
}

#[test]
fn pack_gives_the_same_digest_as_the_directory_and_reinstall_is_a_no_op() {
    let env = Env::new();
    let dir = example("python-echo");
    let archive = env.path("echo.tar.gz");
    let packed = env.json(&[
        "pack",
        dir.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
    ]);
    let from_dir = env.json(&["install", dir.to_str().unwrap()]);
    assert_eq!(from_dir["status"], "installed");
    assert_eq!(packed["digest"], from_dir["digest"]);
    let again = env.json(&["install", archive.to_str().unwrap()]);
    assert_eq!(again["status"], "unchanged", "{again}");
    assert_eq!(again["digest"], from_dir["digest"]);
}

#[test]
fn same_version_with_other_content_is_refused() {
    let env = Env::new();
    let one = env.plugin("a", &python_fixture("twin", "1.0.0", VERSIONED));
    env.ok(&["install", one.to_str().unwrap()]);
    let other = env.plugin("b", &python_fixture("twin", "1.0.0", "reply(req, body={})"));
    let run = env.fails(&["install", other.to_str().unwrap()]);
    assert!(run.stderr.contains("1.0.0"), "{}", run.stderr);
    let info = env.json(&["info", "twin"]);
    assert_eq!(info["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn installing_another_version_points_to_update() {
    let env = Env::new();
    env.ok(&[
        "install",
        env.plugin("v1", &python_fixture("vers", "1.0.0", VERSIONED))
            .to_str()
            .unwrap(),
    ]);
    let run = env.fails(&[
        "install",
        env.plugin("v2", &python_fixture("vers", "2.0.0", VERSIONED))
            .to_str()
            .unwrap(),
    ]);
    assert!(run.stderr.contains("plugd update vers"), "{}", run.stderr);
}

#[test]
fn update_then_rollback_switches_back_and_records_the_reason() {
    let env = Env::new();
    let v1 = env.plugin("v1", &python_fixture("roll", "1.0.0", VERSIONED));
    let v2 = env.plugin("v2", &python_fixture("roll", "1.1.0", VERSIONED));
    env.ok(&["install", v1.to_str().unwrap(), "--enable"]);
    let updated = env.json(&["update", "roll", v2.to_str().unwrap()]);
    assert_eq!(updated["version"], "1.1.0");
    assert_eq!(updated["previous_version"], "1.0.0");
    assert_eq!(
        env.json(&["exec", "roll", "run"])["response"]["body"]["version"],
        "1.1.0"
    );

    // an older package is not an update
    let run = env.fails(&["update", "roll", v1.to_str().unwrap()]);
    assert!(run.stderr.contains("rollback"), "{}", run.stderr);

    let rolled = env.json(&["rollback", "roll", "--reason", "bug in 1.1.0"]);
    assert_eq!(rolled["from_version"], "1.1.0");
    assert_eq!(rolled["to_version"], "1.0.0");
    assert_eq!(
        env.json(&["exec", "roll", "run"])["response"]["body"]["version"],
        "1.0.0"
    );

    let info = env.json(&["info", "roll"]);
    assert_eq!(info["active_version"], "1.0.0");
    let versions: Vec<&str> = info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert!(
        versions.contains(&"1.0.0") && versions.contains(&"1.1.0"),
        "{versions:?}"
    );
    let rollback = info["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "rollback")
        .expect("a rollback entry in the audit log");
    assert_eq!(rollback["detail"], "bug in 1.1.0");
    let text = env.ok(&["info", "roll"]).stdout;
    assert!(
        text.contains("bug in 1.1.0") && text.contains("1.1.0"),
        "{text}"
    );

    // back to the newer one by name
    env.ok(&[
        "rollback",
        "roll",
        "--to",
        "1.1.0",
        "--reason",
        "fixed upstream",
    ]);
    assert_eq!(env.json(&["info", "roll"])["active_version"], "1.1.0");
    let run = env.fails(&["rollback", "roll", "--to", "9.9.9", "--reason", "x"]);
    assert!(run.stderr.contains("9.9.9"), "{}", run.stderr);
}

#[test]
fn disabled_plugins_are_refused_and_enable_restores_them() {
    let env = Env::new();
    let dir = env.plugin("p", &python_fixture("gate", "1.0.0", VERSIONED));
    let installed = env.json(&["install", dir.to_str().unwrap()]);
    assert_eq!(installed["enabled"], false);
    let run = env.fails(&["exec", "gate", "run"]);
    assert!(run.stderr.contains("plugd enable gate"), "{}", run.stderr);
    env.ok(&["enable", "gate"]);
    env.ok(&["exec", "gate", "run"]);
    env.ok(&["disable", "gate"]);
    env.fails(&["exec", "gate", "run"]);
    // refusals are not executions
    assert_eq!(
        env.json(&["history", "gate"])["executions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn uninstall_removes_every_version_and_its_files() {
    let env = Env::new();
    env.ok(&[
        "install",
        env.plugin("v1", &python_fixture("gone", "1.0.0", VERSIONED))
            .to_str()
            .unwrap(),
    ]);
    env.ok(&[
        "update",
        "gone",
        env.plugin("v2", &python_fixture("gone", "2.0.0", VERSIONED))
            .to_str()
            .unwrap(),
    ]);
    let doc = env.json(&["uninstall", "gone"]);
    assert_eq!(doc["removed_versions"].as_array().unwrap().len(), 2);
    assert_eq!(env.json(&["list"])["plugins"].as_array().unwrap().len(), 0);
    assert!(!env.home.path().join("store").join("gone").exists());
    let run = env.fails(&["info", "gone"]);
    assert!(run.stderr.contains("not installed"), "{}", run.stderr);
}

#[test]
fn every_command_prints_one_json_document() {
    let env = Env::new();
    let dir = example("python-echo");
    env.json(&["install", dir.to_str().unwrap(), "--enable"]);
    let list = env.json(&["list"]);
    assert_eq!(list["plugins"][0]["id"], "python-echo");
    let info = env.json(&["info", "python-echo"]);
    assert!(
        info["versions"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let exec = env.json(&[
        "exec",
        "python-echo",
        "echo",
        "--args",
        r#"{"message":"json"}"#,
    ]);
    assert_eq!(exec["response"]["status"], "ok");
    assert_eq!(exec["response"]["body"]["message"], "json");
    let history = env.json(&["history"]);
    assert_eq!(history["executions"][0]["status"], "ok");
    assert_eq!(history["executions"][0]["action"], "echo");
    // errors are JSON too
    let run = env.fails(&["--json", "info", "nope"]);
    assert!(
        run.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
}

#[test]
fn a_bad_home_gets_a_clear_error() {
    let env = Env::new();
    let file = env.path("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_plugd"))
        .args(["--home", file.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-dir"), "{stderr}");
}
