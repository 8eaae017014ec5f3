//! The one error type of this crate.
//!
//! Refusals carry the offending entry's path as printable text (see
//! [`crate::paths::show`]): entry names come from an attacker, so they are
//! escaped and shortened before they can reach a terminal or a log.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::limits::Limit;

/// Why an entry's own path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The path starts with `/`.
    Absolute,
    /// The path has a `..` component.
    ParentComponent,
    /// The path is empty or only `.`, yet the entry is not a directory.
    Empty,
    /// The path contains a NUL byte, which no file name can hold.
    NulByte,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Absolute => {
                "it is an absolute path; package entries must be relative to the package root"
            }
            PathProblem::ParentComponent => {
                "it has a `..` component, which could climb out of the package"
            }
            PathProblem::Empty => "its path is empty (or only `.`) but it is not a directory",
            PathProblem::NulByte => "its path contains a NUL byte",
        })
    }
}

/// Why a symbolic link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkProblem {
    /// The target starts with `/`.
    Absolute,
    /// The target is empty.
    Empty,
    /// The target contains a NUL byte.
    NulByte,
    /// Resolved from the link's directory (following the package's other links),
    /// the target leaves the package.
    Escapes,
    /// Resolving the target follows more links than the kernel would (a loop).
    TooManyHops,
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkProblem::Absolute => "its target is absolute; links in a package must be relative",
            LinkProblem::Empty => "its target is empty",
            LinkProblem::NulByte => "its target contains a NUL byte",
            LinkProblem::Escapes => "its target resolves to a place outside the package",
            LinkProblem::TooManyHops => {
                "resolving its target follows more than 40 links (a link loop)"
            }
        })
    }
}

/// Everything that can go wrong packing, unpacking or digesting a package.
///
/// Refusals name the entry (`entry`, relative to the package root, escaped for
/// printing) and say why; limit errors name the limit and how to raise it. The
/// underlying I/O error, when there is one, is the [`std::error::Error::source`],
/// not repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// A file-system operation on a local path failed.
    #[error("could not {action} `{}`", path.display())]
    Io {
        /// What plugd was doing, e.g. "create the file".
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The path given as a package is neither a directory nor a gzip file.
    #[error(
        "`{}` is not a plugd package: it is {found}. plugd installs a plugin directory or a \
         gzip-compressed tar archive (.tar.gz), such as `plugd pack DIR` or \
         `tar -czf plugin.tar.gz DIR/` make",
        path.display()
    )]
    NotAPackage {
        /// The path given.
        path: PathBuf,
        /// What it is instead, e.g. "a zip archive".
        found: String,
    },

    /// An operation that needs a directory was given something else.
    #[error("`{}` is not a directory; {wanted}", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
        /// What was expected there, e.g. "pass the plugin's directory to pack".
        wanted: &'static str,
    },

    /// `unpack` was given a destination that already exists.
    #[error(
        "the unpack destination `{}` already exists; plugd unpacks only into a new directory, \
         so it never overwrites or follows anything already there — remove it or choose another",
        path.display()
    )]
    DestinationExists {
        /// The destination given.
        path: PathBuf,
    },

    /// `unpack` of a directory was asked to copy it into itself.
    #[error(
        "cannot copy the plugin directory `{}` into `{}`, which is inside it; \
         choose a destination outside the plugin directory",
        source_dir.display(),
        dest.display()
    )]
    DestinationInsideSource {
        /// The plugin directory.
        source_dir: PathBuf,
        /// The destination inside it.
        dest: PathBuf,
    },

    /// The archive is not a readable gzip-compressed tar stream.
    #[error(
        "`{}` is not a valid .tar.gz: {detail}; the file is probably truncated or damaged — \
         download or pack it again",
        archive.display()
    )]
    Corrupt {
        /// The archive.
        archive: PathBuf,
        /// What was wrong, and where in the archive.
        detail: String,
        /// The decoder's or the tar reader's error, when there is one.
        #[source]
        source: Option<io::Error>,
    },

    /// An entry's path is unsafe to create.
    #[error("refused entry `{entry}`: {problem}")]
    UnsafePath {
        /// The entry's path as written in the package.
        entry: String,
        /// Why it was refused.
        problem: PathProblem,
    },

    /// A symbolic link points somewhere a package may not point.
    #[error("refused symbolic link `{entry}` -> `{target}`: {problem}")]
    UnsafeSymlink {
        /// The link's path in the package.
        entry: String,
        /// Its target as written.
        target: String,
        /// Why it was refused.
        problem: LinkProblem,
    },

    /// An entry's path goes through a symbolic link created earlier.
    #[error(
        "refused entry `{entry}`: it lies under `{link}`, which is a symbolic link; plugd never \
         writes through a link, since the link could lead outside the package"
    )]
    ThroughSymlink {
        /// The entry.
        entry: String,
        /// The link on its path.
        link: String,
    },

    /// An entry's path goes through a regular file.
    #[error("refused entry `{entry}`: `{parent}` is a file, not a directory")]
    ParentNotDirectory {
        /// The entry.
        entry: String,
        /// The file on its path.
        parent: String,
    },

    /// Two entries have the same path.
    #[error(
        "refused entry `{entry}`: the package holds this path twice, and plugd never lets a \
         later entry replace an earlier one"
    )]
    Duplicate {
        /// The repeated path.
        entry: String,
    },

    /// The package holds a hard link.
    #[error(
        "refused entry `{entry}`: it is a hard link to `{target}`; packages may not hold hard \
         links — store a copy of the file or a relative symbolic link instead"
    )]
    HardLink {
        /// The link.
        entry: String,
        /// What it links to.
        target: String,
    },

    /// The package holds a device, FIFO, socket, sparse file or unknown entry type.
    #[error(
        "refused entry `{entry}`: it is {kind}; packages may hold only regular files, \
         directories and relative symbolic links"
    )]
    SpecialFile {
        /// The entry.
        entry: String,
        /// What it is, e.g. "a character device".
        kind: String,
    },

    /// A [`Limit`] other than the compression ratio was exceeded.
    #[error(
        "refused at entry `{entry}`: {} (limit {limit}); if the package is genuine, raise the \
         limit with {} or {}",
        limit.describe(*max, *observed),
        limit.flag(),
        limit.env_var()
    )]
    LimitExceeded {
        /// The entry being unpacked when the limit was hit.
        entry: String,
        /// Which limit.
        limit: Limit,
        /// Its value.
        max: u64,
        /// The value that exceeded it.
        observed: u64,
    },

    /// The archive expanded more than [`crate::Limits::max_ratio`] times.
    #[error(
        "refused at entry `{entry}`: {compressed} compressed bytes expanded to {unpacked} bytes, \
         more than {max_ratio} times, as a decompression bomb does (limit max_ratio); if the \
         package is genuine, raise the limit with --max-ratio or PLUGD_MAX_RATIO"
    )]
    RatioExceeded {
        /// The entry being unpacked when the limit was hit.
        entry: String,
        /// The limit.
        max_ratio: u64,
        /// Bytes decompressed when it was hit.
        unpacked: u64,
        /// Compressed bytes read when it was hit.
        compressed: u64,
    },

    /// A file changed while plugd was reading it.
    #[error(
        "`{}` changed while plugd was reading it; try again when nothing is writing to the \
         plugin directory",
        path.display()
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
}

impl PackageError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        PackageError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The limit this error reports, if it is a limit refusal.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            PackageError::LimitExceeded { limit, .. } => Some(*limit),
            PackageError::RatioExceeded { .. } => Some(Limit::Ratio),
            _ => None,
        }
    }
}
