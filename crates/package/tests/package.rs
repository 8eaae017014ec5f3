//! Integration tests for plugd-package: hostile archives (built from raw tar
//! headers where the `tar` builder would refuse), limits, damaged streams,
//! directory sources, and the pack / unpack / digest round trip.
//!
//! Every refusal test also checks that the destination is gone and that
//! nothing new appeared in the staging area or next to it.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use plugd_package::{
    Digest, Limit, Limits, LinkProblem, PackageError, PathProblem, Source, Unpacked, pack,
    tree_digest, unpack,
};
use tar::{EntryType, Header};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Fixtures

/// A scratch area: `root/staging` is the caller's staging directory, the
/// archive under test sits at `root/pkg.tar.gz`, and unpacking goes to
/// `root/staging/pkg`.
struct Env {
    _tmp: TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        fs::create_dir(root.join("staging")).unwrap();
        Env { _tmp: tmp, root }
    }

    fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    fn dest(&self) -> PathBuf {
        self.staging().join("pkg")
    }

    fn archive(&self) -> PathBuf {
        self.root.join("pkg.tar.gz")
    }

    fn unpack_gz(&self, gz: &[u8], limits: &Limits) -> Result<Unpacked, PackageError> {
        fs::write(self.archive(), gz).unwrap();
        unpack(&Source::Archive(self.archive()), &self.dest(), limits)
    }

    /// Unpacks `gz` expecting a refusal, and checks nothing was left behind.
    fn refuse(&self, gz: &[u8], limits: &Limits) -> PackageError {
        let err = match self.unpack_gz(gz, limits) {
            Ok(u) => panic!("expected a refusal, unpacked {u:?}"),
            Err(e) => e,
        };
        self.assert_clean();
        err
    }

    fn assert_clean(&self) {
        assert!(!self.dest().exists(), "the destination was left behind");
        let staged: Vec<_> = fs::read_dir(self.staging()).unwrap().collect();
        assert!(staged.is_empty(), "the staging dir holds {staged:?}");
        let mut beside = names(&self.root);
        // The archive under test and the plugin sources some tests make.
        for expected in ["pkg.tar.gz", "my_plugin", "out"] {
            beside.remove(expected);
        }
        assert_eq!(beside, BTreeSet::from(["staging".to_string()]));
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A tar stream written header by header, so names the `tar` builder refuses
/// (`..`, absolute paths) and any entry type can be produced.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(
        &mut self,
        name: &[u8],
        kind: EntryType,
        mode: u32,
        link: &[u8],
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if kind == EntryType::GNUSparse {
            // A well-formed sparse header (no holes), so the refusal is about
            // the type and not a parse error.
            h.as_gnu_mut().unwrap().set_real_size(data.len() as u64);
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let rem = self.0.len() % 512;
        if rem != 0 {
            self.0.resize(self.0.len() + 512 - rem, 0);
        }
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name.as_bytes(), EntryType::Regular, 0o644, b"", data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name.as_bytes(), EntryType::Directory, 0o755, b"", b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(
            name.as_bytes(),
            EntryType::Symlink,
            0o777,
            target.as_bytes(),
            b"",
        )
    }

    fn tar(&self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn gz(&self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

/// A small plugin directory with a bit of everything a package may hold.
fn plugin_dir(at: &Path) -> PathBuf {
    let dir = at.join("my_plugin");
    fs::create_dir_all(dir.join("src/helpers")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::create_dir_all(dir.join("node_modules/left-pad")).unwrap();
    fs::write(
        dir.join("node_modules/left-pad/index.js"),
        "module.exports = 1;\n",
    )
    .unwrap();
    fs::write(dir.join("manifest.yaml"), "id: my-plugin\nversion: 1.0.0\n").unwrap();
    fs::write(dir.join("src/main.py"), "print('hi')\n").unwrap();
    fs::write(dir.join("src/helpers/util.py"), "X = 1\n").unwrap();
    fs::write(dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../main.py", dir.join("src/helpers/main-link.py")).unwrap();
    dir
}

/// Adds clutter that pack and directory unpack must skip.
fn add_clutter(dir: &Path) {
    fs::create_dir_all(dir.join(".git/objects")).unwrap();
    fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::create_dir_all(dir.join("src/__pycache__")).unwrap();
    fs::write(dir.join("src/__pycache__/main.cpython-311.pyc"), [0u8; 16]).unwrap();
    fs::write(dir.join("src/stale.pyc"), [0u8; 16]).unwrap();
    fs::write(dir.join(".DS_Store"), [0u8; 8]).unwrap();
    fs::create_dir_all(dir.join("node_modules/.cache/x")).unwrap();
    fs::write(dir.join("node_modules/.cache/x/blob"), "cache").unwrap();
    fs::create_dir_all(dir.join("target/debug")).unwrap();
    fs::write(
        dir.join("target/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55",
    )
    .unwrap();
    fs::write(dir.join("target/debug/big"), [1u8; 64]).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------
// Path rules

#[test]
fn parent_component_is_refused() {
    let env = Env::new();
    let gz = RawTar::default()
        .file("ok.txt", b"fine")
        .file("../../escaped", b"pwned")
        .gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::UnsafePath { entry, problem: PathProblem::ParentComponent } if entry == "../../escaped"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`..`"), "{err}");
}

#[test]
fn absolute_path_is_refused() {
    let env = Env::new();
    // /etc/passwd exists, and files are only ever created with O_EXCL, so even
    // a broken check could not overwrite it.
    let gz = RawTar::default()
        .file("/etc/passwd", b"root::0:0::/:/bin/sh\n")
        .gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(
            &err,
            PackageError::UnsafePath {
                problem: PathProblem::Absolute,
                ..
            }
        ),
        "{err:?}"
    );

    // An absolute path into our own scratch area proves nothing is written.
    let target = env.root.join("abs-escape");
    let gz = RawTar::default()
        .file(target.to_str().unwrap(), b"pwned")
        .gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(
            &err,
            PackageError::UnsafePath {
                problem: PathProblem::Absolute,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!target.exists());
}

#[test]
fn dot_as_a_file_is_refused_but_dot_dir_is_the_root() {
    let env = Env::new();
    let err = env.refuse(&RawTar::default().file(".", b"x").gz(), &Limits::default());
    assert!(
        matches!(
            &err,
            PackageError::UnsafePath {
                problem: PathProblem::Empty,
                ..
            }
        ),
        "{err:?}"
    );

    // `tar -C dir -czf p.tar.gz .` layout: "./" then "./file".
    let gz = RawTar::default()
        .dir("./")
        .file("./manifest.yaml", b"id: x\n")
        .gz();
    let unpacked = env.unpack_gz(&gz, &Limits::default()).unwrap();
    assert_eq!(unpacked.root, env.dest());
    assert_eq!(
        fs::read(env.dest().join("manifest.yaml")).unwrap(),
        b"id: x\n"
    );
}

// ---------------------------------------------------------------------------
// Links

#[test]
fn symlink_to_absolute_path_is_refused() {
    let env = Env::new();
    let gz = RawTar::default().symlink("etc", "/etc").gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::UnsafeSymlink { entry, target, problem: LinkProblem::Absolute } if entry == "etc" && target == "/etc"),
        "{err:?}"
    );
}

#[test]
fn symlink_climbing_out_is_refused() {
    let env = Env::new();
    let gz = RawTar::default().symlink("a", "../..").gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(
            &err,
            PackageError::UnsafeSymlink {
                problem: LinkProblem::Escapes,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn entry_through_a_symlinked_dir_is_refused() {
    let env = Env::new();
    for gz in [
        RawTar::default()
            .symlink("link", ".")
            .file("link/x", b"x")
            .gz(),
        RawTar::default()
            .symlink("link", ".")
            .file("link/link/x", b"x")
            .gz(),
        RawTar::default()
            .dir("d")
            .symlink("d/up", "..")
            .dir("d/up/sub")
            .gz(),
    ] {
        let err = env.refuse(&gz, &Limits::default());
        assert!(
            matches!(&err, PackageError::ThroughSymlink { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}

#[test]
fn link_to_tmp_then_file_under_it_is_refused() {
    let env = Env::new();
    let gz = RawTar::default()
        .symlink("dir", "/tmp")
        .file("dir/x", b"pwned")
        .gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::UnsafeSymlink { entry, problem: LinkProblem::Absolute, .. } if entry == "dir"),
        "{err:?}"
    );
    // `/tmp/x` may exist for other reasons (even as a directory): only "pwned" in it counts.
    assert!(fs::read("/tmp/x").map_or(true, |bytes| bytes != b"pwned"));
}

#[test]
fn link_escaping_through_another_link_is_refused() {
    let env = Env::new();
    // `x -> d/l/..` is `d` lexically, but `d/l` is `..`, so it is the parent.
    let gz = RawTar::default()
        .dir("d")
        .symlink("x", "d/l/..")
        .symlink("d/l", "..")
        .gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::UnsafeSymlink { entry, problem: LinkProblem::Escapes, .. } if entry == "x"),
        "{err:?}"
    );
}

#[test]
fn links_inside_the_tree_are_kept() {
    let env = Env::new();
    let gz = RawTar::default()
        .dir("d")
        .file("d/f", b"data")
        .symlink("d/l", "f")
        .symlink("top", "d/l")
        .symlink("d/up", "../d")
        .gz();
    let u = env.unpack_gz(&gz, &Limits::default()).unwrap();
    assert_eq!(fs::read_link(u.root.join("top")).unwrap(), Path::new("d/l"));
    assert_eq!(fs::read(u.root.join("top")).unwrap(), b"data");
}

#[test]
fn hard_links_are_refused() {
    let env = Env::new();
    let gz = RawTar::default()
        .file("a", b"data")
        .entry(b"b", EntryType::Link, 0o644, b"a", b"")
        .gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::HardLink { entry, target } if entry == "b" && target == "a"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Entry types, duplicates, modes

#[test]
fn devices_fifos_sparse_and_unknown_types_are_refused() {
    let env = Env::new();
    for (kind, words) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "FIFO"),
        (EntryType::GNUSparse, "sparse"),
        (EntryType::new(b'X'), "unknown type `X`"),
    ] {
        let gz = RawTar::default()
            .file("ok", b"x")
            .entry(b"dev", kind, 0o644, b"", b"")
            .gz();
        let err = env.refuse(&gz, &Limits::default());
        match &err {
            PackageError::SpecialFile { entry, kind } => {
                assert_eq!(entry, "dev");
                assert!(kind.contains(words), "{kind}");
            }
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[test]
fn duplicate_paths_are_refused() {
    let env = Env::new();
    let gz = RawTar::default().file("a", b"one").file("a", b"two").gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::Duplicate { entry } if entry == "a"),
        "{err:?}"
    );

    let gz = RawTar::default().dir("a").file("./a", b"two").gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(matches!(&err, PackageError::Duplicate { .. }), "{err:?}");

    let gz = RawTar::default().file("a", b"x").file("a/b", b"y").gz();
    let err = env.refuse(&gz, &Limits::default());
    assert!(
        matches!(&err, PackageError::ParentNotDirectory { parent, .. } if parent == "a"),
        "{err:?}"
    );

    // A directory repeated, or named after its contents, replaces nothing.
    let gz = RawTar::default().file("a/b", b"y").dir("a").dir("a/").gz();
    env.unpack_gz(&gz, &Limits::default()).unwrap();
}

#[test]
fn setuid_setgid_and_sticky_bits_are_stripped_and_reported() {
    let env = Env::new();
    let gz = RawTar::default()
        .entry(b"suid", EntryType::Regular, 0o4755, b"", b"x")
        .entry(b"sgid", EntryType::Regular, 0o2644, b"", b"x")
        .entry(b"d", EntryType::Directory, 0o1777, b"", b"")
        .entry(b"plain", EntryType::Regular, 0o666, b"", b"x")
        .gz();
    let u = env.unpack_gz(&gz, &Limits::default()).unwrap();
    assert_eq!(mode_of(&u.root.join("suid")), 0o755);
    assert_eq!(mode_of(&u.root.join("sgid")), 0o644);
    assert_eq!(mode_of(&u.root.join("d")) & 0o7000, 0);
    assert_eq!(mode_of(&u.root.join("plain")), 0o644);
    assert_eq!(u.stripped_modes, ["suid", "sgid", "d"]);
}

#[test]
fn control_characters_in_names_are_escaped_in_errors() {
    let env = Env::new();
    let gz = RawTar::default().file("../\x1b[2Jboom", b"x").gz();
    let err = env.refuse(&gz, &Limits::default());
    let text = err.to_string();
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("\\u{1b}[2Jboom"), "{text}");
}

// ---------------------------------------------------------------------------
// Limits

/// 1 GiB of zeros in one entry, gzipped as it is generated (about 1 MiB).
fn zero_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let gz = GzEncoder::new(Vec::new(), Compression::fast());
        let mut builder = tar::Builder::new(gz);
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(1 << 30);
        builder
            .append_data(&mut h, "zeros", io::repeat(0).take(1 << 30))
            .unwrap();
        let bomb = builder.into_inner().unwrap().finish().unwrap();
        assert!(bomb.len() < 8 << 20, "bomb is {} bytes", bomb.len());
        bomb
    })
}

#[test]
fn gigabyte_bomb_is_refused_with_default_limits() {
    let env = Env::new();
    let err = env.refuse(zero_bomb(), &Limits::default());
    let limit = err
        .limit()
        .unwrap_or_else(|| panic!("not a limit: {err:?}"));
    let text = err.to_string();
    assert!(text.contains(limit.field()), "{text}");
    assert!(
        text.contains(limit.flag()) && text.contains(limit.env_var()),
        "{text}"
    );
}

#[test]
fn gigabyte_bomb_is_stopped_early_by_the_ratio() {
    let env = Env::new();
    // With the size limit out of the way, only the streaming ratio check can
    // stop it, and it must do so long before the gigabyte is written.
    let limits = Limits {
        max_unpacked_bytes: 4 << 30,
        ..Limits::default()
    };
    let err = env.refuse(zero_bomb(), &limits);
    match &err {
        PackageError::RatioExceeded {
            entry,
            max_ratio,
            unpacked,
            compressed,
        } => {
            assert_eq!(entry, "zeros");
            assert_eq!(*max_ratio, 200);
            assert!(
                *unpacked < 16 << 20,
                "read {unpacked} bytes before stopping"
            );
            assert!(*unpacked > 200 * *compressed);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("--max-ratio"), "{err}");
}

#[test]
fn unpacked_bytes_are_counted_across_files() {
    let env = Env::new();
    let limits = Limits {
        max_unpacked_bytes: 10_000,
        ..Limits::default()
    };
    let chunk = vec![7u8; 4000];
    let gz = RawTar::default()
        .file("a", &chunk)
        .file("b", &chunk)
        .file("c", &chunk)
        .gz();
    let err = env.refuse(&gz, &limits);
    assert!(
        matches!(&err, PackageError::LimitExceeded { entry, limit: Limit::UnpackedBytes, max: 10_000, observed: 12_000 } if entry == "c"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("PLUGD_MAX_UNPACKED_BYTES"),
        "{err}"
    );

    // Exactly at the limit is fine.
    let gz = RawTar::default().file("a", &chunk).file("b", &chunk).gz();
    let limits = Limits {
        max_unpacked_bytes: 8_000,
        ..Limits::default()
    };
    assert_eq!(env.unpack_gz(&gz, &limits).unwrap().bytes, 8_000);
}

#[test]
fn too_many_files_are_refused() {
    let env = Env::new();
    let limits = Limits {
        max_files: 10,
        ..Limits::default()
    };
    let mut tar = RawTar::default();
    for i in 0..11 {
        tar.file(&format!("f{i}"), b"x");
    }
    let err = env.refuse(&tar.gz(), &limits);
    assert!(
        matches!(&err, PackageError::LimitExceeded { entry, limit: Limit::Files, max: 10, .. } if entry == "f10"),
        "{err:?}"
    );

    // Implicitly created parent directories count too.
    let mut tar = RawTar::default();
    tar.file("a/b/c/d/e/f/g/h/i/j/k", b"x");
    let err = env.refuse(&tar.gz(), &limits);
    assert_eq!(err.limit(), Some(Limit::Files), "{err:?}");
}

#[test]
fn too_deep_is_refused() {
    let env = Env::new();
    let deep = vec!["d"; 33].join("/");
    let err = env.refuse(
        &RawTar::default().file(&deep, b"x").gz(),
        &Limits::default(),
    );
    assert!(
        matches!(
            &err,
            PackageError::LimitExceeded {
                limit: Limit::Depth,
                max: 32,
                observed: 33,
                ..
            }
        ),
        "{err:?}"
    );
    let ok = vec!["d"; 32].join("/");
    env.unpack_gz(&RawTar::default().file(&ok, b"x").gz(), &Limits::default())
        .unwrap();
}

#[test]
fn long_paths_work_until_the_limit() {
    let env = Env::new();
    // Longer than a tar header's 100 bytes: the builder writes GNU long names.
    let long_ok: String = (0..6)
        .map(|i| format!("{i}{}", "x".repeat(60)))
        .collect::<Vec<_>>()
        .join("/");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, &long_ok, &b"ok"[..]).unwrap();
    let gz = gzip(&b.into_inner().unwrap());
    env.unpack_gz(&gz, &Limits::default()).unwrap();
    assert_eq!(fs::read(env.dest().join(&long_ok)).unwrap(), b"ok");
    fs::remove_dir_all(env.dest()).unwrap();

    let too_long = "y".repeat(1100);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, &too_long, &b"no"[..]).unwrap();
    let err = env.refuse(&gzip(&b.into_inner().unwrap()), &Limits::default());
    assert!(
        matches!(
            &err,
            PackageError::LimitExceeded {
                limit: Limit::PathBytes,
                max: 1024,
                observed: 1100,
                ..
            }
        ),
        "{err:?}"
    );
    // The shown entry name is shortened.
    assert!(err.to_string().contains("(1100 bytes)"), "{err}");
}

// ---------------------------------------------------------------------------
// Damaged streams and non-packages

fn sample_gz() -> Vec<u8> {
    // Incompressible content so damage lands in real data.
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    RawTar::default()
        .file("manifest.yaml", b"id: x\n")
        .file("noise.bin", &noise)
        .gz()
}

#[test]
fn truncated_gzip_is_refused() {
    let env = Env::new();
    let gz = sample_gz();
    for cut in [gz.len() / 2, gz.len() - 4, 20] {
        let err = env.refuse(&gz[..cut], &Limits::default());
        assert!(
            matches!(&err, PackageError::Corrupt { .. }),
            "cut {cut}: {err:?}"
        );
        assert!(err.to_string().contains("truncated or damaged"), "{err}");
    }
}

#[test]
fn corrupt_gzip_is_refused() {
    let env = Env::new();
    let mut gz = sample_gz();
    let mid = gz.len() / 2;
    gz[mid] ^= 0x55;
    let err = env.refuse(&gz, &Limits::default());
    assert!(matches!(&err, PackageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn truncated_tar_inside_valid_gzip_is_refused() {
    let env = Env::new();
    let mut tar = RawTar::default();
    tar.file("a", &[1u8; 2000]);
    let cut = &tar.0[..512 + 700];
    let err = env.refuse(&gzip(cut), &Limits::default());
    assert!(
        matches!(&err, PackageError::Corrupt { detail, .. } if detail.contains("700 of its 2000")),
        "{err:?}"
    );
}

#[test]
fn bad_header_checksum_is_refused() {
    let env = Env::new();
    let mut tar = RawTar::default().file("a", b"x").tar();
    tar[0] = b'b';
    let err = env.refuse(&gzip(&tar), &Limits::default());
    assert!(matches!(&err, PackageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn data_after_the_end_marker_is_refused() {
    let env = Env::new();
    let mut tar = RawTar::default().file("a", b"x").tar();
    tar.extend_from_slice(b"hidden payload");
    let err = env.refuse(&gzip(&tar), &Limits::default());
    assert!(
        matches!(&err, PackageError::Corrupt { detail, .. } if detail.contains("end-of-archive")),
        "{err:?}"
    );
    // Zero padding (GNU tar pads to 10 KiB records) is normal.
    let mut tar = RawTar::default().file("a", b"x").tar();
    tar.resize(10240, 0);
    env.unpack_gz(&gzip(&tar), &Limits::default()).unwrap();
}

#[test]
fn not_gzip_at_all_is_refused() {
    let env = Env::new();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("notes.txt", b"just some text\n".to_vec(), "gzip signature"),
        ("p.zip", b"PK\x03\x04rest of a zip".to_vec(), "zip archive"),
        (
            "p.tar",
            RawTar::default().file("a", b"x").tar(),
            "uncompressed tar",
        ),
        ("empty.tar.gz", Vec::new(), "empty file"),
    ];
    for (name, bytes, words) in cases {
        let path = env.root.join(name);
        fs::write(&path, bytes).unwrap();
        let err = Source::detect(&path).unwrap_err();
        assert!(matches!(&err, PackageError::NotAPackage { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(words), "{text}");
        assert!(
            text.contains(".tar.gz") && text.contains("directory"),
            "{text}"
        );
        fs::remove_file(&path).unwrap();
    }

    // Handed straight to unpack, a non-gzip file is a corrupt archive.
    let err = env.refuse(b"just some text\n", &Limits::default());
    assert!(matches!(&err, PackageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn detect_recognises_directories_and_archives() {
    let env = Env::new();
    assert_eq!(
        Source::detect(&env.staging()).unwrap(),
        Source::Dir(env.staging())
    );
    fs::write(env.archive(), sample_gz()).unwrap();
    assert_eq!(
        Source::detect(&env.archive()).unwrap(),
        Source::Archive(env.archive())
    );
    let err = Source::detect(&env.root.join("missing")).unwrap_err();
    assert!(matches!(&err, PackageError::Io { .. }), "{err:?}");
}

#[test]
fn existing_destination_is_refused_and_left_alone() {
    let env = Env::new();
    fs::create_dir(env.dest()).unwrap();
    fs::write(env.dest().join("keep"), "mine").unwrap();
    fs::write(env.archive(), sample_gz()).unwrap();
    let err = unpack(
        &Source::Archive(env.archive()),
        &env.dest(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PackageError::DestinationExists { .. }),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(env.dest().join("keep")).unwrap(), "mine");
}

// ---------------------------------------------------------------------------
// Layouts

#[test]
fn single_top_dir_becomes_the_root() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    // What `tar -czf my_plugin.tar.gz my_plugin/` makes, real owners and times included.
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    b.follow_symlinks(false);
    b.append_dir_all("my_plugin", &src).unwrap();
    let gz = b.into_inner().unwrap().finish().unwrap();
    let u = env.unpack_gz(&gz, &Limits::default()).unwrap();
    assert_eq!(u.root, env.dest().join("my_plugin"));
    assert!(u.root.join("manifest.yaml").is_file());
    assert_eq!(tree_digest(&u.root).unwrap(), tree_digest(&src).unwrap());
    fs::remove_dir_all(env.dest()).unwrap();

    // Anything beside the directory, and the root stays `dest`.
    let gz = RawTar::default()
        .file("my_plugin/manifest.yaml", b"x")
        .file("README", b"y")
        .gz();
    assert_eq!(
        env.unpack_gz(&gz, &Limits::default()).unwrap().root,
        env.dest()
    );
    fs::remove_dir_all(env.dest()).unwrap();

    // A lone link to a directory is not a top directory.
    let gz = RawTar::default().symlink("only", ".").gz();
    assert_eq!(
        env.unpack_gz(&gz, &Limits::default()).unwrap().root,
        env.dest()
    );
}

#[test]
fn pax_global_headers_and_old_style_dirs_are_understood() {
    let env = Env::new();
    let record = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let gz = RawTar::default()
        .entry(
            b"pax_global_header",
            EntryType::XGlobalHeader,
            0o666,
            b"",
            record,
        )
        .entry(b"olddir/", EntryType::Regular, 0o755, b"", b"")
        .file("olddir/f", b"x")
        .gz();
    let u = env.unpack_gz(&gz, &Limits::default()).unwrap();
    assert_eq!(u.root, env.dest().join("olddir"));
    assert_eq!(u.files, 1);
}

// ---------------------------------------------------------------------------
// Directory sources

#[test]
fn directory_source_is_copied_without_clutter() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let clean = tree_digest(&src).unwrap();
    add_clutter(&src);
    assert_ne!(
        tree_digest(&src).unwrap(),
        clean,
        "clutter must change a raw digest"
    );
    let u = unpack(&Source::Dir(src.clone()), &env.dest(), &Limits::default()).unwrap();
    assert_eq!(u.root, env.dest());
    assert_eq!(tree_digest(&u.root).unwrap(), clean);
    assert_eq!(
        names(&u.root),
        BTreeSet::from(
            ["empty", "manifest.yaml", "node_modules", "run.sh", "src"].map(String::from)
        )
    );
    assert_eq!(mode_of(&u.root.join("run.sh")), 0o755);
    assert_eq!(
        fs::read_link(u.root.join("src/helpers/main-link.py")).unwrap(),
        Path::new("../main.py")
    );
    assert_eq!(u.files, 5);
}

#[test]
fn directory_source_refuses_fifos_and_escaping_links() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let err = unpack(&Source::Dir(src.clone()), &env.dest(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, PackageError::SpecialFile { entry, .. } if entry == "pipe"),
        "{err:?}"
    );
    env.assert_clean();
    fs::remove_file(src.join("pipe")).unwrap();

    symlink("../../..", src.join("src/out")).unwrap();
    let err = unpack(&Source::Dir(src.clone()), &env.dest(), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            PackageError::UnsafeSymlink {
                problem: LinkProblem::Escapes,
                ..
            }
        ),
        "{err:?}"
    );
    env.assert_clean();
}

#[test]
fn directory_source_obeys_limits() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let limits = Limits {
        max_files: 3,
        ..Limits::default()
    };
    let err = unpack(&Source::Dir(src), &env.dest(), &limits).unwrap_err();
    assert_eq!(err.limit(), Some(Limit::Files), "{err:?}");
    env.assert_clean();
}

#[test]
fn directory_source_cannot_be_copied_into_itself() {
    let env = Env::new();
    let dest = env.root.join("inner");
    let err = unpack(&Source::Dir(env.root.clone()), &dest, &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, PackageError::DestinationInsideSource { .. }),
        "{err:?}"
    );
    assert!(!dest.exists());
}

// ---------------------------------------------------------------------------
// Pack and digests

#[test]
fn pack_unpack_round_trip_keeps_the_digest() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let clean = tree_digest(&src).unwrap();
    add_clutter(&src);
    let packed = pack(&src, &env.archive()).unwrap();
    assert_eq!(packed.path, env.archive());
    assert_eq!(packed.digest, clean);
    assert_eq!(packed.files, 5);
    assert_eq!(
        packed.archive_sha256,
        Digest::of_bytes(&fs::read(env.archive()).unwrap())
    );
    assert_eq!(
        plugd_package::file_digest(&env.archive()).unwrap(),
        packed.archive_sha256
    );

    let source = Source::detect(&env.archive()).unwrap();
    let u = unpack(&source, &env.dest(), &Limits::default()).unwrap();
    assert_eq!(u.root, env.dest());
    assert_eq!(tree_digest(&u.root).unwrap(), packed.digest);
    assert_eq!(u.files, packed.files);
    assert_eq!(u.bytes, packed.bytes);
    assert!(!u.root.join(".git").exists() && !u.root.join("target").exists());
    assert!(u.root.join("empty").is_dir());

    // And the directory route to the same place.
    let via_dir = env.staging().join("via-dir");
    let d = unpack(&Source::Dir(src), &via_dir, &Limits::default()).unwrap();
    assert_eq!(tree_digest(&d.root).unwrap(), packed.digest);
}

#[test]
fn digest_follows_content_and_exec_bit_not_times() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let base = tree_digest(&src).unwrap();

    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for f in ["manifest.yaml", "src/main.py", "run.sh"] {
        fs::File::options()
            .write(true)
            .open(src.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert_eq!(tree_digest(&src).unwrap(), base, "mtimes must not count");

    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    let no_exec = tree_digest(&src).unwrap();
    assert_ne!(no_exec, base, "the exec bit must count");
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        tree_digest(&src).unwrap(),
        base,
        "only the exec bit, not the mode"
    );

    fs::write(src.join("src/main.py"), "print('hI')\n").unwrap();
    assert_ne!(
        tree_digest(&src).unwrap(),
        base,
        "one changed byte must count"
    );
}

#[test]
fn pack_is_byte_identical_across_runs() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let a = env.root.join("a.tar.gz");
    let b = env.root.join("b.tar.gz");
    pack(&src, &a).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(src.join("manifest.yaml"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    pack(&src, &b).unwrap();
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    assert_eq!(mode_of(&a), 0o644);
}

#[test]
fn pack_into_the_plugin_directory_skips_itself() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let out = src.join("my-plugin-1.0.0.tar.gz");
    let first = pack(&src, &out).unwrap();
    let first_bytes = fs::read(&out).unwrap();
    // Again, now that the archive exists inside the directory.
    let second = pack(&src, &out).unwrap();
    assert_eq!(first, second);
    assert_eq!(fs::read(&out).unwrap(), first_bytes);
    let u = unpack(
        &Source::Archive(out.clone()),
        &env.dest(),
        &Limits::default(),
    )
    .unwrap();
    assert!(!u.root.join("my-plugin-1.0.0.tar.gz").exists());
    let leftovers: Vec<_> = names(&src)
        .into_iter()
        .filter(|n| n.contains("plugd-pack"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn pack_refuses_what_unpack_refuses_and_leaves_nothing() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let outdir = env.root.join("out");
    fs::create_dir(&outdir).unwrap();
    let out = outdir.join("p.tar.gz");

    symlink("/etc", src.join("etc")).unwrap();
    let err = pack(&src, &out).unwrap_err();
    assert!(
        matches!(
            &err,
            PackageError::UnsafeSymlink {
                problem: LinkProblem::Absolute,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(names(&outdir).is_empty(), "{:?}", names(&outdir));
    fs::remove_file(src.join("etc")).unwrap();

    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("src/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let err = pack(&src, &out).unwrap_err();
    assert!(
        matches!(&err, PackageError::SpecialFile { entry, .. } if entry == "src/pipe"),
        "{err:?}"
    );
    assert!(names(&outdir).is_empty(), "{:?}", names(&outdir));
    fs::remove_file(src.join("src/pipe")).unwrap();

    // A previous good archive survives a failed pack untouched.
    pack(&src, &out).unwrap();
    let good = fs::read(&out).unwrap();
    symlink("../../..", src.join("src/up")).unwrap();
    pack(&src, &out).unwrap_err();
    assert_eq!(fs::read(&out).unwrap(), good);
    assert_eq!(names(&outdir), BTreeSet::from(["p.tar.gz".to_string()]));
}

#[test]
fn hard_linked_files_are_packed_as_copies() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    fs::hard_link(src.join("src/main.py"), src.join("src/again.py")).unwrap();
    pack(&src, &env.archive()).unwrap();
    let u = unpack(
        &Source::Archive(env.archive()),
        &env.dest(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        fs::read(u.root.join("src/again.py")).unwrap(),
        b"print('hi')\n"
    );
}

#[test]
fn make_read_only_and_remove_tree() {
    let env = Env::new();
    let src = plugin_dir(&env.root);
    let u = unpack(&Source::Dir(src), &env.dest(), &Limits::default()).unwrap();
    let before = tree_digest(&u.root).unwrap();
    plugd_package::make_read_only(&u.root).unwrap();
    assert_eq!(mode_of(&u.root), 0o555);
    assert_eq!(mode_of(&u.root.join("src")), 0o555);
    assert_eq!(mode_of(&u.root.join("manifest.yaml")), 0o444);
    assert_eq!(mode_of(&u.root.join("run.sh")), 0o555);
    assert_eq!(tree_digest(&u.root).unwrap(), before);
    // The link's target was not touched through the link.
    assert_eq!(mode_of(&u.root.join("src/main.py")), 0o444);

    plugd_package::remove_tree(&env.dest()).unwrap();
    assert!(!env.dest().exists());
    plugd_package::remove_tree(&env.dest()).unwrap();
}

#[test]
fn digest_serialises_as_its_text_form() {
    let d = Digest::of_bytes(b"plugd");
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, format!("\"{d}\""));
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    let err = serde_json::from_str::<Digest>("\"sha256:nope\"").unwrap_err();
    assert!(err.to_string().contains("expected `sha256:`"), "{err}");
}
