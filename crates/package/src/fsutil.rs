//! Small file-system helpers shared by pack, unpack and digest: what an entry
//! is, opening a file without following links, the clutter list, and
//! read-only / removal of installed trees.

use std::fs::{self, File, Metadata, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use walkdir::{DirEntry, WalkDir};

use crate::PackageError;

/// What a directory entry is, as far as a package is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    File,
    Symlink,
    /// Anything a package may not hold, described for an error message.
    Special(&'static str),
}

/// The kind of a walked entry, from `lstat` (walkdir never follows links here).
pub(crate) fn kind_of(entry: &DirEntry) -> EntryKind {
    let ft = entry.file_type();
    if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_fifo() {
        EntryKind::Special("a FIFO (named pipe)")
    } else if ft.is_socket() {
        EntryKind::Special("a socket")
    } else if ft.is_char_device() {
        EntryKind::Special("a character device")
    } else if ft.is_block_device() {
        EntryKind::Special("a block device")
    } else {
        EntryKind::Special("a file of unknown type")
    }
}

/// Whether a mode has any execute bit; the only permission a package keeps.
pub(crate) fn is_executable(mode: u32) -> bool {
    mode & 0o111 != 0
}

/// The mode plugd gives a file while unpacking or packing: 0755 or 0644.
pub(crate) fn normal_file_mode(mode: u32) -> u32 {
    if is_executable(mode) { 0o755 } else { 0o644 }
}

/// The entries of a plugin directory as `pack` and directory installs see them:
/// sorted (so archives and digests are deterministic), links not followed, and
/// build clutter skipped.
pub(crate) fn walk_package(dir: &Path) -> impl Iterator<Item = walkdir::Result<DirEntry>> {
    WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !is_clutter(e))
}

pub(crate) fn walk_error(err: walkdir::Error) -> PackageError {
    let path = err.path().map(Path::to_path_buf).unwrap_or_default();
    PackageError::io("read the directory entry", path, io::Error::from(err))
}

/// Opens `path` for reading only if it is (still) a regular file.
///
/// `O_NOFOLLOW` refuses a link swapped in since the walk, and `O_NONBLOCK`
/// keeps a FIFO swapped in from blocking the open forever; `std` offers
/// neither, hence rustix. When `walked` is given, the opened file must also be
/// the very file the walk saw (same device and inode).
pub(crate) fn open_regular(
    path: &Path,
    walked: Option<&DirEntry>,
) -> Result<(File, Metadata), PackageError> {
    let changed = || PackageError::FileChanged {
        path: path.to_path_buf(),
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Err(changed()),
        Err(e) => return Err(PackageError::io("open", path, e.into())),
    };
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| PackageError::io("read the metadata of", path, e))?;
    if !meta.is_file() {
        return Err(changed());
    }
    if let Some(walked) = walked {
        let seen = walked
            .metadata()
            .map_err(|e| PackageError::io("read the metadata of", path, io::Error::from(e)))?;
        if seen.dev() != meta.dev() || seen.ino() != meta.ino() {
            return Err(changed());
        }
    }
    Ok((file, meta))
}

/// Whether a walked entry is VCS or build clutter that never belongs in a
/// package: `.git`, `.hg`, `.svn`, `__pycache__`, `*.pyc`, `*.pyo`,
/// `.DS_Store`, `node_modules/.cache`, and a Cargo `target/` directory.
///
/// `target` is only clutter when Cargo made it (it holds `CACHEDIR.TAG`, or a
/// `Cargo.toml` sits beside it): a Python package may well be called `target`.
pub(crate) fn is_clutter(entry: &DirEntry) -> bool {
    if entry.depth() == 0 {
        return false;
    }
    let name = entry.file_name().as_bytes();
    if name == b".git" {
        // Any type: in a worktree or submodule `.git` is a file.
        return true;
    }
    if entry.file_type().is_dir() {
        match name {
            b".hg" | b".svn" | b"__pycache__" => true,
            b".cache" => entry
                .path()
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|p| p == "node_modules"),
            b"target" => {
                let has = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
                has(&entry.path().join("CACHEDIR.TAG"))
                    || entry
                        .path()
                        .parent()
                        .is_some_and(|parent| has(&parent.join("Cargo.toml")))
            }
            _ => false,
        }
    } else {
        name == b".DS_Store" || name.ends_with(b".pyc") || name.ends_with(b".pyo")
    }
}

/// Makes an unpacked tree read-only: files 0444, or 0555 when any execute bit
/// is set, directories 0555. Symbolic links are skipped (their own mode means
/// nothing on Linux, and `chmod` would follow them).
pub fn make_read_only(root: &Path) -> Result<(), PackageError> {
    let meta = fs::symlink_metadata(root)
        .map_err(|e| PackageError::io("read the package directory", root, e))?;
    if !meta.is_dir() {
        return Err(PackageError::NotADirectory {
            path: root.to_path_buf(),
            wanted: "only an unpacked package directory is made read-only",
        });
    }
    // Children first, so no directory is locked before its contents are done.
    for entry in WalkDir::new(root).follow_links(false).contents_first(true) {
        let entry = entry.map_err(walk_error)?;
        let mode = match kind_of(&entry) {
            EntryKind::Symlink => continue,
            EntryKind::Dir => 0o555,
            EntryKind::File => {
                let meta = entry.metadata().map_err(|e| {
                    PackageError::io("read the metadata of", entry.path(), e.into())
                })?;
                if is_executable(meta.mode()) {
                    0o555
                } else {
                    0o444
                }
            }
            EntryKind::Special(kind) => {
                return Err(PackageError::SpecialFile {
                    entry: crate::paths::show_path(entry.path()),
                    kind: kind.to_string(),
                });
            }
        };
        fs::set_permissions(entry.path(), Permissions::from_mode(mode))
            .map_err(|e| PackageError::io("make read-only", entry.path(), e))?;
    }
    Ok(())
}

/// Removes a tree, including one [`make_read_only`] locked: directories are
/// made writable again first, since a non-root user cannot delete entries of a
/// 0555 directory. A tree that is already gone is not an error. Links are
/// removed, never followed.
pub fn remove_tree(root: &Path) -> Result<(), PackageError> {
    match fs::symlink_metadata(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PackageError::io("read", root, e)),
        Ok(meta) if !meta.is_dir() => {
            return fs::remove_file(root).map_err(|e| PackageError::io("remove", root, e));
        }
        Ok(_) => {}
    }
    for entry in WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(walk_error)?;
        if entry.file_type().is_dir() {
            fs::set_permissions(entry.path(), Permissions::from_mode(0o755))
                .map_err(|e| PackageError::io("make writable", entry.path(), e))?;
        }
    }
    fs::remove_dir_all(root).map_err(|e| PackageError::io("remove", root, e))
}
