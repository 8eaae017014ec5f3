//! Bounds on what a package may unpack to.

use std::fmt;

/// Bounds applied while unpacking (or copying) a package.
///
/// The defaults are ones a real plugin never meets: they exist to stop
/// decompression bombs, inode floods and path tricks, not to police plugin size.
/// Every refusal names the limit it hit and the flag / `PLUGD_` variable that
/// raises it (see [`Limit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of file content the package may unpack to. Default 512 MiB.
    pub max_unpacked_bytes: u64,
    /// Most entries (files, directories and symbolic links) the package may hold.
    /// Default 20 000.
    pub max_files: u64,
    /// Most times the tar stream may be larger than the compressed archive read so
    /// far. Default 200. Only enforced once more than 1 MiB
    /// ([`Limits::RATIO_GRACE_BYTES`]) has been decompressed, so small archives of
    /// very compressible text are never refused; `u64::MAX` disables it.
    pub max_ratio: u64,
    /// Longest path (in bytes, relative to the package root) of an entry or of a
    /// symbolic link's target. Default 1024.
    pub max_path_bytes: usize,
    /// Most path components an entry may have (`a/b/c` has 3). Default 32.
    pub max_depth: usize,
}

impl Limits {
    /// Decompressed bytes below which [`Limits::max_ratio`] is not enforced.
    pub const RATIO_GRACE_BYTES: u64 = 1 << 20;
}

impl Default for Limits {
    /// Defaults a real plugin never meets.
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: 512 << 20,
            max_files: 20_000,
            max_ratio: 200,
            max_path_bytes: 1024,
            max_depth: 32,
        }
    }
}

/// One of the [`Limits`], named in errors so a person knows what to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_unpacked_bytes`].
    UnpackedBytes,
    /// [`Limits::max_files`].
    Files,
    /// [`Limits::max_ratio`].
    Ratio,
    /// [`Limits::max_path_bytes`].
    PathBytes,
    /// [`Limits::max_depth`].
    Depth,
}

impl Limit {
    /// The [`Limits`] field name, e.g. `max_unpacked_bytes`.
    pub fn field(self) -> &'static str {
        match self {
            Limit::UnpackedBytes => "max_unpacked_bytes",
            Limit::Files => "max_files",
            Limit::Ratio => "max_ratio",
            Limit::PathBytes => "max_path_bytes",
            Limit::Depth => "max_depth",
        }
    }

    /// The command-line flag that raises it, e.g. `--max-unpacked-bytes`.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::UnpackedBytes => "--max-unpacked-bytes",
            Limit::Files => "--max-files",
            Limit::Ratio => "--max-ratio",
            Limit::PathBytes => "--max-path-bytes",
            Limit::Depth => "--max-depth",
        }
    }

    /// The environment variable that raises it, e.g. `PLUGD_MAX_UNPACKED_BYTES`.
    pub fn env_var(self) -> &'static str {
        match self {
            Limit::UnpackedBytes => "PLUGD_MAX_UNPACKED_BYTES",
            Limit::Files => "PLUGD_MAX_FILES",
            Limit::Ratio => "PLUGD_MAX_RATIO",
            Limit::PathBytes => "PLUGD_MAX_PATH_BYTES",
            Limit::Depth => "PLUGD_MAX_DEPTH",
        }
    }

    /// What exceeding this limit means, in words, for an observed value.
    pub(crate) fn describe(self, max: u64, observed: u64) -> String {
        match self {
            Limit::UnpackedBytes => {
                format!("the package unpacks to more than {max} bytes (reached {observed})")
            }
            Limit::Files => {
                format!("the package holds more than {max} entries (files, directories and links)")
            }
            Limit::Ratio => format!("the archive expands more than {max} times"),
            Limit::PathBytes => format!("the path is {observed} bytes long, more than {max}"),
            Limit::Depth => format!("the path is {observed} components deep, more than {max}"),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}
