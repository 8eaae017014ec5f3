//! From "this plugin, in this directory" to a running child process.
//!
//! [`ndjson_launch`] decides *what* to run ([`LaunchSpec`]); [`command`] is the one
//! place that turns a spec into a `tokio::process::Command`, and [`spawn`] starts it.
//! Every runtime starts its processes through [`crate::launch`], which uses these
//! directly or hands the spec to the sandbox, so nothing else in plugd builds a
//! `Command` for a plugin.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::settings::{ENV_EXEC_TIMEOUT, ENV_LOG_JSON, ENV_LOG_LEVEL, ENV_MAX_LINE};
use crate::{Limits, RuntimeError};

/// PATH given to plugins when plugd itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How long `python3 -c 'print(sys.executable)'` may take before plugd gives up on it.
const PYTHON_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything needed to start a plugin process. `env` is the *whole* environment:
/// the child starts from an empty one, so nothing of plugd's (tokens, proxies)
/// leaks into plugins by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// The program: an interpreter or the plugin's own executable.
    pub program: PathBuf,
    /// Its arguments (for interpreters: the entry point).
    pub args: Vec<OsString>,
    /// The working directory: the call's private, writable work dir.
    pub cwd: PathBuf,
    /// The complete environment.
    pub env: Vec<(OsString, OsString)>,
}

impl LaunchSpec {
    /// The value of one variable of the environment.
    pub fn env_var(&self, key: impl AsRef<OsStr>) -> Option<&OsStr> {
        let key = key.as_ref();
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_os_str())
    }

    /// Sets (or replaces) one variable of the environment.
    pub fn set_env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        let key = key.into();
        let value = value.into();
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
    }

    /// `id@version` from `PLUGD_PLUGIN_ID` / `PLUGD_PLUGIN_VERSION`, else the program's
    /// file name: how logs and error messages name the plugin.
    pub fn label(&self) -> String {
        match (
            self.env_var("PLUGD_PLUGIN_ID"),
            self.env_var("PLUGD_PLUGIN_VERSION"),
        ) {
            (Some(id), Some(version)) => {
                format!("{}@{}", id.to_string_lossy(), version.to_string_lossy())
            }
            (Some(id), None) => id.to_string_lossy().into_owned(),
            _ => self
                .program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.program.display().to_string()),
        }
    }
}

/// Which plugin to launch; the host maps its manifest to this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// The entry point file, relative to the plugin directory.
    pub entry_point: String,
    /// `python | r | bash | node | exec`; `None`: judged from the file.
    pub language: Option<String>,
}

impl PluginRef {
    /// `id@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
}

/// The interpreters plugins are run with, found once on plugd's PATH.
///
/// An interpreter that was not found is kept as its bare program name (see
/// [`Interpreters::is_found`]); launching a plugin that needs it then fails with
/// [`RuntimeError::InterpreterMissing`], while every other plugin still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreters {
    /// The real Python 3 executable (not a pyenv shim).
    pub python: PathBuf,
    /// bash.
    pub bash: PathBuf,
    /// node.
    pub node: PathBuf,
    /// Rscript.
    pub rscript: PathBuf,
}

impl Interpreters {
    /// Looks the interpreters up on `PATH`.
    ///
    /// Python is asked for `sys.executable` once, because `python3` on PATH is often
    /// a pyenv-style shim: a shell script that costs ~100 ms per start and that the
    /// sandbox could not follow. This blocks the calling thread for that one start
    /// (at most 5 s, then the shim path is kept), so call it once and keep the result
    /// (from async code, inside `spawn_blocking`).
    pub fn discover() -> Interpreters {
        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        Interpreters::discover_in(&path)
    }

    /// [`Interpreters::discover`] with a given `PATH` value.
    pub fn discover_in(path: &OsStr) -> Interpreters {
        let python = find_program(path, &["python3", "python"])
            .map(|shim| resolve_python(&shim).unwrap_or(shim))
            .unwrap_or_else(|| PathBuf::from("python3"));
        Interpreters {
            python,
            bash: find_program(path, &["bash"]).unwrap_or_else(|| PathBuf::from("bash")),
            node: find_program(path, &["node", "nodejs"]).unwrap_or_else(|| PathBuf::from("node")),
            rscript: find_program(path, &["Rscript"]).unwrap_or_else(|| PathBuf::from("Rscript")),
        }
    }

    /// Whether `program` was found: an absolute path rather than a bare name.
    pub fn is_found(program: &Path) -> bool {
        program.is_absolute()
    }
}

/// The first executable file called one of `names` in the directories of `path`.
/// Hand-written rather than the `which` crate: it is a dozen lines and plugd needs
/// no Windows or PATHEXT handling.
pub fn find_program(path: &OsStr, names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        std::env::split_paths(path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable_file(candidate))
    })
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `python -c 'import sys; print(sys.executable)'` with a deadline.
fn resolve_python(python: &Path) -> Option<PathBuf> {
    let mut child = std::process::Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if started.elapsed() < PYTHON_PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(
                    "{} did not report its executable; using it as is",
                    python.display()
                );
                return None;
            }
        }
    }
    let mut out = String::new();
    // The process has exited, so this read ends at once; the output is one short line.
    child
        .stdout
        .take()?
        .take(4096)
        .read_to_string(&mut out)
        .ok()?;
    let resolved = PathBuf::from(out.trim());
    (resolved.is_absolute() && is_executable_file(&resolved)).then_some(resolved)
}

/// How an entry point is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Python,
    R,
    Bash,
    Node,
    Exec,
}

/// Builds the launch of an `ndjson` plugin: the interpreter chosen by `language`,
/// else by the entry point's extension (`.py`, `.sh`, `.js`, `.R`), else by its
/// shebang, else the file itself, which must then be executable.
///
/// The entry point must be a relative path without `..` that stays inside
/// `plugin_dir` once symlinks are resolved; the resolved path is what runs. The
/// process starts in `work_dir` (writable; the plugin dir will be read-only in the
/// sandbox), which is also its `HOME`; `PLUGD_PLUGIN_DIR` tells it where its files are.
pub fn ndjson_launch(
    plugin: &PluginRef,
    plugin_dir: &Path,
    work_dir: &Path,
    interp: &Interpreters,
) -> Result<LaunchSpec, RuntimeError> {
    let label = plugin.label();
    let entry = resolve_entry_point(&label, &plugin.entry_point, plugin_dir)?;
    let plugin_dir = canonical_dir("plugin directory", plugin_dir)?;
    let work_dir = canonical_dir("work directory", work_dir)?;

    let kind = match plugin.language.as_deref() {
        Some(language) => kind_from_language(&label, language)?,
        None => kind_from_file(&label, &entry.path)?,
    };
    let interpreter = |program: &PathBuf, language: &'static str| {
        if Interpreters::is_found(program) {
            Ok(program.clone())
        } else {
            Err(RuntimeError::InterpreterMissing {
                plugin: label.clone(),
                language,
                program: program.display().to_string(),
            })
        }
    };
    let (program, args) = match kind {
        Kind::Python => (
            interpreter(&interp.python, "python")?,
            vec![entry.path.clone().into()],
        ),
        Kind::R => (
            interpreter(&interp.rscript, "r")?,
            vec![entry.path.clone().into()],
        ),
        Kind::Bash => (
            interpreter(&interp.bash, "bash")?,
            vec![entry.path.clone().into()],
        ),
        Kind::Node => (
            interpreter(&interp.node, "node")?,
            vec![entry.path.clone().into()],
        ),
        Kind::Exec => {
            if !entry.executable {
                return Err(RuntimeError::NotExecutable {
                    plugin: label,
                    path: entry.path,
                    why: "its language is `exec`",
                });
            }
            (entry.path.clone(), Vec::new())
        }
    };

    let mut spec = LaunchSpec {
        program,
        args,
        cwd: work_dir.clone(),
        env: Vec::new(),
    };
    set_plugin_env(&mut spec, plugin, &plugin_dir, &work_dir);
    if kind == Kind::Python {
        // Seed-style plugins `print()` their responses; block-buffered stdout on a
        // pipe would hold the answer back until the timeout.
        set_python_env(&mut spec);
    }
    Ok(spec)
}

/// The environment every plugin process gets, whatever its runtime: `PATH`, `HOME`
/// (the work dir), `LANG`, the `OMNIFLOW_*` settings and `PLUGD_PLUGIN_*`. Shared by
/// the launch builders so the runtimes cannot drift apart.
pub(crate) fn set_plugin_env(
    spec: &mut LaunchSpec,
    plugin: &PluginRef,
    plugin_dir: &Path,
    work_dir: &Path,
) {
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    spec.set_env("PATH", path);
    spec.set_env("HOME", work_dir);
    spec.set_env("LANG", "C.UTF-8");
    spec.set_env(ENV_MAX_LINE, Limits::from_env().max_line.to_string());
    let timeout = std::env::var(ENV_EXEC_TIMEOUT).ok();
    let timeout = crate::settings::parse_exec_timeout(timeout.as_deref())
        .unwrap_or(crate::settings::DEFAULT_EXEC_TIMEOUT);
    spec.set_env(ENV_EXEC_TIMEOUT, format_seconds(timeout));
    for passed in [ENV_LOG_JSON, ENV_LOG_LEVEL] {
        if let Some(value) = std::env::var_os(passed) {
            spec.set_env(passed, value);
        }
    }
    spec.set_env("PLUGD_PLUGIN_ID", &plugin.id);
    spec.set_env("PLUGD_PLUGIN_VERSION", &plugin.version);
    spec.set_env("PLUGD_PLUGIN_DIR", plugin_dir);
}

/// Python settings for any Python plugin process: unbuffered output (a response
/// must not wait in a buffer), and no bytecode caches (the plugin dir is read-only
/// in the sandbox, so they could not be written anyway).
pub(crate) fn set_python_env(spec: &mut LaunchSpec) {
    spec.set_env("PYTHONUNBUFFERED", "1");
    spec.set_env("PYTHONDONTWRITEBYTECODE", "1");
}

fn format_seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

pub(crate) fn canonical_dir(what: &'static str, dir: &Path) -> Result<PathBuf, RuntimeError> {
    let canonical = dir
        .canonicalize()
        .map_err(|source| RuntimeError::Directory {
            what,
            path: dir.to_path_buf(),
            source,
        })?;
    if !canonical.is_dir() {
        return Err(RuntimeError::Directory {
            what,
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    Ok(canonical)
}

struct Entry {
    path: PathBuf,
    executable: bool,
}

fn resolve_entry_point(
    label: &str,
    entry_point: &str,
    plugin_dir: &Path,
) -> Result<Entry, RuntimeError> {
    let invalid = |reason| RuntimeError::EntryPointInvalid {
        plugin: label.to_string(),
        entry_point: entry_point.to_string(),
        reason,
    };
    if entry_point.trim().is_empty() {
        return Err(invalid("is empty"));
    }
    if entry_point.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let relative = Path::new(entry_point);
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(invalid("contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("is an absolute path"));
            }
        }
    }
    let plugin_dir = canonical_dir("plugin directory", plugin_dir)?;
    let joined = plugin_dir.join(relative);
    let resolved = joined
        .canonicalize()
        .map_err(|source| RuntimeError::EntryPointMissing {
            plugin: label.to_string(),
            path: joined.clone(),
            source,
        })?;
    if !resolved.starts_with(&plugin_dir) {
        return Err(RuntimeError::EntryPointEscapes {
            plugin: label.to_string(),
            entry_point: entry_point.to_string(),
            resolved,
            plugin_dir,
        });
    }
    let meta = std::fs::metadata(&resolved).map_err(|source| RuntimeError::EntryPointMissing {
        plugin: label.to_string(),
        path: resolved.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(RuntimeError::EntryPointNotFile {
            plugin: label.to_string(),
            path: resolved,
        });
    }
    Ok(Entry {
        executable: meta.permissions().mode() & 0o111 != 0,
        path: resolved,
    })
}

fn kind_from_language(label: &str, language: &str) -> Result<Kind, RuntimeError> {
    Ok(match language.trim().to_ascii_lowercase().as_str() {
        "python" | "python3" => Kind::Python,
        "r" | "rscript" => Kind::R,
        "bash" | "sh" | "shell" => Kind::Bash,
        "node" | "nodejs" | "javascript" | "js" => Kind::Node,
        "exec" | "binary" | "native" => Kind::Exec,
        _ => {
            return Err(RuntimeError::UnsupportedLanguage {
                plugin: label.to_string(),
                language: language.to_string(),
            });
        }
    })
}

fn kind_from_file(label: &str, path: &Path) -> Result<Kind, RuntimeError> {
    let by_extension = match path.extension().and_then(OsStr::to_str) {
        Some("py") => Some(Kind::Python),
        Some("R" | "r") => Some(Kind::R),
        Some("sh" | "bash") => Some(Kind::Bash),
        Some("js" | "mjs" | "cjs") => Some(Kind::Node),
        _ => None,
    };
    if let Some(kind) = by_extension {
        return Ok(kind);
    }
    if let Some(kind) = kind_from_shebang(path) {
        return Ok(kind);
    }
    let executable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    if executable {
        Ok(Kind::Exec)
    } else {
        Err(RuntimeError::NotExecutable {
            plugin: label.to_string(),
            path: path.to_path_buf(),
            why: "no .py/.sh/.js/.R extension and no known #! line",
        })
    }
}

/// The interpreter named by a `#!` line (directly or through `env`), when it is one
/// plugd knows. Other shebangs (perl, …) fall through to running the file itself.
fn kind_from_shebang(path: &Path) -> Option<Kind> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let first = head[..n].split(|b| *b == b'\n').next()?;
    let rest = first.strip_prefix(b"#!")?;
    let text = std::str::from_utf8(rest).ok()?;
    let mut words = text.split_whitespace();
    let mut program = words.next()?;
    if program.rsplit('/').next() == Some("env") {
        program = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
    }
    let name = program.rsplit('/').next()?;
    if name.starts_with("python") {
        Some(Kind::Python)
    } else if matches!(name, "bash" | "sh" | "dash") {
        Some(Kind::Bash)
    } else if matches!(name, "node" | "nodejs") {
        Some(Kind::Node)
    } else if name == "Rscript" {
        Some(Kind::R)
    } else {
        None
    }
}

/// The one place a [`LaunchSpec`] becomes a command: environment cleared and
/// replaced, stdio piped, its own process group (so plugd can kill the plugin and
/// everything it started with one signal), killed if the handle is dropped.
pub fn command(spec: &LaunchSpec) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    cmd
}

/// Starts the process described by `spec` (see [`command`]). Needs a tokio runtime.
pub fn spawn(spec: &LaunchSpec) -> Result<tokio::process::Child, RuntimeError> {
    if let Err(source) = std::fs::metadata(&spec.cwd) {
        return Err(RuntimeError::Directory {
            what: "work directory",
            path: spec.cwd.clone(),
            source,
        });
    }
    command(spec).spawn().map_err(|source| RuntimeError::Spawn {
        plugin: spec.label(),
        program: spec.program.clone(),
        cwd: spec.cwd.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn plugin(entry: &str, language: Option<&str>) -> PluginRef {
        PluginRef {
            id: "demo".into(),
            version: "1.0.0".into(),
            entry_point: entry.into(),
            language: language.map(str::to_string),
        }
    }

    fn fake_interpreters() -> Interpreters {
        Interpreters {
            python: "/opt/py/bin/python3".into(),
            bash: "/bin/bash".into(),
            node: "/usr/bin/node".into(),
            rscript: "Rscript".into(), // not found
        }
    }

    fn write(dir: &Path, name: &str, body: &str, mode: u32) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn chooses_interpreter_by_language_extension_and_shebang() {
        let pdir = tempfile::tempdir().unwrap();
        let wdir = tempfile::tempdir().unwrap();
        write(pdir.path(), "plugin.py", "print()", 0o644);
        write(pdir.path(), "run.sh", "echo", 0o644);
        write(pdir.path(), "main.js", "", 0o644);
        write(pdir.path(), "tool", "#!/usr/bin/env -S python3 -u\n", 0o644);
        write(pdir.path(), "bin/native", "\x7fELF", 0o755);
        write(pdir.path(), "script", "#!/usr/bin/perl\n", 0o755);
        let interp = fake_interpreters();
        let launch = |entry: &str, lang: Option<&str>| {
            ndjson_launch(&plugin(entry, lang), pdir.path(), wdir.path(), &interp)
        };

        let spec = launch("plugin.py", None).unwrap();
        assert_eq!(spec.program, PathBuf::from("/opt/py/bin/python3"));
        assert_eq!(
            spec.args,
            vec![OsString::from(
                pdir.path().canonicalize().unwrap().join("plugin.py")
            )]
        );
        assert_eq!(spec.env_var("PYTHONUNBUFFERED"), Some(OsStr::new("1")));
        assert_eq!(
            launch("run.sh", None).unwrap().program,
            PathBuf::from("/bin/bash")
        );
        assert_eq!(
            launch("main.js", None).unwrap().program,
            PathBuf::from("/usr/bin/node")
        );
        assert_eq!(
            launch("tool", None).unwrap().program,
            PathBuf::from("/opt/py/bin/python3")
        );
        assert_eq!(
            launch("run.sh", Some("python")).unwrap().program,
            PathBuf::from("/opt/py/bin/python3")
        );
        let native = launch("bin/native", Some("exec")).unwrap();
        assert!(native.program.ends_with("bin/native") && native.args.is_empty());
        assert!(
            launch("./bin/native", None)
                .unwrap()
                .program
                .ends_with("bin/native")
        );
        assert!(
            launch("script", None).unwrap().program.ends_with("script"),
            "unknown shebang: run the file"
        );
    }

    #[test]
    fn environment_is_complete_and_minimal() {
        let pdir = tempfile::tempdir().unwrap();
        let wdir = tempfile::tempdir().unwrap();
        write(pdir.path(), "run.sh", "", 0o644);
        let spec = ndjson_launch(
            &plugin("run.sh", None),
            pdir.path(),
            wdir.path(),
            &fake_interpreters(),
        )
        .unwrap();
        let work = wdir.path().canonicalize().unwrap();
        assert_eq!(spec.cwd, work);
        assert_eq!(spec.env_var("HOME"), Some(work.as_os_str()));
        assert_eq!(spec.env_var("LANG"), Some(OsStr::new("C.UTF-8")));
        assert!(spec.env_var("PATH").is_some());
        assert!(spec.env_var(ENV_MAX_LINE).is_some());
        assert!(spec.env_var(ENV_EXEC_TIMEOUT).is_some());
        assert_eq!(spec.env_var("PLUGD_PLUGIN_ID"), Some(OsStr::new("demo")));
        assert_eq!(
            spec.env_var("PLUGD_PLUGIN_VERSION"),
            Some(OsStr::new("1.0.0"))
        );
        assert_eq!(
            spec.env_var("PLUGD_PLUGIN_DIR"),
            Some(pdir.path().canonicalize().unwrap().as_os_str())
        );
        assert!(
            spec.env_var("PYTHONUNBUFFERED").is_none(),
            "python settings only for python"
        );
        let names: Vec<_> = spec
            .env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for name in &names {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "LANG",
                    ENV_MAX_LINE,
                    ENV_EXEC_TIMEOUT,
                    ENV_LOG_JSON,
                    ENV_LOG_LEVEL,
                    "PLUGD_PLUGIN_ID",
                    "PLUGD_PLUGIN_VERSION",
                    "PLUGD_PLUGIN_DIR"
                ]
                .contains(&name.as_str()),
                "unexpected variable {name}"
            );
        }
        assert_eq!(spec.label(), "demo@1.0.0");
    }

    #[test]
    fn refuses_entry_points_outside_the_plugin() {
        let root = tempfile::tempdir().unwrap();
        let pdir = root.path().join("plugin");
        std::fs::create_dir(&pdir).unwrap();
        write(root.path(), "outside.py", "", 0o644);
        symlink(root.path().join("outside.py"), pdir.join("link.py")).unwrap();
        symlink(root.path(), pdir.join("up")).unwrap();
        write(&pdir, "inside.py", "", 0o644);
        symlink(pdir.join("inside.py"), pdir.join("ok.py")).unwrap();
        std::fs::create_dir(pdir.join("sub")).unwrap();
        let interp = fake_interpreters();
        let launch = |entry: &str| ndjson_launch(&plugin(entry, None), &pdir, root.path(), &interp);

        for (entry, expect) in [
            ("/etc/passwd", "absolute"),
            ("../outside.py", "'..'"),
            ("sub/../../outside.py", "'..'"),
            ("", "empty"),
            ("a\0b", "NUL"),
        ] {
            let err = launch(entry).unwrap_err();
            assert!(
                matches!(err, RuntimeError::EntryPointInvalid { .. }),
                "{entry}: {err:?}"
            );
            assert!(err.to_string().contains(expect), "{entry}: {err}");
        }
        for entry in ["link.py", "up/outside.py"] {
            let err = launch(entry).unwrap_err();
            assert!(
                matches!(err, RuntimeError::EntryPointEscapes { .. }),
                "{entry}: {err:?}"
            );
            assert!(err.to_string().contains("outside the plugin directory"));
        }
        assert!(matches!(
            launch("missing.py").unwrap_err(),
            RuntimeError::EntryPointMissing { .. }
        ));
        assert!(matches!(
            launch("sub").unwrap_err(),
            RuntimeError::EntryPointNotFile { .. }
        ));
        assert!(launch("ok.py").is_ok(), "a symlink staying inside is fine");
    }

    #[test]
    fn explains_what_cannot_run() {
        let pdir = tempfile::tempdir().unwrap();
        write(pdir.path(), "data", "just text", 0o644);
        write(pdir.path(), "analysis.R", "", 0o644);
        let interp = fake_interpreters();
        let launch = |entry: &str, lang: Option<&str>| {
            ndjson_launch(&plugin(entry, lang), pdir.path(), pdir.path(), &interp)
        };

        let err = launch("data", None).unwrap_err();
        assert!(matches!(err, RuntimeError::NotExecutable { .. }));
        assert!(err.to_string().contains("set `language`"), "{err}");
        assert!(matches!(
            launch("data", Some("exec")).unwrap_err(),
            RuntimeError::NotExecutable { .. }
        ));
        let err = launch("analysis.R", None).unwrap_err();
        assert!(
            err.to_string().contains("Rscript") && err.to_string().contains("not found"),
            "{err}"
        );
        let err = launch("data", Some("cobol")).unwrap_err();
        assert!(
            matches!(err, RuntimeError::UnsupportedLanguage { .. }),
            "{err:?}"
        );
        let err = ndjson_launch(
            &plugin("data", None),
            pdir.path(),
            Path::new("/nonexistent/work"),
            &interp,
        )
        .unwrap_err();
        assert!(err.to_string().contains("work directory"), "{err}");
    }

    #[test]
    fn find_program_only_takes_executable_files_on_absolute_dirs() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "tool", "", 0o644);
        write(dir.path(), "tool2", "", 0o755);
        let path = std::env::join_paths([Path::new("relative"), dir.path()]).unwrap();
        assert_eq!(find_program(&path, &["tool"]), None);
        assert_eq!(
            find_program(&path, &["tool", "tool2"]),
            Some(dir.path().join("tool2"))
        );
    }

    #[test]
    fn discover_resolves_python_behind_a_shim() {
        let interp = Interpreters::discover();
        if Interpreters::is_found(&interp.python) {
            let text = std::fs::read(&interp.python).unwrap_or_default();
            assert!(
                !text.starts_with(b"#!"),
                "{} is still a script shim",
                interp.python.display()
            );
        }
        assert!(
            Interpreters::is_found(&interp.bash),
            "bash is needed by plugd's tests"
        );
    }

    #[tokio::test]
    async fn spawn_reports_a_missing_program() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LaunchSpec {
            program: dir.path().join("nope"),
            args: vec![],
            cwd: dir.path().to_path_buf(),
            env: vec![],
        };
        let err = spawn(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Spawn { .. }));
        assert!(err.to_string().contains("could not start"), "{err}");
    }
}
