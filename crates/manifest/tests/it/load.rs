use std::fs;
use std::path::{Path, PathBuf};

use plugd_manifest::{Dialect, EntryPoint, LoadError, Runtime, TrustLevel, find_manifest, load};
use tempfile::TempDir;

use crate::dialects::{MIGRAINE_DOCKER_MANAGER, MIGRAINE_LOG_PROCESSOR, WINGMAN_SEED};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// A package directory holding `files` (path, contents).
fn package(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The problems `load` reports, as "path: reason".
#[track_caller]
fn load_problems(dir: &Path) -> Vec<String> {
    match load(dir) {
        Err(LoadError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn the_omniscope_example_loads() {
    let loaded = load(&example("omniscope-normalizer")).unwrap();
    assert_eq!(loaded.dialect, Dialect::OmniScope);
    assert!(loaded.file.ends_with("manifest.json"));
    let m = loaded.manifest;
    assert_eq!(m.id, "data-normalizer");
    assert_eq!(m.runtime, Runtime::File);
    assert_eq!(m.entry_point.to_string(), "data_normalizer.py");
    assert_eq!(m.dependencies.python, ["numpy"]);
    assert_eq!(m.extension_points, ["preprocessing"]);
    assert_eq!(m.config_defaults()["method"], "zscore");
}

#[test]
fn the_stage7_example_loads() {
    let loaded = load(&example("stage7-text-stats")).unwrap();
    assert_eq!(loaded.dialect, Dialect::Stage7);
    let m = loaded.manifest;
    assert_eq!(m.id, "text-stats");
    assert_eq!(m.runtime, Runtime::StdioBatch);
    assert_eq!(m.entry_point.to_string(), "main.py");
    assert_eq!(m.actions[0].name, "TEXT_STATS");
    assert_eq!(m.input_definitions.len(), 2);
    assert_eq!(m.output_definitions.len(), 2);
}

#[test]
fn the_migraine_example_loads() {
    let loaded = load(&example("migraine-log-processor")).unwrap();
    assert_eq!(loaded.dialect, Dialect::Migraine);
    let m = loaded.manifest;
    assert_eq!(m.id, "log-processor");
    assert_eq!(m.runtime, Runtime::PythonFunction);
    assert_eq!(m.entry_point.to_string(), "log_processor:process_log");
    assert_eq!(m.config_defaults()["log_file"], "./workflow.log");
}

#[test]
fn the_wingman_example_loads() {
    let loaded = load(&example("wingman-hello")).unwrap();
    assert_eq!(loaded.dialect, Dialect::Plugd);
    let m = loaded.manifest;
    assert_eq!(m.id, "wingman-hello");
    assert_eq!(m.runtime, Runtime::PythonFunction);
    assert_eq!(m.trust_level, TrustLevel::Sandboxed);
    assert_eq!(
        m.entry_point,
        EntryPoint::ModuleClass {
            module: "plugin".into(),
            class: "HelloPlugin".into()
        }
    );
    assert!(m.blast_radius.is_some());
}

#[test]
fn a_manifest_file_path_loads_with_its_directory_as_the_package() {
    let loaded = load(&example("wingman-hello").join("manifest.yaml")).unwrap();
    assert_eq!(loaded.manifest.id, "wingman-hello");
    // Seed 003 keeps single-file Migraine plugins as plugins/<name>.yaml.
    let dir = package(&[
        ("log-processor.yaml", MIGRAINE_LOG_PROCESSOR),
        ("log_processor.py", ""),
    ]);
    let loaded = load(&dir.path().join("log-processor.yaml")).unwrap();
    assert_eq!(loaded.dialect, Dialect::Migraine);
}

#[test]
fn manifests_are_found_in_order_of_preference() {
    let both = package(&[
        ("manifest.yaml", WINGMAN_SEED),
        ("manifest.json", "{}"),
        ("plugin.yaml", ""),
    ]);
    let (file, dialect) = find_manifest(both.path()).unwrap();
    assert_eq!(
        (file.file_name().unwrap().to_str().unwrap(), dialect),
        ("manifest.yaml", Dialect::Plugd)
    );
    let json = package(&[("manifest.json", r#"{"verb": "X"}"#), ("plugin.yaml", "")]);
    assert_eq!(find_manifest(json.path()).unwrap().1, Dialect::Stage7);
    let json = package(&[("manifest.json", r#"{"name": "x"}"#)]);
    assert_eq!(find_manifest(json.path()).unwrap().1, Dialect::OmniScope);
    let yml = package(&[("plugin.yml", "")]);
    let (file, dialect) = find_manifest(yml.path()).unwrap();
    assert_eq!(
        (file.file_name().unwrap().to_str().unwrap(), dialect),
        ("plugin.yml", Dialect::Migraine)
    );
}

#[test]
fn an_empty_directory_has_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, LoadError::NotFound { dir: d } if d == dir.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains("add a manifest.yaml"), "{err}");
    assert!(matches!(
        find_manifest(dir.path()),
        Err(LoadError::NotFound { .. })
    ));
    let missing = dir.path().join("nope");
    assert!(matches!(load(&missing), Err(LoadError::Io { .. })));
}

#[test]
fn a_missing_entry_point_file_is_reported_with_the_convention_that_chose_it() {
    let dir = package(&[(
        "manifest.json",
        r#"{"id": "t", "verb": "T", "version": "1.0.0", "type": "python"}"#,
    )]);
    assert_eq!(
        load_problems(dir.path()),
        [
            "entryPoint: `main.py` does not exist in the package (Stage7 python plugins start from `main.py` by convention)"
        ]
    );
    let dir = package(&[(
        "manifest.json",
        r#"{"id": "t", "verb": "T", "version": "1.0.0", "language": "python", "entryPoint": {"main": "src/run.py"}}"#,
    )]);
    assert_eq!(
        load_problems(dir.path()),
        ["entryPoint.main: `src/run.py` does not exist in the package"]
    );
    let dir = package(&[("manifest.yaml", WINGMAN_SEED)]);
    assert_eq!(
        load_problems(dir.path()),
        [
            "entry_point: the Python module `plugin` is not in the package: expected `plugin.py` or `plugin/__init__.py`"
        ]
    );
    let dir = package(&[("manifest.yaml", WINGMAN_SEED), ("plugin/__init__.py", "")]);
    load(dir.path()).unwrap();
}

#[test]
fn hook_handler_modules_and_scripts_must_exist() {
    let text = "name: h\nversion: 1.0.0\nhooks:\n  - event: a\n    handler: {type: python, module: pkg.hooks, function: run}\n  \
                - event: b\n    handler: {type: bash, script: hooks/b.sh}\n    on_error: {type: python, module: fallback, function: f}\n";
    let dir = package(&[("plugin.yaml", text), ("pkg/hooks.py", "")]);
    assert_eq!(
        load_problems(dir.path()),
        [
            "hooks[1].handler.script: `hooks/b.sh` does not exist in the package",
            "hooks[1].on_error.module: the Python module `fallback` is not in the package: expected `fallback.py` or `fallback/__init__.py`",
        ]
    );
}

#[test]
fn directory_problems_come_with_the_manifest_problems() {
    let dir = package(&[(
        "manifest.yaml",
        "name: X\nversion: 1.0\nentry_point: run.py\n",
    )]);
    assert_eq!(
        load_problems(dir.path()),
        [
            "version: `1.0` was read as a number, not a version; write a quoted semantic version with three parts, e.g. \"1.0.0\"",
            "entry_point: `run.py` does not exist in the package",
        ]
    );
}

#[test]
fn an_entry_point_that_is_a_directory_is_refused() {
    let dir = package(&[
        (
            "manifest.yaml",
            "name: X\nversion: 1.0.0\nentry_point: bin\n",
        ),
        ("bin/x", ""),
    ]);
    assert_eq!(
        load_problems(dir.path()),
        ["entry_point: `bin` is not a regular file"]
    );
}

#[cfg(unix)]
#[test]
fn links_out_of_the_package_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("evil.py"), "").unwrap();
    fs::write(
        outside.path().join("manifest.yaml"),
        "name: X\nversion: 1.0.0\nentry_point: x.py\n",
    )
    .unwrap();
    let dir = package(&[(
        "manifest.yaml",
        "name: X\nversion: 1.0.0\nentry_point: run.py\n",
    )]);
    std::os::unix::fs::symlink(outside.path().join("evil.py"), dir.path().join("run.py")).unwrap();
    assert_eq!(
        load_problems(dir.path()),
        ["entry_point: `run.py` is a link to a file outside the package; ship the file itself"]
    );
    // A link inside the package is fine.
    fs::remove_file(dir.path().join("run.py")).unwrap();
    fs::write(dir.path().join("real.py"), "").unwrap();
    std::os::unix::fs::symlink("real.py", dir.path().join("run.py")).unwrap();
    load(dir.path()).unwrap();
    // The manifest itself may not be a link out of the package either.
    let linked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("manifest.yaml"),
        linked.path().join("manifest.yaml"),
    )
    .unwrap();
    let err = load(linked.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("link to a file outside the package"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn executables_need_an_execute_bit() {
    let dir = package(&[
        ("plugin.yaml", MIGRAINE_DOCKER_MANAGER),
        ("docker-manager", "#!/bin/sh\n"),
    ]);
    assert_eq!(
        load_problems(dir.path()),
        [
            "entry_point: `docker-manager` is not executable; run `chmod +x docker-manager` before packaging"
        ]
    );
    make_executable(&dir.path().join("docker-manager"));
    let m = load(dir.path()).unwrap().manifest;
    assert_eq!(m.entry_point.to_string(), "docker-manager");
    // An NDJSON plugin with a script entry point is started through its interpreter.
    let dir = package(&[
        (
            "manifest.yaml",
            "name: X\nversion: 1.0.0\nentry_point: p.py\n",
        ),
        ("p.py", ""),
    ]);
    load(dir.path()).unwrap();
    let dir = package(&[
        (
            "manifest.yaml",
            "name: X\nversion: 1.0.0\nentry_point: bin/echo\n",
        ),
        ("bin/echo", ""),
    ]);
    assert_eq!(
        load_problems(dir.path()),
        ["entry_point: `bin/echo` is not executable; run `chmod +x bin/echo` before packaging"]
    );
}

#[cfg(unix)]
#[test]
fn migraine_command_plugins_find_their_executable() {
    let dir = package(&[
        ("plugin.yaml", MIGRAINE_DOCKER_MANAGER),
        ("bin/docker-manager", "#!/bin/sh\n"),
    ]);
    make_executable(&dir.path().join("bin/docker-manager"));
    let m = load(dir.path()).unwrap().manifest;
    assert_eq!(m.entry_point.to_string(), "bin/docker-manager");
    let dir = package(&[("plugin.yaml", MIGRAINE_DOCKER_MANAGER)]);
    assert_eq!(
        load_problems(dir.path()),
        [
            "entry_point: is missing and the package has no executable to use instead (Migraine command plugins run an \
             executable named like the plugin (`docker-manager`, `bin/docker-manager`); add `entry_point` to name another file)"
        ]
    );
}

#[test]
fn a_manifest_over_one_mebibyte_is_too_large() {
    let big = format!(
        "name: x\nversion: 1.0.0\nentry_point: x.py\ndescription: \"{}\"\n",
        "a".repeat(1024 * 1024)
    );
    let dir = package(&[("manifest.yaml", &big)]);
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(err, LoadError::TooLarge { size, limit: 1_048_576, .. } if size == big.len() as u64),
        "{err:?}"
    );
    assert!(err.to_string().contains("move data into separate files"));
}

#[test]
fn parse_errors_name_the_file_and_position() {
    let dir = package(&[("manifest.json", "{\n  \"name\": \"x\",\n  \"version\": }\n")]);
    let err = load(dir.path()).unwrap_err();
    let LoadError::Parse {
        path, line, column, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(path.ends_with("manifest.json"));
    assert_eq!((*line, column.is_some()), (Some(3), true));
    assert!(err.to_string().contains("manifest.json:3:"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("manifest.yaml");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("mkfifo is not available; skipping");
        return;
    }
    // Opening a FIFO for reading blocks until a writer appears, so the check must come first.
    let err = load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
