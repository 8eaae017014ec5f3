//! Malicious packages: each is refused with a clear message, the store is left
//! exactly as it was, and nothing is written outside the staging area.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::util::Env;

const MANIFEST: &[u8] =
    b"id: evil\nname: evil\nversion: 1.0.0\nruntime: ndjson\nlanguage: bash\nentry_point: run.sh\n";

/// One raw tar entry; names are written into the header bytes directly so the
/// tar builder's own path checks cannot sanitise the attack away.
struct Raw<'a> {
    name: &'a str,
    kind: EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: EntryType::Regular,
        link: None,
        data,
    }
}

fn archive(env: &Env, name: &str, entries: &[Raw]) -> PathBuf {
    let path = env.path(name);
    let gz = GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        Compression::default(),
    );
    let mut builder = tar::Builder::new(gz);
    for entry in [
        file("manifest.yaml", MANIFEST),
        file("run.sh", b"#!/bin/bash\n"),
    ]
    .iter()
    .chain(entries)
    {
        let mut header = Header::new_gnu();
        let name = &mut header.as_gnu_mut().unwrap().name;
        name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_mode(0o644);
        header.set_size(entry.data.len() as u64);
        if let Some(link) = entry.link {
            let target = &mut header.as_gnu_mut().unwrap().linkname;
            target[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    path
}

/// Installs `package`, expecting a refusal whose message contains `needle`, and
/// checks that the home holds nothing more than before and the store is empty.
fn refused(env: &Env, package: &Path, needle: &str) {
    env.ok(&["list"]); // create the home layout first, so before/after compare like with like
    let before = env.home_tree();
    let run = env.fails(&["install", package.to_str().unwrap()]);
    assert!(
        run.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "refusal should mention {needle:?}:\n{}",
        run.stderr
    );
    assert_eq!(
        env.home_tree(),
        before,
        "the refused install left files behind"
    );
    assert_eq!(env.json(&["list"])["plugins"].as_array().unwrap().len(), 0);
    assert!(
        env.json(&["history"])["executions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn parent_directory_escape_is_refused() {
    let env = Env::new();
    let pkg = archive(
        &env,
        "dotdot.tar.gz",
        &[
            file("../escape", b"pwned"),
            file("a/../../../escape2", b"pwned"),
        ],
    );
    refused(&env, &pkg, "..");
    for probe in [
        env.home.path().join("escape"),
        env.scratch.path().join("escape"),
        env.home.path().join("staging/escape"),
    ] {
        assert!(!probe.exists(), "{} was written", probe.display());
    }
}

#[test]
fn absolute_paths_are_refused() {
    let env = Env::new();
    let target = env.path("absolute-target");
    let name = target.to_str().unwrap().to_string();
    let pkg = archive(&env, "abs.tar.gz", &[file(&name, b"pwned")]);
    refused(&env, &pkg, "absolute");
    assert!(!target.exists());
}

#[test]
fn a_symlink_to_etc_is_refused() {
    let env = Env::new();
    let link = Raw {
        name: "etc",
        kind: EntryType::Symlink,
        link: Some("/etc"),
        data: b"",
    };
    let through = file("etc/plugd-was-here", b"pwned");
    let pkg = archive(&env, "symlink.tar.gz", &[link, through]);
    refused(&env, &pkg, "link");
    assert!(!Path::new("/etc/plugd-was-here").exists());
}

#[test]
fn hard_links_and_devices_are_refused() {
    let env = Env::new();
    let hard = Raw {
        name: "hard",
        kind: EntryType::Link,
        link: Some("/etc/passwd"),
        data: b"",
    };
    refused(&env, &archive(&env, "hard.tar.gz", &[hard]), "link");
    let dev = Raw {
        name: "null",
        kind: EntryType::Char,
        link: None,
        data: b"",
    };
    refused(&env, &archive(&env, "dev.tar.gz", &[dev]), "device");
    let fifo = Raw {
        name: "pipe",
        kind: EntryType::Fifo,
        link: None,
        data: b"",
    };
    refused(&env, &archive(&env, "fifo.tar.gz", &[fifo]), "fifo");
}

#[test]
fn a_gigabyte_bomb_is_stopped_early() {
    let env = Env::new();
    // 1 GiB of zeros compresses to about 1 MiB: the header claims the real size,
    // so only counting what is actually written stops it.
    let path = env.path("bomb.tar.gz");
    let gz = GzEncoder::new(std::fs::File::create(&path).unwrap(), Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in [
        ("manifest.yaml", MANIFEST),
        ("run.sh", b"#!/bin/bash\n" as &[u8]),
    ] {
        let mut header = Header::new_gnu();
        header.set_path(name).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    const GIB: u64 = 1 << 30;
    let mut header = Header::new_gnu();
    header.set_path("zeros.bin").unwrap();
    header.set_size(GIB);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append(&header, std::io::Read::take(std::io::repeat(0), GIB))
        .unwrap();
    let mut gz = builder.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 16 << 20);
    refused(&env, &path, "limit");
}

#[test]
fn a_corrupt_archive_is_refused() {
    let env = Env::new();
    let good = archive(&env, "good.tar.gz", &[]);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = env.path("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    env.ok(&["list"]);
    let before = env.home_tree();
    let run = env.fails(&["install", truncated.to_str().unwrap()]);
    assert!(!run.stderr.is_empty());
    assert_eq!(env.home_tree(), before);
    let not_gzip = env.path("plain.txt");
    std::fs::write(&not_gzip, "hello").unwrap();
    let run = env.fails(&["install", not_gzip.to_str().unwrap()]);
    assert!(run.stderr.contains("plain.txt"), "{}", run.stderr);
}

#[test]
fn depth_and_path_limits_are_named_and_can_be_raised() {
    let env = Env::new();
    let dir = env.plugin(
        "deep",
        &crate::util::python_fixture("deep", "1.0.0", "reply(req)"),
    );
    let mut nested = dir.clone();
    for _ in 0..40 {
        nested.push("d");
    }
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join("leaf.txt"), "x").unwrap();
    let dir = dir.to_str().unwrap();

    let run = env.fails(&["install", dir]);
    assert!(run.stderr.contains("--max-depth"), "{}", run.stderr);
    let run = env.fails(&[
        "install",
        dir,
        "--max-depth",
        "64",
        "--max-path-bytes",
        "40",
    ]);
    assert!(run.stderr.contains("--max-path-bytes"), "{}", run.stderr);
    env.ok(&["install", dir, "--max-depth", "64"]);
}
