//! Creates a package's entries under the destination, one by one, under the
//! [`Limits`] and the path rules. Archive and directory sources both go through
//! here, so they obey exactly the same rules.

use std::ffi::OsStr;
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil::normal_file_mode;
use crate::limits::{Limit, Limits};
use crate::paths::{self, Clash, Kind, TreeIndex, show, show_path};
use crate::{PackageError, Unpacked};

/// Setuid, setgid and sticky bits: stripped from everything plugd creates.
const SPECIAL_MODE_BITS: u32 = 0o7000;

/// How writing one file failed: refused by a rule, or its content could not
/// be read (which the caller turns into a "corrupt archive" or an I/O error).
pub(crate) enum FileError {
    Refused(PackageError),
    Read(io::Error),
}

impl From<PackageError> for FileError {
    fn from(e: PackageError) -> Self {
        FileError::Refused(e)
    }
}

pub(crate) struct TreeWriter<'a> {
    dest: &'a Path,
    limits: &'a Limits,
    index: TreeIndex,
    entries: u64,
    files: u64,
    bytes: u64,
    stripped_modes: Vec<String>,
}

impl<'a> TreeWriter<'a> {
    pub(crate) fn new(dest: &'a Path, limits: &'a Limits) -> Self {
        TreeWriter {
            dest,
            limits,
            index: TreeIndex::default(),
            entries: 0,
            files: 0,
            bytes: 0,
            stripped_modes: Vec::new(),
        }
    }

    /// Records an entry whose mode had setuid/setgid/sticky bits; they are
    /// never applied, but the caller (the scanner) may want to report them.
    pub(crate) fn note_mode(&mut self, entry: &str, mode: u32) {
        if mode & SPECIAL_MODE_BITS != 0 {
            self.stripped_modes.push(entry.to_string());
        }
    }

    pub(crate) fn dir(&mut self, entry: &str, rel: &Path) -> Result<(), PackageError> {
        if self.admit(entry, rel, Kind::Dir)? {
            self.mkdir(rel)?;
        }
        Ok(())
    }

    /// Writes one regular file from `content`, counting bytes as they are
    /// written: the declared size only allows an early refusal, it is never
    /// trusted to bound the copy. Returns the bytes written.
    pub(crate) fn file(
        &mut self,
        entry: &str,
        rel: &Path,
        mode: u32,
        declared: u64,
        content: &mut dyn Read,
    ) -> Result<u64, FileError> {
        let max = self.limits.max_unpacked_bytes;
        let promised = self.bytes.saturating_add(declared);
        if promised > max {
            return Err(self.too_big(entry, promised).into());
        }
        self.admit(entry, rel, Kind::File)?;
        let full = self.dest.join(rel);
        // `create_new` is O_CREAT|O_EXCL: it never opens, follows or truncates
        // anything that is already there, a link included.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&full)
            .map_err(|e| PackageError::io("create the file", &full, e))?;
        self.index.insert(rel.to_path_buf(), Kind::File);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FileError::Read(e)),
            };
            let total = self.bytes + n as u64;
            if total > max {
                return Err(self.too_big(entry, total).into());
            }
            file.write_all(&buf[..n])
                .map_err(|e| PackageError::io("write the file", &full, e))?;
            self.bytes = total;
            written += n as u64;
        }
        // fchmod, so the umask does not decide whether the execute bit survives.
        file.set_permissions(Permissions::from_mode(normal_file_mode(mode)))
            .map_err(|e| PackageError::io("set the mode of", &full, e))?;
        self.files += 1;
        Ok(written)
    }

    pub(crate) fn symlink(
        &mut self,
        entry: &str,
        rel: &Path,
        target: &[u8],
    ) -> Result<(), PackageError> {
        if target.len() > self.limits.max_path_bytes {
            return Err(PackageError::LimitExceeded {
                entry: entry.to_string(),
                limit: Limit::PathBytes,
                max: self.limits.max_path_bytes as u64,
                observed: target.len() as u64,
            });
        }
        paths::check_target_lexically(rel, target).map_err(|problem| {
            PackageError::UnsafeSymlink {
                entry: entry.to_string(),
                target: show(target),
                problem,
            }
        })?;
        self.admit(entry, rel, Kind::Symlink)?;
        let full = self.dest.join(rel);
        let target = Path::new(OsStr::from_bytes(target));
        std::os::unix::fs::symlink(target, &full)
            .map_err(|e| PackageError::io("create the symbolic link", &full, e))?;
        self.index
            .insert_link(rel.to_path_buf(), target.to_path_buf());
        Ok(())
    }

    /// Checks the links against the complete tree and picks the package root.
    pub(crate) fn finish(self, descend_single_top: bool) -> Result<Unpacked, PackageError> {
        self.index
            .check_links()
            .map_err(|(link, target, problem)| PackageError::UnsafeSymlink {
                entry: show_path(&link),
                target: show_path(&target),
                problem,
            })?;
        let root = match self.index.single_top_dir() {
            Some(top) if descend_single_top => self.dest.join(top),
            _ => self.dest.to_path_buf(),
        };
        Ok(Unpacked {
            root,
            files: self.files,
            bytes: self.bytes,
            stripped_modes: self.stripped_modes,
        })
    }

    /// Checks an entry's path against the limits and the index, creates its
    /// missing parents, and counts it. `Ok(false)`: a directory already there.
    fn admit(&mut self, entry: &str, rel: &Path, kind: Kind) -> Result<bool, PackageError> {
        let len = rel.as_os_str().len();
        if len > self.limits.max_path_bytes {
            return Err(PackageError::LimitExceeded {
                entry: entry.to_string(),
                limit: Limit::PathBytes,
                max: self.limits.max_path_bytes as u64,
                observed: len as u64,
            });
        }
        let depth = rel.components().count();
        if depth > self.limits.max_depth {
            return Err(PackageError::LimitExceeded {
                entry: entry.to_string(),
                limit: Limit::Depth,
                max: self.limits.max_depth as u64,
                observed: depth as u64,
            });
        }
        let plan = self.index.plan(rel, kind).map_err(|clash| match clash {
            Clash::ThroughSymlink(link) => PackageError::ThroughSymlink {
                entry: entry.to_string(),
                link: show_path(&link),
            },
            Clash::ParentIsFile(parent) => PackageError::ParentNotDirectory {
                entry: entry.to_string(),
                parent: show_path(&parent),
            },
            Clash::Duplicate => PackageError::Duplicate {
                entry: entry.to_string(),
            },
        })?;
        if plan.already_there {
            return Ok(false);
        }
        // Implicit parents are inodes too, so they count against max_files.
        for parent in &plan.missing_parents {
            self.count(entry)?;
            self.mkdir(parent)?;
        }
        self.count(entry)?;
        Ok(true)
    }

    fn count(&mut self, entry: &str) -> Result<(), PackageError> {
        if self.entries >= self.limits.max_files {
            return Err(PackageError::LimitExceeded {
                entry: entry.to_string(),
                limit: Limit::Files,
                max: self.limits.max_files,
                observed: self.entries + 1,
            });
        }
        self.entries += 1;
        Ok(())
    }

    fn mkdir(&mut self, rel: &Path) -> Result<(), PackageError> {
        let full: PathBuf = self.dest.join(rel);
        DirBuilder::new()
            .mode(0o755)
            .create(&full)
            .map_err(|e| PackageError::io("create the directory", &full, e))?;
        self.index.insert(rel.to_path_buf(), Kind::Dir);
        Ok(())
    }

    fn too_big(&self, entry: &str, observed: u64) -> PackageError {
        PackageError::LimitExceeded {
            entry: entry.to_string(),
            limit: Limit::UnpackedBytes,
            max: self.limits.max_unpacked_bytes,
            observed,
        }
    }
}
