//! The test harness: a fresh plugd home per test, the real `plugd` binary, and
//! small plugin fixtures written into temporary directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

/// The workspace root (examples live there).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// An example plugin directory.
pub fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

/// An example plugin as an installable package. The Rust example's binary is
/// built by the workspace (next to `plugd`), not kept in git, so its package is
/// assembled in `scratch`.
pub fn example_package(name: &str, scratch: &Path) -> PathBuf {
    if name != "rust-echo" {
        return example(name);
    }
    let pkg = scratch.join("rust-echo-package");
    if !pkg.exists() {
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        for file in ["manifest.yaml", "README.md"] {
            std::fs::copy(example(name).join(file), pkg.join(file)).unwrap();
        }
        let built = Path::new(env!("CARGO_BIN_EXE_plugd")).with_file_name("rust-echo");
        assert!(
            built.exists(),
            "{} was not built by the workspace",
            built.display()
        );
        std::fs::copy(&built, pkg.join("bin/rust-echo")).unwrap();
    }
    pkg
}

/// One test's world: its own plugd home and a scratch directory for fixtures.
pub struct Env {
    pub home: TempDir,
    pub scratch: TempDir,
}

/// What one run of plugd printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Env {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// A `plugd` command bound to this home (not yet run).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plugd"));
        cmd.arg("--home").arg(self.home.path()).args(args);
        cmd.env_remove("PLUGD_HOME")
            .env_remove("CI")
            .env("PLUGD_LOG", "warn");
        cmd
    }

    /// Runs plugd with these arguments.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Runs plugd and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "plugd {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Runs plugd with `--json`, asserts success, and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(&all).json()
    }

    /// Runs plugd and asserts it failed with exit status 1.
    pub fn fails(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(1),
            "plugd {args:?} should have failed with status 1\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// A path inside the scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.scratch.path().join(rel)
    }

    /// Writes a plugin directory with a plugd manifest and one entry-point script.
    pub fn plugin(&self, dir: &str, fixture: &Fixture) -> PathBuf {
        let root = self.path(dir);
        std::fs::create_dir_all(&root).unwrap();
        let actions: String = fixture
            .actions
            .iter()
            .map(|a| format!("  - name: {a}\n    description: {a} action\n"))
            .collect();
        let manifest = format!(
            "id: {id}\nname: {id}\nversion: {version}\nruntime: ndjson\nlanguage: {language}\nentry_point: {entry}\ndescription: test fixture {id}\nactions:\n{actions}",
            id = fixture.id,
            version = fixture.version,
            language = fixture.language,
            entry = fixture.entry,
        );
        std::fs::write(root.join("manifest.yaml"), manifest).unwrap();
        std::fs::write(root.join(fixture.entry), fixture.code).unwrap();
        root
    }

    /// Every path under the home, for before/after comparisons.
    pub fn home_tree(&self) -> Vec<String> {
        let mut paths: Vec<String> = walk(self.home.path())
            .into_iter()
            .map(|p| {
                p.strip_prefix(self.home.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .filter(|p| !p.starts_with("plugd.db"))
            .collect();
        paths.sort();
        paths
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.clone());
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&path));
            }
        }
    }
    out
}

/// A one-file NDJSON plugin used as a test fixture.
pub struct Fixture {
    pub id: &'static str,
    pub version: &'static str,
    pub language: &'static str,
    pub entry: &'static str,
    pub actions: &'static [&'static str],
    pub code: &'static str,
}

/// A Python NDJSON plugin whose `exec` handling is the given snippet; `req` is
/// the request dict and `reply(status, code, message, body)` answers it.
pub fn python_fixture(
    id: &'static str,
    version: &'static str,
    exec_snippet: &'static str,
) -> Fixture {
    let code = format!(
        r#"import json, sys, os, time
def reply(req, status="ok", code=0, message=None, body=None, rid=None):
    out = {{"id": rid if rid is not None else req["id"], "status": status, "code": code}}
    if message is not None: out["message"] = message
    if body is not None: out["body"] = body
    sys.stdout.write(json.dumps(out) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    req = json.loads(line)
    if req["type"] == "health":
        reply(req, body={{"status": "healthy"}})
    elif req["type"] == "shutdown":
        reply(req); break
    elif req["type"] == "exec":
        payload = req["payload"]
{snippet}
"#,
        snippet = indent(exec_snippet, 8)
    );
    Fixture {
        id,
        version,
        language: "python",
        entry: "plugin.py",
        actions: &["run"],
        code: Box::leak(code.into_boxed_str()),
    }
}

fn indent(code: &str, by: usize) -> String {
    code.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}
