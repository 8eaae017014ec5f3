//! Integration tests of plugd-manifest's public API, built as one binary.

/// The seeds' own manifests, one test per dialect.
mod dialects;
/// Hostile input: garbage, truncation, bombs, size limits.
mod hostile;
/// The example plugins shipped in `examples/` load, and `load` checks package directories.
mod load;
/// The model's types: parsing, display, serde round trips.
mod model;
/// One test per validation rule, and several problems reported at once.
mod validation;

use std::path::Path;

use plugd_manifest::{LoadError, Manifest, parse};

/// Parses `text` as if read from a file named `file`.
pub fn read(file: &str, text: &str) -> Result<Manifest, LoadError> {
    parse(text.as_bytes(), Path::new(file))
}

/// Parses `text`, which must be valid.
#[track_caller]
pub fn ok(file: &str, text: &str) -> Manifest {
    match read(file, text) {
        Ok(m) => m,
        Err(e) => panic!("expected a valid manifest, got: {e}"),
    }
}

/// Every problem as "path: reason"; panics when the manifest is valid or does not parse.
#[track_caller]
pub fn problems(file: &str, text: &str) -> Vec<String> {
    match read(file, text) {
        Err(LoadError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("expected problems, got another error: {other}"),
        Ok(m) => panic!("expected problems, but the manifest is valid: {m:#?}"),
    }
}

/// Asserts there is exactly one problem and that it is at `path` and mentions `needle`.
#[track_caller]
pub fn only_problem(file: &str, text: &str, path: &str, needle: &str) {
    let found = problems(file, text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let prefix = format!("{path}: ");
    assert!(
        found[0].starts_with(&prefix) && found[0].contains(needle),
        "expected a problem at `{path}` mentioning `{needle}`, got {found:#?}"
    );
}

/// A minimal valid plugd manifest, to which tests add or replace lines.
pub const BASE_YAML: &str = "id: demo\nname: Demo\nversion: 1.0.0\nentry_point: plugin.py\n";
