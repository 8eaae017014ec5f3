//! Reading a package: telling what a path is ([`Source::detect`]) and
//! unpacking or copying it into a fresh directory ([`unpack`]).

use std::cell::Cell;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use tar::EntryType;

use crate::error::PathProblem;
use crate::fsutil::{self, EntryKind};
use crate::limits::{Limit, Limits};
use crate::paths::{normalise, show};
use crate::writer::{FileError, TreeWriter};
use crate::{PackageError, remove_tree};

/// Where a package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A plugin directory, copied (never moved or linked) on unpack.
    Dir(PathBuf),
    /// A gzip-compressed tar archive.
    Archive(PathBuf),
}

impl Source {
    /// Tells a plugin directory from a `.tar.gz` by looking at it (not at its
    /// name): a directory, or a file that starts with the gzip signature. Any
    /// other file is refused with an error saying what it seems to be and what
    /// plugd accepts. Links to either are followed: the caller named them.
    pub fn detect(path: &Path) -> Result<Source, PackageError> {
        let meta = fs::metadata(path).map_err(|e| PackageError::io("read the package", path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let not_a_package = |found: &str| PackageError::NotAPackage {
            path: path.to_path_buf(),
            found: found.to_string(),
        };
        if !meta.is_file() {
            return Err(not_a_package("neither a regular file nor a directory"));
        }
        let mut head = [0u8; 512];
        let mut file = File::open(path).map_err(|e| PackageError::io("open", path, e))?;
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PackageError::io("read", path, e)),
            }
        }
        let head = &head[..n];
        if head.starts_with(&[0x1f, 0x8b]) {
            return Ok(Source::Archive(path.to_path_buf()));
        }
        Err(not_a_package(if head.is_empty() {
            "an empty file"
        } else if head.starts_with(b"PK\x03\x04") {
            "a zip archive (repack the plugin directory as .tar.gz)"
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            "an uncompressed tar archive (compress it with `gzip FILE`)"
        } else if head.starts_with(b"BZh") {
            "a bzip2-compressed file"
        } else if head.starts_with(b"\xfd7zXZ\0") {
            "an xz-compressed file"
        } else if head.starts_with(b"\x28\xb5\x2f\xfd") {
            "a zstd-compressed file"
        } else {
            "a file that does not start with the gzip signature"
        }))
    }

    /// The path this source reads from.
    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) | Source::Archive(p) => p,
        }
    }
}

/// What [`unpack`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The directory holding the package's files: `dest` itself, or
    /// `dest/<dir>` when an archive holds one top-level directory and nothing
    /// else (the layout `tar -czf my_plugin.tar.gz my_plugin/` makes).
    /// Directory sources always give `dest`.
    pub root: PathBuf,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries whose mode carried setuid, setgid or sticky bits. Those bits are
    /// never applied (files get 0644 or 0755, directories 0755); they are
    /// listed so a security scan can still report the attempt.
    pub stripped_modes: Vec<String>,
}

/// Unpacks (or, for a directory, copies) `source` into `dest`.
///
/// `dest` must not exist yet; its parent is the caller's staging area. Every
/// entry is created by this function itself, only under `dest`, with
/// `O_EXCL`, after its path has been checked against the rules in the crate
/// docs and against `limits`. On any error `dest` is removed before returning
/// (best effort: a file system that refuses the removal leaves it), so a
/// refused package leaves nothing behind; a `dest` that already existed is
/// refused with [`PackageError::DestinationExists`] and left untouched.
pub fn unpack(source: &Source, dest: &Path, limits: &Limits) -> Result<Unpacked, PackageError> {
    let exists = || PackageError::DestinationExists {
        path: dest.to_path_buf(),
    };
    match fs::symlink_metadata(dest) {
        Ok(_) => return Err(exists()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(PackageError::io("check the unpack destination", dest, e)),
    }
    DirBuilder::new()
        .mode(0o755)
        .create(dest)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => exists(),
            _ => PackageError::io("create the unpack destination", dest, e),
        })?;
    let mut guard = RemoveOnDrop(Some(dest));
    let result = match source {
        Source::Archive(archive) => unpack_archive(archive, dest, limits),
        Source::Dir(dir) => copy_dir(dir, dest, limits),
    };
    if result.is_ok() {
        guard.0 = None;
    }
    result
}

/// Removes the destination unless disarmed, even when unpacking panics.
struct RemoveOnDrop<'a>(Option<&'a Path>);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(dest) = self.0.take() {
            // Nothing better to do with a failure here: the original error is
            // the one the caller needs.
            let _ = remove_tree(dest);
        }
    }
}

/// A limit the decompressed stream hit, recorded where the tar reader cannot
/// lose it: the reader only passes on an `io::Error`.
#[derive(Debug, Clone, Copy)]
enum Hit {
    Ratio { unpacked: u64, compressed: u64 },
    Stream { unpacked: u64 },
}

/// Shared between the compressed-side and decompressed-side counters.
#[derive(Default)]
struct Meter {
    compressed: Cell<u64>,
    hit: Cell<Option<Hit>>,
}

/// Counts compressed bytes read from the archive file.
struct CountingReader<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter
            .compressed
            .set(self.meter.compressed.get() + n as u64);
        Ok(n)
    }
}

/// Sits between the gzip decoder and the tar reader and stops the stream the
/// moment it grows past the ratio or the size cap, so neither a bomb's data
/// nor a huge GNU long-name / pax header (which the tar crate reads into
/// memory) gets further than the limit.
struct StreamGuard<R> {
    inner: R,
    meter: Rc<Meter>,
    unpacked: u64,
    cap: u64,
    max_ratio: u64,
}

impl<R: Read> Read for StreamGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.meter.hit.get().is_some() {
            return Err(io::Error::other("unpack limit reached"));
        }
        let n = self.inner.read(buf)?;
        self.unpacked += n as u64;
        let compressed = self.meter.compressed.get();
        let hit = if self.unpacked > self.cap {
            Some(Hit::Stream {
                unpacked: self.unpacked,
            })
        } else if self.unpacked > Limits::RATIO_GRACE_BYTES
            && self.unpacked > self.max_ratio.saturating_mul(compressed)
        {
            Some(Hit::Ratio {
                unpacked: self.unpacked,
                compressed,
            })
        } else {
            None
        };
        if let Some(hit) = hit {
            self.meter.hit.set(Some(hit));
            return Err(io::Error::other("unpack limit reached"));
        }
        Ok(n)
    }
}

/// Room in the tar stream for headers, long names, pax records and padding,
/// per entry, on top of the file content `max_unpacked_bytes` allows.
const STREAM_OVERHEAD_PER_ENTRY: u64 = 8 * 1024;

fn unpack_archive(archive: &Path, dest: &Path, limits: &Limits) -> Result<Unpacked, PackageError> {
    let file = File::open(archive).map_err(|e| PackageError::io("open", archive, e))?;
    let meter = Rc::new(Meter::default());
    let stream = StreamGuard {
        inner: MultiGzDecoder::new(CountingReader {
            inner: file,
            meter: Rc::clone(&meter),
        }),
        meter: Rc::clone(&meter),
        unpacked: 0,
        cap: limits
            .max_unpacked_bytes
            .saturating_add(limits.max_files.saturating_mul(STREAM_OVERHEAD_PER_ENTRY))
            .saturating_add(Limits::RATIO_GRACE_BYTES),
        max_ratio: limits.max_ratio,
    };
    let corrupt = |detail: String, source: Option<io::Error>| PackageError::Corrupt {
        archive: archive.to_path_buf(),
        detail,
        source,
    };
    // A read error is a limit when the guard recorded one, else damage.
    let stream_error = |e: io::Error, entry: &str, reading: &str| match meter.hit.get() {
        Some(Hit::Ratio {
            unpacked,
            compressed,
        }) => PackageError::RatioExceeded {
            entry: entry.to_string(),
            max_ratio: limits.max_ratio,
            unpacked,
            compressed,
        },
        Some(Hit::Stream { unpacked }) => PackageError::LimitExceeded {
            entry: entry.to_string(),
            limit: Limit::UnpackedBytes,
            max: limits.max_unpacked_bytes,
            observed: unpacked,
        },
        None => corrupt(format!("could not read {reading}"), Some(e)),
    };

    let mut tar = tar::Archive::new(stream);
    let mut writer = TreeWriter::new(dest, limits);
    let mut last = String::from("(start of archive)");
    let entries = tar
        .entries()
        .map_err(|e| stream_error(e, &last, "the first entry"))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| stream_error(e, &last, &format!("the entry after `{last}`")))?;
        let raw = entry.path_bytes().into_owned();
        let shown = show(&raw);
        last.clone_from(&shown);
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata (`git archive` writes the commit id here);
            // it names no file.
            continue;
        }
        // Old (pre-POSIX) tars mark directories only by a trailing slash.
        let old_style_dir = matches!(kind, EntryType::Regular)
            && entry.header().as_ustar().is_none()
            && raw.ends_with(b"/");
        let is_dir = kind.is_dir() || old_style_dir;
        let rel = match normalise(&raw) {
            Ok(Some(rel)) => rel,
            Ok(None) if is_dir => continue,
            Ok(None) => {
                return Err(PackageError::UnsafePath {
                    entry: shown,
                    problem: PathProblem::Empty,
                });
            }
            Err(problem) => {
                return Err(PackageError::UnsafePath {
                    entry: shown,
                    problem,
                });
            }
        };
        let mode = entry.header().mode().map_err(|e| {
            corrupt(
                format!("entry `{shown}` has an unreadable mode field"),
                Some(e),
            )
        })?;
        match kind {
            _ if is_dir => {
                writer.note_mode(&shown, mode);
                writer.dir(&shown, &rel)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                writer.note_mode(&shown, mode);
                let declared = entry.size();
                let written = writer
                    .file(&shown, &rel, mode, declared, &mut entry)
                    .map_err(|e| match e {
                        FileError::Refused(e) => e,
                        FileError::Read(e) => {
                            stream_error(e, &shown, &format!("the content of `{shown}`"))
                        }
                    })?;
                if written != declared {
                    return Err(corrupt(
                        format!("entry `{shown}` ends after {written} of its {declared} bytes"),
                        None,
                    ));
                }
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    corrupt(format!("symbolic link `{shown}` has no target"), None)
                })?;
                writer.symlink(&shown, &rel, &target)?;
            }
            EntryType::Link => {
                return Err(PackageError::HardLink {
                    target: show(&entry.link_name_bytes().unwrap_or_default()),
                    entry: shown,
                });
            }
            other => {
                return Err(PackageError::SpecialFile {
                    entry: shown,
                    kind: describe_entry_type(other),
                });
            }
        }
    }

    // The tar reader stops at the first end-of-archive block. Reading the rest
    // makes the gzip decoder check its CRC and length (so a damaged or cut
    // tail is caught) and makes sure nothing hides after the end marker.
    let mut rest = tar.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if buf[..n].iter().all(|b| *b == 0) => {}
            Ok(_) => {
                return Err(corrupt(
                    "non-zero data follows the end-of-archive marker".to_string(),
                    None,
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(e, &last, "the end of the archive")),
        }
    }
    writer.finish(true)
}

fn describe_entry_type(kind: EntryType) -> String {
    match kind {
        EntryType::Char => "a character device".into(),
        EntryType::Block => "a block device".into(),
        EntryType::Fifo => "a FIFO (named pipe)".into(),
        EntryType::GNUSparse => "a GNU sparse file".into(),
        other => {
            let byte = other.as_byte();
            if byte.is_ascii_graphic() {
                format!("an entry of unknown type `{}`", byte as char)
            } else {
                format!("an entry of unknown type 0x{byte:02x}")
            }
        }
    }
}

fn copy_dir(src: &Path, dest: &Path, limits: &Limits) -> Result<Unpacked, PackageError> {
    let meta =
        fs::metadata(src).map_err(|e| PackageError::io("read the plugin directory", src, e))?;
    if !meta.is_dir() {
        return Err(PackageError::NotADirectory {
            path: src.to_path_buf(),
            wanted: "a directory source must be the plugin's directory",
        });
    }
    let real_src =
        fs::canonicalize(src).map_err(|e| PackageError::io("resolve the path of", src, e))?;
    let real_dest =
        fs::canonicalize(dest).map_err(|e| PackageError::io("resolve the path of", dest, e))?;
    if real_dest.starts_with(&real_src) {
        return Err(PackageError::DestinationInsideSource {
            source_dir: src.to_path_buf(),
            dest: dest.to_path_buf(),
        });
    }
    let mut writer = TreeWriter::new(dest, limits);
    for entry in fsutil::walk_package(src) {
        let entry = entry.map_err(fsutil::walk_error)?;
        let raw = entry
            .path()
            .strip_prefix(src)
            .unwrap_or(entry.path())
            .as_os_str()
            .as_bytes();
        let shown = show(raw);
        let rel = match normalise(raw) {
            Ok(Some(rel)) => rel,
            Ok(None) => continue,
            Err(problem) => {
                return Err(PackageError::UnsafePath {
                    entry: shown,
                    problem,
                });
            }
        };
        match fsutil::kind_of(&entry) {
            EntryKind::Dir => writer.dir(&shown, &rel)?,
            EntryKind::File => {
                let (file, meta) = fsutil::open_regular(entry.path(), Some(&entry))?;
                writer.note_mode(&shown, meta.mode());
                let size = meta.len();
                // `take` stops a file that grows meanwhile at the size we saw.
                let written = writer
                    .file(&shown, &rel, meta.mode(), size, &mut file.take(size))
                    .map_err(|e| match e {
                        FileError::Refused(e) => e,
                        FileError::Read(e) => PackageError::io("read", entry.path(), e),
                    })?;
                if written != size {
                    return Err(PackageError::FileChanged {
                        path: entry.path().to_path_buf(),
                    });
                }
            }
            EntryKind::Symlink => {
                let target = fs::read_link(entry.path())
                    .map_err(|e| PackageError::io("read the symbolic link", entry.path(), e))?;
                writer.symlink(&shown, &rel, target.as_os_str().as_bytes())?;
            }
            EntryKind::Special(kind) => {
                return Err(PackageError::SpecialFile {
                    entry: shown,
                    kind: kind.to_string(),
                });
            }
        }
    }
    writer.finish(false)
}
