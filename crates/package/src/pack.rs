//! Making a deterministic `.tar.gz` of a plugin directory.

use std::fs::{self, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use crate::PackageError;
use crate::digest::{Digest, HashingReader, HashingWriter, TreeHasher};
use crate::fsutil::{self, EntryKind, is_executable, normal_file_mode};
use crate::paths::{self, Kind, TreeIndex, show, show_path};

/// What [`pack`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The archive (the `out` given to [`pack`]).
    pub path: PathBuf,
    /// The [`crate::tree_digest`] of what was packed, computed from the very
    /// bytes written, which is the digest the package will have once installed.
    pub digest: Digest,
    /// The SHA-256 of the archive file itself, for publishing as a checksum.
    pub archive_sha256: Digest,
    /// Regular files packed.
    pub files: u64,
    /// Bytes of file content packed.
    pub bytes: u64,
}

/// Packs the plugin directory `dir` into a deterministic `.tar.gz` at `out`.
///
/// Entries are sorted, paths are relative to `dir` (no top-level directory
/// prefix), times are 0, owners 0 without names, files 0644 or 0755 and
/// directories 0755, and the gzip header carries no name or time, so the same
/// tree always gives the same bytes. VCS and build clutter is skipped (`.git`,
/// `.hg`, `.svn`, `__pycache__`, `*.pyc`, `*.pyo`, `.DS_Store`,
/// `node_modules/.cache`, a Cargo `target/`), and so is `out` itself when it
/// lies inside `dir`. Hard-linked files are stored as plain copies; devices,
/// FIFOs, sockets and links that are absolute or lead out of the tree are
/// refused, as [`crate::unpack`] would refuse them.
///
/// The archive is written to a temporary file beside `out`, synced, and renamed
/// over `out`, so a failure never leaves a half-written archive.
pub fn pack(dir: &Path, out: &Path) -> Result<Packed, PackageError> {
    let meta =
        fs::metadata(dir).map_err(|e| PackageError::io("read the plugin directory", dir, e))?;
    if !meta.is_dir() {
        return Err(PackageError::NotADirectory {
            path: dir.to_path_buf(),
            wanted: "pass the plugin's directory to pack",
        });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".plugd-pack-")
        .suffix(".partial")
        .tempfile_in(parent)
        .map_err(|e| PackageError::io("create a temporary file in", parent, e))?;
    let write_err = |e: io::Error| PackageError::io("write the archive", tmp.path(), e);

    // `out` (or the temporary file) inside `dir` must not pack itself.
    let mut own_files = Vec::new();
    for path in [tmp.path(), out] {
        if let Ok(m) = fs::metadata(path) {
            own_files.push((m.dev(), m.ino()));
        }
    }

    let gz = GzBuilder::new().mtime(0).write(
        HashingWriter::new(BufWriter::new(tmp.as_file())),
        Compression::default(),
    );
    let mut builder = tar::Builder::new(gz);
    let mut tree = TreeHasher::default();
    let mut index = TreeIndex::default();
    let (mut files, mut bytes) = (0u64, 0u64);

    for entry in fsutil::walk_package(dir) {
        let entry = entry.map_err(fsutil::walk_error)?;
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        match fsutil::kind_of(&entry) {
            EntryKind::Dir => {
                let mut h = header(EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut h, rel, io::empty())
                    .map_err(write_err)?;
                tree.dir(rel);
                index.insert(rel.to_path_buf(), Kind::Dir);
            }
            EntryKind::File => {
                let (file, meta) = fsutil::open_regular(entry.path(), Some(&entry))?;
                if own_files.contains(&(meta.dev(), meta.ino())) {
                    continue;
                }
                let size = meta.len();
                let mut h = header(EntryType::Regular, normal_file_mode(meta.mode()), size);
                let mut content = HashingReader::new(file.take(size));
                builder
                    .append_data(&mut h, rel, &mut content)
                    .map_err(write_err)?;
                let (read, sha) = content.finish();
                // The header promised `size` bytes; a file that shrank would
                // leave the archive misaligned.
                if read != size {
                    return Err(PackageError::FileChanged {
                        path: entry.path().to_path_buf(),
                    });
                }
                tree.file(rel, is_executable(meta.mode()), size, sha);
                index.insert(rel.to_path_buf(), Kind::File);
                files += 1;
                bytes += size;
            }
            EntryKind::Symlink => {
                let target = fs::read_link(entry.path())
                    .map_err(|e| PackageError::io("read the symbolic link", entry.path(), e))?;
                paths::check_target_lexically(rel, target.as_os_str().as_bytes()).map_err(
                    |problem| PackageError::UnsafeSymlink {
                        entry: show_path(rel),
                        target: show_path(&target),
                        problem,
                    },
                )?;
                let mut h = header(EntryType::Symlink, 0o777, 0);
                builder
                    .append_link(&mut h, rel, &target)
                    .map_err(write_err)?;
                tree.symlink(rel, &target);
                index.insert_link(rel.to_path_buf(), target);
            }
            EntryKind::Special(kind) => {
                return Err(PackageError::SpecialFile {
                    entry: show_path(rel),
                    kind: kind.to_string(),
                });
            }
        }
    }
    index
        .check_links()
        .map_err(|(link, target, problem)| PackageError::UnsafeSymlink {
            entry: show_path(&link),
            target: show(target.as_os_str().as_bytes()),
            problem,
        })?;

    let gz = builder.into_inner().map_err(write_err)?;
    let hashing = gz.finish().map_err(write_err)?;
    let (buffered, archive_sha256) = hashing.finish();
    let mut file = buffered
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.flush().map_err(write_err)?;
    file.set_permissions(Permissions::from_mode(0o644))
        .map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    tmp.persist(out)
        .map_err(|e| PackageError::io("move the finished archive to", out, e.error))?;
    Ok(Packed {
        path: out.to_path_buf(),
        digest: tree.finish(),
        archive_sha256,
        files,
        bytes,
    })
}

/// A header with everything that varies between machines zeroed.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}
