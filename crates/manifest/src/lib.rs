//! plugd-manifest: the one manifest model, the readers of the four manifest dialects, and
//! validation (DESIGN.md section 3).
//!
//! # What it owns
//!
//! - The model: [`Manifest`] and its parts ([`Runtime`], [`Language`], [`EntryPoint`],
//!   [`Permission`], [`TrustLevel`], [`Action`], [`Hook`], [`ConfigOption`], [`Resources`],
//!   [`Dependencies`], [`HttpSpec`], …). It is plain serde data: the host stores it as JSON and
//!   reads it back unchanged.
//! - The dialects ([`Dialect`]): plugd's own and Wingman's `manifest.yaml`, OmniScope's and
//!   Stage7's `manifest.json` (Stage7's has a `verb`), Migraine's `plugin.yaml`. Each is
//!   normalised into the model; what a dialect leaves implicit (the runtime, the language,
//!   Stage7's `main.py`, Migraine's python hook as entry point) is inferred by the rules
//!   written on the readers.
//! - Validation that reports every problem at once, each as a [`Problem`] with the field path
//!   as the author wrote it (`security.permissions[1]`, `hooks[0].handler.module`) and a reason
//!   that says what to do.
//! - [`load`]: finding the manifest in a package directory, reading it, and checking it against
//!   the directory (the entry point and hook handlers exist and stay inside the package).
//!   [`parse`] does the same without touching the file system.
//!
//! It does no I/O beyond reading the manifest and looking at the files it names.
//!
//! # Why it is built this way
//!
//! Manifests are written by whoever publishes a plugin, so every reader assumes an attacker:
//! files are capped at [`MAX_MANIFEST_BYTES`]; both formats are parsed through one budgeted
//! tree builder that refuses YAML alias bombs, deep nesting, duplicate keys, tags and
//! non-UTF-8 text (serde_yaml_ng's own limits let a 1 MiB file expand to gigabytes); and entry
//! points may not be absolute, contain `..` or link out of the package.
//!
//! The dialects are read from a generic JSON tree rather than through `#[derive(Deserialize)]`
//! structs because serde stops at the first error, while a person fixing a manifest wants the
//! whole list; reading field by field also lets each problem carry the dialect's own path.

mod dialect;
mod error;
mod fields;
mod model;
mod package_dir;
mod read;
mod tree;
mod units;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use error::{LoadError, Problem};
pub use fields::{is_kebab, kebab};
pub use model::{
    Action, BlastRadius, BlastScope, CommandSpec, ConfigOption, ContainerSpec, Dependencies,
    Dialect, EntryPoint, HandlerKind, Hook, HookHandler, HttpSpec, IoDefinition, Language,
    Manifest, Permission, Resources, Runtime, TrustLevel, UnknownName,
};
pub use tree::{MAX_DEPTH, MAX_FLOW_OPENERS, MAX_NODES, MAX_TEXT_BYTES};

use crate::dialect::Analysis;
use crate::read::Cx;
use crate::tree::Syntax;

/// The largest manifest file read, in bytes (1 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// The manifest file names looked for in a package directory, in order of preference.
pub const MANIFEST_FILES: &[&str] = &[
    "manifest.yaml",
    "manifest.yml",
    "manifest.json",
    "plugin.yaml",
    "plugin.yml",
];

/// A manifest read from a package.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated, normalised manifest.
    pub manifest: Manifest,
    /// The manifest file that was read.
    pub file: PathBuf,
    /// The dialect it was written in (also in `manifest.dialect`).
    pub dialect: Dialect,
}

/// Loads the manifest of a package directory, or a manifest file (whose directory is then the
/// package).
///
/// In a directory, the first of [`MANIFEST_FILES`] that exists is read. The manifest is parsed,
/// normalised and validated, and the files it names are checked against the package: the entry
/// point and every hook handler module or script must exist inside it (an executable entry
/// point must have an execute bit). Every problem found is returned at once in
/// [`LoadError::Invalid`].
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let meta = path.metadata().map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (dir, file, kind) = if meta.is_dir() {
        let (file, kind) = locate(path)?;
        (path.to_path_buf(), file, kind)
    } else {
        let kind = kind_of(path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, path.to_path_buf(), kind)
    };
    let bytes = read_capped(&file, &dir)?;
    let mut analysis = analyse(&bytes, kind, &file)?;
    package_dir::check(&dir, &mut analysis)?;
    into_result(analysis, &file).map(|manifest| Loaded {
        dialect: manifest.dialect,
        manifest,
        file,
    })
}

/// Finds the manifest in a package directory and tells its dialect. A `manifest.json` is read
/// to tell OmniScope from Stage7 (Stage7's has a `verb`).
pub fn find_manifest(dir: &Path) -> Result<(PathBuf, Dialect), LoadError> {
    let (file, kind) = locate(dir)?;
    let dialect = match kind {
        FileKind::PlugdYaml => Dialect::Plugd,
        FileKind::MigraineYaml => Dialect::Migraine,
        FileKind::Json | FileKind::OtherYaml => {
            let bytes = read_capped(&file, dir)?;
            let root = tree::parse(&bytes, kind.syntax()).map_err(|e| syntax_error(e, &file))?;
            kind.dialect(&root)
        }
    };
    Ok((file, dialect))
}

/// Parses, normalises and validates manifest text without touching the file system; `file`
/// is only used to pick the format by its name (as [`load`] does) and in error messages.
/// Files the manifest names are not checked.
pub fn parse(bytes: &[u8], file: &Path) -> Result<Manifest, LoadError> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(LoadError::TooLarge {
            path: file.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let analysis = analyse(bytes, kind_of(file)?, file)?;
    into_result(analysis, file)
}

/// Most problems listed in one [`LoadError::Invalid`]; a hostile manifest could otherwise
/// produce one per byte. A last entry says how many more there were.
pub const MAX_PROBLEMS: usize = 200;

fn into_result(analysis: Analysis, file: &Path) -> Result<Manifest, LoadError> {
    let mut problems = analysis.problems;
    if problems.is_empty() {
        return Ok(analysis.manifest);
    }
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(Problem {
            path: String::new(),
            reason: format!("… and {more} more problems not listed"),
        });
    }
    Err(LoadError::Invalid {
        path: file.to_path_buf(),
        problems,
    })
}

/// How a manifest file is read, decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// `manifest.yaml`: plugd's own (and Wingman's).
    PlugdYaml,
    /// `*.json`: OmniScope, or Stage7 when it has a `verb`.
    Json,
    /// `plugin.yaml`: Migraine.
    MigraineYaml,
    /// Another `*.yaml`, such as Migraine's `plugins/log-processor.yaml`: decided by content.
    OtherYaml,
}

impl FileKind {
    fn syntax(self) -> Syntax {
        match self {
            FileKind::Json => Syntax::Json,
            _ => Syntax::Yaml,
        }
    }

    fn dialect(self, root: &serde_json::Map<String, serde_json::Value>) -> Dialect {
        match self {
            FileKind::PlugdYaml => Dialect::Plugd,
            FileKind::MigraineYaml => Dialect::Migraine,
            FileKind::Json if root.contains_key("verb") => Dialect::Stage7,
            FileKind::Json => Dialect::OmniScope,
            // A YAML file named neither way is Migraine's when it looks like one: hooks or
            // commands, and none of the fields only plugd's own format has.
            FileKind::OtherYaml => {
                let plugd_only = ["entry_point", "runtime", "trust_level", "blast_radius"];
                let migraine_like = root.contains_key("hooks") || root.contains_key("commands");
                if migraine_like && !plugd_only.iter().any(|k| root.contains_key(*k)) {
                    Dialect::Migraine
                } else {
                    Dialect::Plugd
                }
            }
        }
    }
}

fn kind_of(file: &Path) -> Result<FileKind, LoadError> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let kind = match name {
        "manifest.yaml" | "manifest.yml" => FileKind::PlugdYaml,
        "plugin.yaml" | "plugin.yml" => FileKind::MigraineYaml,
        _ if name.ends_with(".json") => FileKind::Json,
        _ if name.ends_with(".yaml") || name.ends_with(".yml") => FileKind::OtherYaml,
        _ => {
            return Err(LoadError::Parse {
                path: file.to_path_buf(),
                line: None,
                column: None,
                message:
                    "is not a manifest file name: use manifest.yaml, manifest.json or plugin.yaml \
                          (or any *.yaml / *.json file)"
                        .to_string(),
            });
        }
    };
    Ok(kind)
}

fn locate(dir: &Path) -> Result<(PathBuf, FileKind), LoadError> {
    for name in MANIFEST_FILES {
        let file = dir.join(name);
        match file.symlink_metadata() {
            Ok(_) => return Ok((file.clone(), kind_of(&file)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(LoadError::Io { path: file, source }),
        }
    }
    Err(LoadError::NotFound {
        dir: dir.to_path_buf(),
    })
}

/// Reads at most [`MAX_MANIFEST_BYTES`] of a regular file inside `dir`.
fn read_capped(file: &Path, dir: &Path) -> Result<Vec<u8>, LoadError> {
    let io_err = |source: io::Error| LoadError::Io {
        path: file.to_path_buf(),
        source,
    };
    // A manifest that is a link out of its package could make plugd read (and echo back in
    // problems) any file the host can read.
    let resolved = file.canonicalize().map_err(io_err)?;
    let root = dir.canonicalize().map_err(|source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !resolved.starts_with(&root) {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the manifest is a link to a file outside the package",
        )));
    }
    // Checked before opening: opening a FIFO blocks until a writer appears, and a device may
    // never end.
    let not_regular = || {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the manifest is not a regular file",
        ))
    };
    if !resolved.metadata().map_err(io_err)?.is_file() {
        return Err(not_regular());
    }
    let handle = File::open(&resolved).map_err(io_err)?;
    let meta = handle.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let too_large = |size| LoadError::TooLarge {
        path: file.to_path_buf(),
        size,
        limit: MAX_MANIFEST_BYTES,
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(meta.len()));
    }
    // The file may grow between the size check and the read.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    handle
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn syntax_error(e: tree::SyntaxError, file: &Path) -> LoadError {
    LoadError::Parse {
        path: file.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

fn analyse(bytes: &[u8], kind: FileKind, file: &Path) -> Result<Analysis, LoadError> {
    let root = tree::parse(bytes, kind.syntax()).map_err(|e| syntax_error(e, file))?;
    let mut cx = Cx::default();
    let draft = match kind.dialect(&root) {
        Dialect::Plugd => dialect::read_plugd(&mut cx, &root),
        Dialect::OmniScope => dialect::read_omniscope(&mut cx, &root),
        Dialect::Stage7 => dialect::read_stage7(&mut cx, &root),
        Dialect::Migraine => dialect::read_migraine(&mut cx, &root),
    };
    Ok(dialect::finish(draft, cx))
}
