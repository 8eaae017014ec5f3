//! Checks a read manifest against the package directory it came from: the entry point and every
//! hook handler must be files inside the package.
//!
//! Paths are resolved with `canonicalize` and must stay under the canonical package root, so a
//! symbolic link in a package cannot make plugd accept (or later run) a file outside it.

use std::io;
use std::path::{Path, PathBuf};

use crate::LoadError;
use crate::dialect::Analysis;
use crate::fields::script_file;
use crate::model::{EntryPoint, HandlerKind, Language, Runtime};

/// Adds a problem to `a` for every file the manifest names that the package lacks.
pub(crate) fn check(root: &Path, a: &mut Analysis) -> Result<(), LoadError> {
    let root = root.canonicalize().map_err(|source| LoadError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    let mut add = |path: &str, reason: String| {
        problems.push(crate::Problem {
            path: path.to_string(),
            reason,
        })
    };
    let because =
        |note: &Option<String>| note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();

    let mut entry_found = a.entry_known;
    if a.entry_known && !a.entry_candidates.is_empty() {
        // The dialect named no file; take the first conventional one the package has.
        match a
            .entry_candidates
            .iter()
            .find(|c| regular_file(&root, c).is_ok())
        {
            Some(found) => a.manifest.entry_point = EntryPoint::File(found.clone()),
            None => {
                add(
                    &a.entry_path,
                    format!(
                        "is missing and the package has no executable to use instead{}",
                        because(&a.entry_note)
                    ),
                );
                entry_found = false;
            }
        }
    }
    if entry_found {
        let m = &a.manifest;
        match &m.entry_point {
            EntryPoint::File(rel) => match regular_file(&root, rel) {
                Ok(file) => {
                    let needs_exec = m.runtime == Runtime::Command
                        || (m.runtime == Runtime::Ndjson && m.language == Some(Language::Exec));
                    if needs_exec && !is_executable(&file) {
                        add(
                            &a.entry_path,
                            format!(
                                "`{rel}` is not executable; run `chmod +x {rel}` before packaging"
                            ),
                        );
                    }
                }
                Err(reason) => add(&a.entry_path, format!("{reason}{}", because(&a.entry_note))),
            },
            EntryPoint::ModuleFunction { module, .. } | EntryPoint::ModuleClass { module, .. } => {
                if let Err(reason) = module_file(&root, module) {
                    add(&a.entry_path, format!("{reason}{}", because(&a.entry_note)));
                }
            }
        }
    }

    for (hook, source) in a.manifest.hooks.iter().zip(&a.hook_sources) {
        for (field, handler) in [("handler", &hook.handler), ("on_error", &hook.on_error)] {
            let Some(h) = handler else { continue };
            match h.kind {
                HandlerKind::Python => {
                    if let Some(module) = &h.module
                        && let Err(reason) = module_file(&root, module)
                    {
                        add(&format!("hooks[{source}].{field}.module"), reason);
                    }
                }
                HandlerKind::Bash => {
                    if let Some(file) = h.script.as_deref().and_then(script_file)
                        && let Err(reason) = regular_file(&root, file)
                    {
                        add(&format!("hooks[{source}].{field}.script"), reason);
                    }
                }
            }
        }
        if let Some(file) = hook.script.as_deref().and_then(script_file)
            && let Err(reason) = regular_file(&root, file)
        {
            add(&format!("hooks[{source}].script"), reason);
        }
    }
    a.problems.extend(problems);
    Ok(())
}

/// The canonical path of `rel` when it is a regular file inside `root`.
fn regular_file(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = root.join(rel);
    let resolved = match path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("`{rel}` does not exist in the package"));
        }
        Err(e) => return Err(format!("`{rel}` cannot be read: {e}")),
    };
    if !resolved.starts_with(root) {
        return Err(format!(
            "`{rel}` is a link to a file outside the package; ship the file itself"
        ));
    }
    match resolved.metadata() {
        Ok(meta) if meta.is_file() => Ok(resolved),
        Ok(_) => Err(format!("`{rel}` is not a regular file")),
        Err(e) => Err(format!("`{rel}` cannot be read: {e}")),
    }
}

/// Finds the file of a Python module: `a/b.py` or the package `a/b/__init__.py`.
fn module_file(root: &Path, module: &str) -> Result<PathBuf, String> {
    let base = module.replace('.', "/");
    let file = format!("{base}.py");
    let package = format!("{base}/__init__.py");
    regular_file(root, &file)
        .or_else(|_| regular_file(root, &package))
        .map_err(|_| format!("the Python module `{module}` is not in the package: expected `{file}` or `{package}`"))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    true
}
