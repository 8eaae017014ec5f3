//! plugd packages: packing, hostile-input-safe unpacking, and digests.
//!
//! A plugd package is a plugin directory or a gzip-compressed tar archive of
//! one (DESIGN §1, §6). This crate owns moving packages between those two
//! forms and identifying their contents. It does not read manifests
//! (`plugd-manifest` does) and knows nothing of the store.
//!
//! # Overview
//!
//! - [`Source::detect`] tells a directory from a `.tar.gz` by content, and says
//!   plainly what plugd accepts when it is neither.
//! - [`unpack`] unpacks an archive, or copies a directory, into a new
//!   directory under [`Limits`], and reports the package's root in
//!   [`Unpacked`]. On any error it removes what it created.
//! - [`tree_digest`] gives the canonical [`Digest`] of an unpacked tree: the
//!   same files give the same digest from a directory or from the archive
//!   [`pack`] made of it, whatever the times, owners or compression.
//! - [`pack`] writes a byte-for-byte reproducible archive ([`Packed`]).
//! - [`make_read_only`] locks an installed tree; [`remove_tree`] deletes one
//!   even when locked.
//! - [`sign`] and [`verify`] (module `signature`) make and check minisign
//!   signatures over a [`SignedClaim`]: the plugin's id, version and tree
//!   digest in one canonical message, so a signature is bound to one version
//!   of one plugin and survives repacking. Keys and signature files are read
//!   as hostile input and refused with a [`SignatureError`] naming what
//!   failed (bad signature, digest, id or version mismatch).
//! - Every failure is a [`PackageError`] naming the entry and the reason, and
//!   for limits the flag and `PLUGD_` variable that raise them ([`Limit`]).
//!
//! # The archive is hostile
//!
//! Archives come from strangers, so `tar`'s own `unpack` is never used: its
//! rules are not ours to choose (it follows existing links, keeps hard links,
//! trusts modes). Entries are read one by one with [`tar::Archive::entries`],
//! and every file, directory and link is created here, with `O_EXCL`, only
//! under the destination. Refused, with the destination removed: absolute
//! paths; `..` components; an empty or `.` path on a non-directory; a symbolic
//! link whose target is absolute or that leaves the tree when resolved from its
//! directory, following the package's other links as the kernel would; any
//! entry whose parent is a link or a file (links are never written through);
//! hard links; devices, FIFOs, GNU sparse files and unknown entry types; the
//! same path twice (except a directory repeated); more than [`Limits`] allow in
//! bytes (counted as they are written, never taken from headers), entries,
//! compression ratio (measured on the decompressed stream as it is read, so a
//! bomb stops about a megabyte in), path length or depth; a damaged or cut
//! gzip or tar stream, including non-zero data after the end-of-archive block.
//! Setuid, setgid and sticky bits are stripped rather than refused (files
//! become 0644 or 0755, directories 0755) and listed in
//! [`Unpacked::stripped_modes`] for the scanner. Pax and GNU long-name headers
//! are read by the `tar` crate; pax global headers are ignored. Directory
//! sources obey the same rules through the same code ([`walkdir`], never
//! following links), skipping the clutter [`pack`] skips.
//!
//! Whether an entry may be created is decided against an index of what this
//! unpack itself created, never by asking the file system, so nothing an
//! archive planted can be consulted. Links are checked once the tree is
//! complete, because a later link can change where an earlier one leads.
//!
//! # Hand-written parts
//!
//! The canonical tree digest is this crate's own format (see [`tree_digest`]):
//! no crate offers a content digest independent of archive format and
//! metadata. Opening files without following links or blocking on FIFOs uses
//! `rustix`, because `std` cannot ask for `O_NOFOLLOW | O_NONBLOCK`.
//!
//! Unix only: paths are bytes and modes are Unix modes.

#![deny(missing_docs)]

mod digest;
mod error;
mod fsutil;
mod limits;
mod pack;
mod paths;
mod signature;
mod unpack;
mod writer;

pub use digest::{Digest, DigestParseError, file_digest, tree_digest};
pub use error::{LinkProblem, PackageError, PathProblem};
pub use fsutil::{make_read_only, remove_tree};
pub use limits::{Limit, Limits};
pub use pack::{Packed, pack};
pub use signature::{
    GeneratedKey, KeyId, PublicKey, SIGNATURE_EXTENSION, SIGNATURE_FORMAT, SecretKey,
    SignatureError, SignatureFile, SignedClaim, generate_key, sign, signature_path, verify,
};
pub use unpack::{Source, Unpacked, unpack};
