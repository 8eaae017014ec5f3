//! Small filesystem helpers: removing read-only trees, durable renames, private directories.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::StoreError;
use crate::error::io;

/// Removes a file, symlink or directory tree; a missing path is not an error.
///
/// Installed version trees are read-only on purpose. A non-root user cannot delete entries of a
/// directory without write permission on it, nor list one without read and execute permission,
/// so every directory gets `u+rwx` first, top-down, before `remove_dir_all`. This walk is
/// hand-written rather than `walkdir` because `walkdir` opens a directory before yielding it,
/// which is exactly what fails on an unreadable one. Symlinks are never followed: a link inside
/// a package pointing elsewhere is removed, not its target.
pub(crate) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("inspect", path)(e)),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io("remove", path)(e)),
            _ => Ok(()),
        };
    }
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        make_owner_rwx(&dir)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io("list", &dir))?;
            // `DirEntry::file_type` does not follow symlinks.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(entry.path());
            }
        }
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Adds `u+rwx` to a directory, leaving the other bits alone.
pub(crate) fn make_owner_rwx(dir: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("inspect", dir)(e)),
    };
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700))
            .map_err(io("make writable", dir))?;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create directory", dir))
}

/// `fsync`s a directory so a rename inside it survives a power cut, not only a killed process.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("sync directory", dir))
}

/// Flushes every dirty file of the filesystem holding `path` (`syncfs(2)`).
///
/// One call instead of an `fsync` per file: a staged package (with its virtualenv) can hold
/// thousands of files, all freshly written, and they must be on disk before the database says
/// they are installed.
pub(crate) fn sync_filesystem(path: &Path) -> Result<(), StoreError> {
    let dir = fs::File::open(path).map_err(io("open", path))?;
    rustix::fs::syncfs(&dir).map_err(|e| io("sync the filesystem of", path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_read_only_tree_with_a_symlink_out_and_keeps_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside.txt");
        fs::write(&outside, "keep me").unwrap();
        let root = tmp.path().join("tree");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/link")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("dirlink")).unwrap();
        for d in ["a/b", "a", ""] {
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o500)).unwrap();
        }
        fs::set_permissions(root.join("a/b/f"), fs::Permissions::from_mode(0o400)).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep me");
        // Removing what is already gone is fine (recovery runs after partial removals).
        remove_tree(&root).unwrap();
    }

    #[test]
    fn removes_a_plain_file_and_a_dangling_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, "x").unwrap();
        remove_tree(&f).unwrap();
        let l = tmp.path().join("l");
        std::os::unix::fs::symlink("/nonexistent/target", &l).unwrap();
        remove_tree(&l).unwrap();
        assert!(fs::symlink_metadata(&l).is_err());
    }
}
