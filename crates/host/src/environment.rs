//! Per-plugin language environments, prepared at install time (DESIGN §6):
//! a Python virtualenv holding the plugin's declared packages, because plugins
//! run without network, and a check that the R packages a plugin declares are
//! installed on this machine.
//!
//! # Layout and life cycle
//!
//! A version's environment lives at `$PLUGD_HOME/envs/<id>/<version>/`. It is
//! built inside a store [`Staging`] directory (locked by this process, removed
//! when dropped, and removed by the next [`plugd_store::Store::open`] when the
//! process dies), and renamed into place only after the version's commit
//! succeeded. So a failed or killed install leaves no environment behind, and an
//! environment directory never appears before its version row. The last file
//! written into a build is a marker holding the id, version and package digest;
//! [`Host::plugin_env`] only answers for a directory whose marker matches an
//! installed version, so a stale environment (left, say, by an uninstall killed
//! between its database write and its file removal) is never used, and
//! [`Host::sweep_envs`] removes it on the next open.
//!
//! # Hostile input
//!
//! Requirements come from the manifest (already validated by `plugd_manifest`,
//! checked again here) and from the package's `requirements.txt`, which is read
//! with a size limit and parsed line by line: pip options (`-e`, `--index-url`,
//! `-f`, `-r`, …), URLs, local paths and environment-variable expansions are
//! refused with the line number. pip never reads the package's file: it gets a
//! file plugd writes from the requirements it accepted. pip is also told to
//! install wheels only, because building a source distribution runs the
//! package's own build code as the installing user, outside any sandbox.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugd_manifest::Manifest;
use plugd_runtime::Interpreters;
use plugd_store::Staging;
use serde::{Deserialize, Serialize};

use crate::lifecycle::Progress;
use crate::{Host, HostError};

/// The directory under `$PLUGD_HOME` holding every environment.
const ENVS_DIR: &str = "envs";
/// Written last into a finished build; its absence means "incomplete".
const MARKER: &str = ".plugd-env.json";
/// The package file whose requirements are added to the manifest's.
const REQUIREMENTS_FILE: &str = "requirements.txt";
/// Larger than any honest requirements file.
const MAX_REQUIREMENTS_BYTES: u64 = 64 * 1024;
/// Longest requirement line accepted, in bytes.
const MAX_REQUIREMENT_LEN: usize = 400;
/// Most requirements accepted from one package.
const MAX_REQUIREMENTS: usize = 200;
/// `python -m venv` (with ensurepip) takes a few seconds.
const VENV_DEADLINE: Duration = Duration::from_secs(120);
/// pip downloads from the network: generous, but never forever.
const PIP_DEADLINE: Duration = Duration::from_secs(20 * 60);
/// One `Rscript` loading a few namespaces.
const R_DEADLINE: Duration = Duration::from_secs(120);
/// How many of a failing tool's last output lines go into the error.
const TAIL_LINES: usize = 15;
/// Longest output line kept in a tail, in characters.
const TAIL_LINE_LEN: usize = 400;

/// A plugin version's prepared environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnv {
    /// The Python interpreter to run the plugin with (the venv's `bin/python`).
    pub python: PathBuf,
    /// Paths the sandbox must show read-only for it to work (the venv and the
    /// base interpreter's prefix).
    pub paths: Vec<PathBuf>,
}

/// What the marker of a finished environment records.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    id: String,
    version: String,
    /// The package digest the environment was built for.
    digest: String,
    /// The requirements pip installed, as given.
    requirements: Vec<String>,
}

/// One accepted Python requirement and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    /// The line given to pip.
    line: String,
}

/// What a package needs from its language environments.
#[derive(Debug, Default)]
struct EnvPlan {
    python: Vec<Requirement>,
    r: Vec<String>,
}

/// A virtualenv built for a version that is not committed yet.
///
/// Dropping it (the install failed) removes the build with its staging
/// directory; [`Host::place_env`] moves it into place after the commit.
#[must_use = "an environment is lost unless placed after the commit"]
pub(crate) struct PendingEnv {
    /// Owns the build directory until it is renamed away.
    _staging: Staging,
    venv: PathBuf,
    id: String,
    version: String,
}

impl Host {
    /// The environment prepared for `id@version` at install, if it has one.
    ///
    /// Only a complete environment (its marker written) whose marker names an
    /// installed version with the same package digest is returned.
    pub fn plugin_env(&self, id: &str, version: &str) -> Option<PluginEnv> {
        let dir = self.env_dir(id, version).ok()?;
        let marker = read_marker(&dir)?;
        let record = match self.store.version(id, version) {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(plugin = id, error = %e, "cannot read the version to find its environment");
                return None;
            }
        };
        if marker.id != id || marker.version != version || marker.digest != record.digest {
            tracing::warn!(
                plugin = id,
                version,
                "ignoring an environment built for another package"
            );
            return None;
        }
        let python = dir.join("bin/python");
        let paths = match plugd_sandbox::policy::interpreter_paths(&python) {
            Ok(paths) => paths,
            Err(e) => {
                tracing::warn!(plugin = id, error = %e, "the environment's interpreter is broken");
                return None;
            }
        };
        Some(PluginEnv { python, paths })
    }

    /// `$PLUGD_HOME/envs/<id>/<version>`, refusing unsafe path components.
    fn env_dir(&self, id: &str, version: &str) -> Result<PathBuf, HostError> {
        // The store's check refuses `..`, `/`, NUL and friends; reuse it.
        self.store.try_version_dir(id, version)?;
        Ok(self.home().join(ENVS_DIR).join(id).join(version))
    }

    /// Checks R packages and builds the Python environment a staged package
    /// needs, before its commit. `None` when there is nothing to build, or when
    /// this exact version is installed already with its environment (a
    /// reinstall reuses it).
    pub(crate) fn prepare_env(
        &self,
        manifest: &Manifest,
        root: &Path,
        digest: &str,
        progress: &dyn Progress,
    ) -> Result<Option<PendingEnv>, HostError> {
        let id = manifest.id.as_str();
        let version = manifest.version.to_string();
        let plan = plan(manifest, root)?;
        if !plan.r.is_empty() {
            progress.step(&format!("checking R packages: {}", plan.r.join(", ")));
            check_r_packages(id, &self.interpreters().rscript, &plan.r)?;
        }
        if plan.python.is_empty() {
            return Ok(None);
        }
        if let Some(record) = self.store.version(id, &version)? {
            // The same version again: its environment is reused when complete. A
            // different digest is refused by the commit, so building is wasted.
            if record.digest != digest
                || read_marker(&self.env_dir(id, &version)?)
                    .is_some_and(|m| m.digest == record.digest)
            {
                return Ok(None);
            }
            // Installed without a complete environment (an install killed between
            // its commit and the rename): build it now.
        }
        let python = self.interpreters().python.clone();
        if !Interpreters::is_found(&python) {
            return Err(HostError::PythonMissing { id: id.to_string() });
        }
        let staging = self.store.stage()?;
        let venv = staging.path().join("venv");
        let listed: Vec<&str> = plan.python.iter().map(|r| r.line.as_str()).collect();
        progress.step("creating the Python environment");
        let started = Instant::now();
        // The base interpreter's pip installs into the venv (`pip --python`):
        // seeding every venv with its own pip (ensurepip) costs ~10 s per
        // install on this class of machine, `--without-pip` a fraction of one.
        let base_pip = base_pip_can_target(&python);
        let mut venv_cmd = python_command(&python);
        venv_cmd.args(["-m", "venv"]);
        if base_pip {
            venv_cmd.arg("--without-pip");
        }
        venv_cmd.arg(&venv);
        let venv_step = format!("{} -m venv", python.display());
        run_tool(venv_cmd, VENV_DEADLINE, &mut |_| {})
            .map_err(|e| HostError::EnvBuild {
                id: id.to_string(),
                step: venv_step.clone(),
                detail: e.to_string(),
            })?
            .check(id, &venv_step)?;

        // pip reads plugd's copy of the requirements, never the package's file.
        let requirements_file = staging.path().join("requirements.txt");
        let mut text = listed.join("\n");
        text.push('\n');
        std::fs::write(&requirements_file, text).map_err(|source| HostError::Io {
            context: format!(
                "writing the requirements list to {}",
                requirements_file.display()
            ),
            source,
        })?;
        progress.step(&format!(
            "installing Python packages with pip: {}",
            listed.join(", ")
        ));
        let venv_python = venv.join("bin/python");
        let mut pip = if base_pip {
            let mut pip = python_command(&python);
            pip.args(["-m", "pip", "--python"]).arg(&venv_python);
            pip
        } else {
            let mut pip = python_command(&venv_python);
            pip.args(["-m", "pip"]);
            pip
        };
        pip.args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "--only-binary",
            ":all:",
            "-r",
        ])
        .arg(&requirements_file);
        let out = run_tool(pip, PIP_DEADLINE, &mut |line| {
            // pip's own step lines say what is being fetched and installed.
            if line.starts_with("Collecting ")
                || line.starts_with("Installing collected packages")
                || line.starts_with("Successfully installed")
            {
                progress.step(&format!("pip: {}", truncate(line, 120)));
            }
        })
        .map_err(|e| HostError::EnvBuild {
            id: id.to_string(),
            step: "pip install".into(),
            detail: e.to_string(),
        })?;
        out.check(id, "pip install").map_err(|e| match e {
            HostError::EnvBuild { id, step, detail } => HostError::EnvBuild {
                id,
                step,
                detail: format!(
                    "{detail}\n(plugd installs binary wheels only: building a source package would run its code outside the sandbox; a package without a wheel for this platform cannot be installed)"
                ),
            },
            other => other,
        })?;

        let marker = Marker {
            id: id.to_string(),
            version: version.clone(),
            digest: digest.to_string(),
            requirements: listed.iter().map(|s| s.to_string()).collect(),
        };
        let marker_json = serde_json::to_vec_pretty(&marker).map_err(|e| HostError::Io {
            context: "encoding the environment marker".into(),
            source: std::io::Error::other(e),
        })?;
        write_synced(&venv.join(MARKER), &marker_json)?;
        tracing::info!(
            plugin = id,
            version,
            seconds = started.elapsed().as_secs_f64(),
            "built the Python environment"
        );
        Ok(Some(PendingEnv {
            _staging: staging,
            venv,
            id: id.to_string(),
            version,
        }))
    }

    /// Moves a built environment into place, after its version's commit.
    pub(crate) fn place_env(
        &self,
        pending: Option<PendingEnv>,
        progress: &dyn Progress,
    ) -> Result<(), HostError> {
        let Some(pending) = pending else {
            return Ok(());
        };
        let target = self.env_dir(&pending.id, &pending.version)?;
        let parent = target.parent().expect("an env dir has a parent");
        progress.step("placing the Python environment");
        create_dirs(parent)?;
        if let Some(existing) = read_marker(&target)
            && self
                .store
                .version(&pending.id, &pending.version)?
                .is_some_and(|r| r.digest == existing.digest)
        {
            // A concurrent install of the same package placed its own build first.
            return Ok(());
        }
        // Whatever is there is stale or incomplete: this build replaces it.
        remove_env_dir(&target)?;
        std::fs::rename(&pending.venv, &target).map_err(|source| HostError::Io {
            context: format!(
                "moving the Python environment of `{}` {} into {}; the version is installed without it: install the same package again to rebuild it",
                pending.id,
                pending.version,
                target.display()
            ),
            source,
        })?;
        Ok(())
    }

    /// Removes every environment of a plugin (after its uninstall).
    pub(crate) fn remove_envs(&self, id: &str) -> Result<(), HostError> {
        self.store.try_version_dir(id, "0")?;
        let dir = self.home().join(ENVS_DIR).join(id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            remove_env_dir(&entry.path())?;
        }
        remove_dir_if_empty(&dir);
        Ok(())
    }

    /// Removes environments whose version is not installed (or whose marker
    /// is missing or names another package): left by an uninstall that was
    /// killed between its database write and its file removal. Errors are
    /// logged, never fatal: a stale environment is never used anyway.
    pub(crate) fn sweep_envs(&self) {
        let root = self.home().join(ENVS_DIR);
        let Ok(ids) = std::fs::read_dir(&root) else {
            return;
        };
        for id_entry in ids.flatten() {
            let id = id_entry.file_name().to_string_lossy().into_owned();
            let Ok(versions) = std::fs::read_dir(id_entry.path()) else {
                continue;
            };
            for v_entry in versions.flatten() {
                let version = v_entry.file_name().to_string_lossy().into_owned();
                let keep = match self.store.version(&id, &version) {
                    Ok(Some(record)) => {
                        read_marker(&v_entry.path()).is_some_and(|m| m.digest == record.digest)
                    }
                    Ok(None) => false,
                    // Cannot tell: leave it for a later open.
                    Err(_) => true,
                };
                if !keep {
                    tracing::info!(plugin = %id, version = %version, "removing a stale environment");
                    if let Err(e) = remove_env_dir(&v_entry.path()) {
                        tracing::warn!(error = %e, "could not remove a stale environment");
                    }
                }
            }
            remove_dir_if_empty(&id_entry.path());
        }
    }
}

/// The requirements a package declares, validated.
fn plan(manifest: &Manifest, root: &Path) -> Result<EnvPlan, HostError> {
    let id = &manifest.id;
    let mut plan = EnvPlan::default();
    for (i, text) in manifest.dependencies.python.iter().enumerate() {
        check_requirement(text).map_err(|reason| HostError::Requirement {
            id: id.clone(),
            place: format!("the manifest's dependencies.python[{i}]"),
            text: text.clone(),
            reason,
        })?;
        plan.python.push(Requirement { line: text.clone() });
    }
    plan.python
        .extend(read_requirements_file(id, &root.join(REQUIREMENTS_FILE))?);
    if plan.python.len() > MAX_REQUIREMENTS {
        return Err(HostError::Requirement {
            id: id.clone(),
            place: "the package".into(),
            text: format!("{} requirements", plan.python.len()),
            reason: format!("at most {MAX_REQUIREMENTS} Python requirements are accepted"),
        });
    }
    for name in &manifest.dependencies.r {
        if !is_r_package_name(name) {
            return Err(HostError::Requirement {
                id: id.clone(),
                place: "the manifest's R dependencies".into(),
                text: name.clone(),
                reason: "an R package name has letters, digits and `.`, starts with a letter and does not end with `.`".into(),
            });
        }
        plan.r.push(name.clone());
    }
    Ok(plan)
}

/// Reads and validates `requirements.txt` when the package has one.
fn read_requirements_file(id: &str, path: &Path) -> Result<Vec<Requirement>, HostError> {
    let refuse = |line: usize, text: &str, reason: String| HostError::Requirement {
        id: id.to_string(),
        place: format!("{REQUIREMENTS_FILE} line {line}"),
        text: truncate(text, 120),
        reason,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HostError::Io {
                context: format!("reading {}", path.display()),
                source,
            });
        }
    };
    if !meta.is_file() {
        return Err(refuse(
            0,
            REQUIREMENTS_FILE,
            "it is not a regular file; ship the requirements as a plain file".into(),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_REQUIREMENTS_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| HostError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
    if bytes.len() as u64 > MAX_REQUIREMENTS_BYTES {
        return Err(refuse(
            0,
            REQUIREMENTS_FILE,
            format!("the file is larger than {MAX_REQUIREMENTS_BYTES} bytes"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| refuse(0, REQUIREMENTS_FILE, "the file is not UTF-8 text".into()))?;
    parse_requirements(&text).map_err(|(line, text, reason)| refuse(line, &text, reason))
}

/// Parses requirements-file text: one requirement per line, `#` comments,
/// `\` continuations, and `--hash=algo:hex` after a requirement. Anything
/// else pip would read as an option is refused: `(line number, text, reason)`.
fn parse_requirements(text: &str) -> Result<Vec<Requirement>, (usize, String, String)> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if joined.is_empty() {
            start = i + 1;
        }
        if let Some(head) = raw.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(raw);
        let logical = std::mem::take(&mut joined);
        if let Some(req) =
            parse_requirement_line(&logical).map_err(|r| (start, logical.clone(), r))?
        {
            out.push(req);
        }
    }
    if !joined.is_empty()
        && let Some(req) =
            parse_requirement_line(&joined).map_err(|r| (start, joined.clone(), r))?
    {
        out.push(req);
    }
    Ok(out)
}

fn parse_requirement_line(line: &str) -> Result<Option<Requirement>, String> {
    // pip's comment rule: `#` at the start or after whitespace.
    let mut content = line;
    for (i, c) in line.char_indices() {
        if c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)) {
            content = &line[..i];
            break;
        }
    }
    let content = content.trim();
    if content.is_empty() {
        return Ok(None);
    }
    if content.starts_with('-') {
        let option = content.split_whitespace().next().unwrap_or(content);
        return Err(format!(
            "pip options such as `{}` are not accepted: they could change where packages come from or install from local files; list packages by name and version only, e.g. `six==1.16.0`",
            truncate(option, 40)
        ));
    }
    if content.len() > MAX_REQUIREMENT_LEN {
        return Err(format!(
            "the requirement is longer than {MAX_REQUIREMENT_LEN} characters"
        ));
    }
    // Per-requirement `--hash` options pin the download; any other option is refused.
    let mut requirement = Vec::new();
    let mut hashes = Vec::new();
    for token in content.split_whitespace() {
        if let Some(hash) = token.strip_prefix("--hash=") {
            check_hash(hash)?;
            hashes.push(token);
        } else if token.starts_with('-') {
            return Err(format!(
                "the option `{}` is not accepted; only `--hash=sha256:…` may follow a requirement",
                truncate(token, 40)
            ));
        } else if !hashes.is_empty() {
            return Err("nothing but `--hash=…` options may follow a requirement's hashes".into());
        } else {
            requirement.push(token);
        }
    }
    let requirement = requirement.join(" ");
    check_requirement(&requirement)?;
    let mut line = requirement;
    for hash in hashes {
        line.push(' ');
        line.push_str(hash);
    }
    Ok(Some(Requirement { line }))
}

fn check_hash(hash: &str) -> Result<(), String> {
    let ok = hash.split_once(':').is_some_and(|(algo, hex)| {
        matches!(algo, "sha256" | "sha384" | "sha512")
            && !hex.is_empty()
            && hex.len() <= 128
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`--hash={}` is not a hash; write `--hash=sha256:<hex digest>`",
            truncate(hash, 40)
        ))
    }
}

/// A PEP 508 requirement without direct references: `name[extras] specifiers ; marker`.
///
/// Written as a whitelist rather than a full PEP 508 parser: plugd does not
/// need to understand the requirement (pip does), only to be sure it names a
/// package from the index and carries nothing pip would treat as an option, a
/// URL, a path or a variable to expand.
fn check_requirement(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the requirement is empty".into());
    }
    if text.len() > MAX_REQUIREMENT_LEN {
        return Err(format!(
            "the requirement is longer than {MAX_REQUIREMENT_LEN} characters"
        ));
    }
    if text.starts_with('-') {
        return Err(
            "pip options are not accepted; list a package name and version, e.g. `six==1.16.0`"
                .into(),
        );
    }
    if text.contains("://") || text.contains('@') || text.contains('/') || text.contains('\\') {
        return Err("URLs and paths are not accepted; plugd installs Python packages by name and version from the package index, e.g. `six==1.16.0`".into());
    }
    if text.contains('$') {
        return Err("`$` is not accepted: pip would expand it as an environment variable".into());
    }
    let (spec, marker) = match text.split_once(';') {
        Some((spec, marker)) => (spec, Some(marker)),
        None => (text, None),
    };
    let spec = spec.trim();
    let name_len = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(spec.len());
    let name = &spec[..name_len];
    let alnum_ends = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    if !alnum_ends(name) {
        return Err("a requirement starts with a package name (letters, digits, `.`, `_`, `-`), e.g. `six==1.16.0`".into());
    }
    let mut rest = spec[name_len..].trim_start();
    if let Some(after) = rest.strip_prefix('[') {
        let Some((extras, tail)) = after.split_once(']') else {
            return Err("the extras list `[…]` is not closed".into());
        };
        let extras_ok = extras.split(',').map(str::trim).all(|e| {
            alnum_ends(e)
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
        if !extras_ok {
            return Err(format!("`[{extras}]` is not a list of extras"));
        }
        rest = tail.trim_start();
    }
    if !rest.is_empty() && !rest.starts_with(['<', '>', '=', '!', '~', '(']) {
        return Err(format!(
            "`{}` is not a version specifier; write e.g. `>=1.0,<2`",
            truncate(rest, 40)
        ));
    }
    let specifier_char = |c: char| c.is_ascii_alphanumeric() || " \t.*+!<>=~,()_-".contains(c);
    if let Some(bad) = rest.chars().find(|&c| !specifier_char(c)) {
        return Err(format!("`{bad}` is not accepted in a version specifier"));
    }
    if let Some(marker) = marker {
        let marker_char = |c: char| c.is_ascii_alphanumeric() || " \t._<>=!~()'\"-".contains(c);
        if let Some(bad) = marker.chars().find(|&c| !marker_char(c)) {
            return Err(format!("`{bad}` is not accepted in an environment marker"));
        }
    }
    Ok(())
}

/// R's rule for package names: letters, digits and `.`, starting with a letter,
/// not ending with `.`, at least two characters.
fn is_r_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// Exits 3 and prints the missing names when any package cannot be loaded.
/// The names arrive as arguments, never inside R code, so no name can change
/// what the script does.
const R_CHECK: &str = r#"pkgs <- commandArgs(trailingOnly = TRUE)
ok <- vapply(pkgs, function(p) suppressWarnings(requireNamespace(p, quietly = TRUE)), logical(1))
cat(pkgs[!ok], sep = "\n")
quit(save = "no", status = if (all(ok)) 0L else 3L)"#;

/// Checks with one `Rscript` run that every package can be loaded.
fn check_r_packages(id: &str, rscript: &Path, packages: &[String]) -> Result<(), HostError> {
    if !Interpreters::is_found(rscript) {
        return Err(HostError::RscriptMissing {
            id: id.to_string(),
            packages: packages.to_vec(),
        });
    }
    let mut cmd = Command::new(rscript);
    cmd.args([
        "--no-save",
        "--no-restore",
        "--no-site-file",
        "--no-init-file",
        "-e",
        R_CHECK,
    ])
    .args(packages);
    let mut stdout = Vec::new();
    let out = run_tool(cmd, R_DEADLINE, &mut |line| {
        stdout.push(line.trim().to_string())
    })
    .map_err(|e| HostError::EnvBuild {
        id: id.to_string(),
        step: "checking R packages with Rscript".into(),
        detail: e.to_string(),
    })?;
    if out.status.code() == Some(3) {
        let missing: Vec<String> = stdout
            .into_iter()
            .filter(|l| packages.contains(l))
            .collect();
        return Err(HostError::RPackagesMissing {
            id: id.to_string(),
            missing,
        });
    }
    out.check(id, "checking R packages with Rscript")
}

/// Whether `python -m pip` is pip 22.3 or newer, which can install into
/// another environment with `--python`.
fn base_pip_can_target(python: &Path) -> bool {
    let mut cmd = python_command(python);
    cmd.args(["-m", "pip", "--version", "--disable-pip-version-check"]);
    let mut first = None;
    let ok = run_tool(cmd, Duration::from_secs(30), &mut |line| {
        first.get_or_insert_with(|| line.to_string());
    })
    .is_ok_and(|out| out.status.success());
    ok && first
        .as_deref()
        .and_then(pip_version)
        .is_some_and(|v| v >= (22, 3))
}

/// `pip 23.2.1 from … (python 3.11)` → `(23, 2)`.
fn pip_version(line: &str) -> Option<(u32, u32)> {
    let version = line.strip_prefix("pip ")?.split_whitespace().next()?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// A `python` command with the variables that would point it elsewhere removed.
fn python_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONSTARTUP")
        .env_remove("PYTHONUSERBASE")
        .env_remove("VIRTUAL_ENV")
        .env("PYTHONNOUSERSITE", "1");
    cmd
}

/// What a helper tool did.
struct ToolOutput {
    status: ExitStatus,
    /// The last lines of stderr then stdout, for messages.
    tail: Vec<String>,
}

impl ToolOutput {
    /// An error with the tool's last output lines unless it exited 0.
    fn check(&self, id: &str, step: &str) -> Result<(), HostError> {
        if self.status.success() {
            return Ok(());
        }
        let mut detail = format!("it {}", describe_status(self.status));
        if !self.tail.is_empty() {
            detail.push_str(", its last output lines:\n");
            detail.push_str(
                &self
                    .tail
                    .iter()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        Err(HostError::EnvBuild {
            id: id.to_string(),
            step: step.to_string(),
            detail,
        })
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "failed".into(),
    }
}

/// Runs a helper to completion or `deadline`, passing each stdout line to
/// `on_line` as it comes and keeping the last lines of both streams.
fn run_tool(
    mut cmd: Command,
    deadline: Duration,
    on_line: &mut dyn FnMut(&str),
) -> std::io::Result<ToolOutput> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel::<String>();
    let out_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut tail = VecDeque::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            push_tail(&mut tail, line);
        }
        tail
    });
    let started = Instant::now();
    let mut out_tail = VecDeque::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                on_line(&line);
                push_tail(&mut out_tail, line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if started.elapsed() > deadline {
            timed_out = true;
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait()?;
    let _ = out_reader.join();
    let err_tail = err_reader.join().unwrap_or_default();
    if timed_out {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "it did not finish within {} s and was stopped",
                deadline.as_secs()
            ),
        ));
    }
    // stderr carries pip's errors; stdout's end gives their context.
    let mut tail: Vec<String> = err_tail.into_iter().collect();
    if tail.is_empty() {
        tail = out_tail.into_iter().collect();
    }
    Ok(ToolOutput { status, tail })
}

fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if line.trim().is_empty() {
        return;
    }
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(truncate(&line, TAIL_LINE_LEN));
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

fn read_marker(dir: &Path) -> Option<Marker> {
    let bytes = std::fs::read(dir.join(MARKER)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    use std::io::Write;
    let io = |source| HostError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

fn create_dirs(dir: &Path) -> Result<(), HostError> {
    std::fs::create_dir_all(dir).map_err(|source| HostError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })
}

/// Removes an environment: the marker first, so that a removal cut short
/// leaves an incomplete environment that is never used.
fn remove_env_dir(dir: &Path) -> Result<(), HostError> {
    let io = |source| HostError::Io {
        context: format!("removing the environment {}", dir.display()),
        source,
    };
    match std::fs::remove_file(dir.join(MARKER)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
        Err(e) => return Err(io(e)),
    }
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
        Ok(meta) if meta.is_dir() => match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        },
        Ok(_) => std::fs::remove_file(dir).map_err(io),
    }
}

fn remove_dir_if_empty(dir: &Path) {
    // Fails harmlessly when something is still inside.
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        parse_requirements(text)
            .unwrap()
            .into_iter()
            .map(|r| r.line)
            .collect()
    }

    fn refused(text: &str) -> (usize, String) {
        let (line, _, reason) = parse_requirements(text).unwrap_err();
        (line, reason)
    }

    #[test]
    fn honest_requirement_files_are_read() {
        let text = "# pinned\nsix==1.16.0\n\ntomli>=2.0 ; python_version < \"3.11\"  # backport\nrequests[socks,security] >=2.31, <3\nnumpy~=1.26 \\\n  --hash=sha256:0123abcd\n";
        assert_eq!(
            lines(text),
            [
                "six==1.16.0",
                "tomli>=2.0 ; python_version < \"3.11\"",
                "requests[socks,security] >=2.31, <3",
                "numpy~=1.26 --hash=sha256:0123abcd",
            ]
        );
    }

    #[test]
    fn options_urls_and_paths_are_refused_with_their_line() {
        let cases = [
            (
                "six\n--index-url https://evil.example/simple\n",
                2,
                "--index-url",
            ),
            (
                "--extra-index-url=https://evil.example\n",
                1,
                "--extra-index-url",
            ),
            ("-e .\n", 1, "-e"),
            ("-f /tmp/wheels\n", 1, "-f"),
            ("--trusted-host evil.example\n", 1, "--trusted-host"),
            ("-r other.txt\n", 1, "-r"),
            ("-c constraints.txt\n", 1, "-c"),
            ("\n\nevil @ https://evil.example/evil.whl\n", 3, "URL"),
            ("./local_pkg\n", 1, "URL"),
            ("_private\n", 1, "package name"),
            ("/abs/path.whl\n", 1, "URL"),
            ("pkg==${SECRET}\n", 1, "$"),
            ("six --index-url=https://x\n", 1, "--index-url"),
            ("six --hash=md5:abc\n", 1, "not a hash"),
            ("six --hash=sha256:zz\n", 1, "not a hash"),
            ("six --hash=sha256:ab other\n", 1, "nothing but"),
            ("six; os_name == 'posix' and `x`\n", 1, "marker"),
            ("six junk\n", 1, "not a version specifier"),
            ("six[ex\n", 1, "not closed"),
            ("git+https://github.com/x/y\n", 1, "URL"),
        ];
        for (text, line, needle) in cases {
            let (got_line, reason) = refused(text);
            assert_eq!(got_line, line, "{text:?}: {reason}");
            assert!(reason.contains(needle), "{text:?}: {reason}");
        }
    }

    #[test]
    fn continuation_errors_name_the_first_line() {
        let (line, reason) = refused("six\ntomli \\\n --index-url=x\n");
        assert_eq!(line, 2, "{reason}");
    }

    #[test]
    fn oversized_and_binary_requirement_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REQUIREMENTS_FILE);
        std::fs::write(&path, "a".repeat(MAX_REQUIREMENTS_BYTES as usize + 10)).unwrap();
        let err = read_requirements_file("p", &path).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        std::fs::write(&path, b"six\n\xff\xfe\n").unwrap();
        let err = read_requirements_file("p", &path).unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
        std::fs::write(&path, "x".repeat(MAX_REQUIREMENT_LEN + 1)).unwrap();
        let err = read_requirements_file("p", &path).unwrap_err().to_string();
        assert!(err.contains("longer than"), "{err}");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let err = read_requirements_file("p", &path).unwrap_err().to_string();
        assert!(err.contains("regular file"), "{err}");
        std::fs::remove_file(&path).unwrap();
        assert!(read_requirements_file("p", &path).unwrap().is_empty());
    }

    #[test]
    fn r_package_names_follow_r_rules() {
        for ok in ["jsonlite", "data.table", "R6", "ggplot2"] {
            assert!(is_r_package_name(ok), "{ok}");
        }
        for bad in [
            "",
            "x",
            "1abc",
            "abc.",
            "a\"b",
            "a'b",
            "a b",
            "a);system('x')#",
            "pkg_name",
            "a-b",
        ] {
            assert!(!is_r_package_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn pip_versions_are_read_from_its_banner() {
        assert_eq!(
            pip_version("pip 23.2.1 from /x/site-packages/pip (python 3.11)"),
            Some((23, 2))
        );
        assert_eq!(pip_version("pip 22.3 from /x (python 3.10)"), Some((22, 3)));
        assert_eq!(pip_version("pip 9 from /x"), Some((9, 0)));
        assert_eq!(pip_version("No module named pip"), None);
        assert!(pip_version("pip 21.3.1 from /x").unwrap() < (22, 3));
    }

    #[test]
    fn tool_tails_keep_the_last_lines() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for i in $(seq 1 30); do echo err$i >&2; done; echo out; exit 7",
        ]);
        let mut seen = Vec::new();
        let out = run_tool(cmd, Duration::from_secs(10), &mut |l| {
            seen.push(l.to_string())
        })
        .unwrap();
        assert_eq!(seen, ["out"]);
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(out.tail.len(), TAIL_LINES);
        assert_eq!(out.tail.last().unwrap(), "err30");
        let err = out.check("p", "pip install").unwrap_err().to_string();
        assert!(err.contains("status 7") && err.contains("err30"), "{err}");
    }

    #[test]
    fn tools_past_their_deadline_are_stopped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        let err = run_tool(cmd, Duration::from_millis(300), &mut |_| {})
            .err()
            .unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn removing_an_environment_removes_the_marker_first_and_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir_all(env.join("lib")).unwrap();
        std::fs::write(env.join(MARKER), "{}").unwrap();
        remove_env_dir(&env).unwrap();
        assert!(!env.exists());
        remove_env_dir(&env).unwrap();
    }
}
