//! SHA-256 digests: of bytes, of files, and the canonical digest of a tree.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use walkdir::WalkDir;

use crate::PackageError;
use crate::fsutil::{self, EntryKind};

/// A SHA-256 digest, written `sha256:<64 lowercase hex digits>`.
///
/// Used both for [`tree_digest`] (the identity of a package's contents) and for
/// plain file checksums ([`file_digest`], [`crate::Packed::archive_sha256`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The prefix of the text form.
    pub const PREFIX: &'static str = "sha256:";

    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The SHA-256 of `data`.
    pub fn of_bytes(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A string that is not `sha256:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a digest: expected `sha256:` followed by 64 hexadecimal digits")]
pub struct DigestParseError {
    /// The text given (shortened when long).
    pub input: String,
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DigestParseError {
            input: s.chars().take(80).collect(),
        };
        let hex_part = s.strip_prefix(Self::PREFIX).ok_or_else(err)?;
        if hex_part.len() != 64 {
            return Err(err());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| err())?;
        Ok(Digest(bytes))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A [`Read`] adapter that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far and their digest.
    pub(crate) fn finish(self) -> (u64, Digest) {
        (self.count, Digest(self.hasher.finalize().into()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A [`io::Write`] adapter that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: io::Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub(crate) fn finish(self) -> (W, Digest) {
        (self.inner, Digest(self.hasher.finalize().into()))
    }
}

impl<W: io::Write> io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One entry of a tree, as the canonical digest sees it.
enum Record {
    Dir,
    File {
        executable: bool,
        size: u64,
        content: Digest,
    },
    Symlink {
        target: Vec<u8>,
    },
}

/// Builds a [`tree_digest`] (whose doc gives the form) from entries given in
/// any order.
#[derive(Default)]
pub(crate) struct TreeHasher {
    entries: Vec<(Vec<u8>, Record)>,
}

impl TreeHasher {
    pub(crate) fn dir(&mut self, rel: &Path) {
        self.entries.push((rel_bytes(rel), Record::Dir));
    }

    pub(crate) fn file(&mut self, rel: &Path, executable: bool, size: u64, content: Digest) {
        self.entries.push((
            rel_bytes(rel),
            Record::File {
                executable,
                size,
                content,
            },
        ));
    }

    pub(crate) fn symlink(&mut self, rel: &Path, target: &Path) {
        self.entries.push((
            rel_bytes(rel),
            Record::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            },
        ));
    }

    pub(crate) fn finish(mut self) -> Digest {
        // Sorting whole paths (not walking order) makes the digest independent of
        // how the tree was enumerated: archive order, readdir order, walker order.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = Sha256::new();
        h.update(b"plugd-tree-v1\0");
        for (path, record) in &self.entries {
            let tag: u8 = match record {
                Record::Dir => b'd',
                Record::File {
                    executable: true, ..
                } => b'x',
                Record::File { .. } => b'f',
                Record::Symlink { .. } => b'l',
            };
            h.update([tag]);
            h.update((path.len() as u64).to_be_bytes());
            h.update(path);
            match record {
                Record::Dir => {}
                Record::File { size, content, .. } => {
                    h.update(size.to_be_bytes());
                    h.update(content.as_bytes());
                }
                Record::Symlink { target } => {
                    h.update((target.len() as u64).to_be_bytes());
                    h.update(target);
                }
            }
        }
        Digest(h.finalize().into())
    }
}

fn rel_bytes(rel: &Path) -> Vec<u8> {
    rel.as_os_str().as_bytes().to_vec()
}

/// The canonical digest of the tree under `root`.
///
/// It covers every entry's path and type, every file's content and execute bit
/// and every link's target, and nothing else, so it is the same whether the tree
/// was installed from a directory or from the `.tar.gz` [`crate::pack`] made of
/// it, and does not change with times, owners, permissions other than execute,
/// or compression. Symbolic links are recorded, never followed. A device, FIFO or
/// socket in the tree is an error, as it could never have been unpacked.
///
/// The form, version 1: SHA-256 over the tag `plugd-tree-v1\0`, then, for every
/// entry below the root sorted by its `/`-separated relative path's bytes, a
/// type byte (`d` directory, `f` file, `x` file with any execute bit, `l`
/// symbolic link), the path's length as a big-endian u64 and the path; then for
/// files the size (u64) and the SHA-256 of the content, for links the target's
/// length (u64) and bytes. Every variable-length field is length-prefixed, so
/// no two trees share an encoding. Sorting whole paths makes it independent of
/// the order an archive or a directory walk lists entries in.
pub fn tree_digest(root: &Path) -> Result<Digest, PackageError> {
    let meta = std::fs::metadata(root)
        .map_err(|e| PackageError::io("read the package directory", root, e))?;
    if !meta.is_dir() {
        return Err(PackageError::NotADirectory {
            path: root.to_path_buf(),
            wanted: "a tree digest is taken of an unpacked package directory",
        });
    }
    let mut tree = TreeHasher::default();
    for entry in WalkDir::new(root).follow_links(false).min_depth(1) {
        let entry = entry.map_err(fsutil::walk_error)?;
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        match fsutil::kind_of(&entry) {
            EntryKind::Dir => tree.dir(rel),
            EntryKind::File => {
                let (file, meta) = fsutil::open_regular(entry.path(), Some(&entry))?;
                let (size, content) = hash_reader(file, entry.path())?;
                tree.file(rel, fsutil::is_executable(meta.mode()), size, content);
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| PackageError::io("read the symbolic link", entry.path(), e))?;
                tree.symlink(rel, &target);
            }
            EntryKind::Special(kind) => {
                return Err(PackageError::SpecialFile {
                    entry: crate::paths::show_path(rel),
                    kind: kind.to_string(),
                });
            }
        }
    }
    Ok(tree.finish())
}

/// The SHA-256 of a file's bytes, e.g. to check a downloaded archive against a
/// published checksum.
pub fn file_digest(path: &Path) -> Result<Digest, PackageError> {
    let file = File::open(path).map_err(|e| PackageError::io("open", path, e))?;
    Ok(hash_reader(file, path)?.1)
}

fn hash_reader(reader: impl Read, path: &Path) -> Result<(u64, Digest), PackageError> {
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| PackageError::io("read", path, e))?;
    Ok(hashing.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let d = Digest::of_bytes(b"hello");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(text.parse::<Digest>().unwrap(), d);
        let upper = text.to_uppercase().replace("SHA256:", "sha256:");
        assert_eq!(upper.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn bad_text_is_refused() {
        for bad in [
            "",
            "sha256:",
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "md5:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982",
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98244",
            "sha256:zzf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982é",
        ] {
            let err = bad.parse::<Digest>().unwrap_err();
            assert!(
                err.to_string().contains("expected `sha256:`"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn tree_hasher_ignores_input_order_but_not_content() {
        let d = Digest::of_bytes(b"x");
        let mut a = TreeHasher::default();
        a.dir(Path::new("a"));
        a.file(Path::new("a/b"), false, 1, d);
        a.file(Path::new("a-c"), true, 1, d);
        let mut b = TreeHasher::default();
        b.file(Path::new("a-c"), true, 1, d);
        b.file(Path::new("a/b"), false, 1, d);
        b.dir(Path::new("a"));
        let mut c = TreeHasher::default();
        c.file(Path::new("a-c"), false, 1, d);
        c.file(Path::new("a/b"), false, 1, d);
        c.dir(Path::new("a"));
        let (a, b, c) = (a.finish(), b.finish(), c.finish());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tree_hasher_fields_are_unambiguous() {
        // A link whose target spells another entry must not collide with it.
        let mut a = TreeHasher::default();
        a.symlink(Path::new("ab"), Path::new("c"));
        let mut b = TreeHasher::default();
        b.symlink(Path::new("a"), Path::new("bc"));
        assert_ne!(a.finish(), b.finish());
    }
}
