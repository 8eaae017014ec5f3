use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One thing wrong with a manifest: where (a field path in the file as written, such as
/// `version`, `actions[2].name` or `hooks[0].handler.module`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The field path; empty when the problem is about the manifest as a whole.
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The directory holds no manifest file.
    #[error(
        "no plugin manifest in {}: add a manifest.yaml (or an OmniScope/Stage7 manifest.json, or a Migraine plugin.yaml)",
        dir.display()
    )]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The manifest or package directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest file is larger than any manifest needs to be.
    #[error(
        "{} is {size} bytes, more than the {limit}-byte limit for manifests; a manifest holds metadata only, \
         so move data into separate files",
        path.display()
    )]
    TooLarge {
        /// The manifest file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not well-formed JSON or YAML, or uses something refused for safety (aliases
    /// that expand too far, deep nesting, duplicate keys, tags, non-UTF-8 text).
    #[error("{}{}: {message}", path.display(), position(*line, *column))]
    Parse {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The manifest was read but is not valid; every problem found is listed.
    #[error("{} is not a valid plugin manifest:{}", path.display(), list(problems))]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// Everything wrong with it (at most [`crate::MAX_PROBLEMS`], then a count of the rest).
        problems: Vec<Problem>,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl LoadError {
    /// The problems, when the manifest was read but is invalid.
    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}
