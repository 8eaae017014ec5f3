//! The package unpacker: the input is written as a `.tar.gz` (raw, so the gzip
//! layer is attacked) or gzip-wrapped first (so the fuzzer reaches the tar
//! parser directly, as a `.tar`), then unpacked under small limits. Any input
//! must unpack inside the destination or be refused; never a panic, never a
//! file outside the destination.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use plugd_package::{Limits, Source};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("pkg.tar.gz");
    let bytes = if mode & 1 == 0 {
        body.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).expect("gzip in memory");
        gz.finish().expect("gzip in memory")
    };
    std::fs::write(&archive, bytes).expect("write archive");
    let limits = Limits {
        max_unpacked_bytes: 1 << 20,
        max_files: 64,
        max_ratio: 1000,
        max_path_bytes: 256,
        max_depth: 8,
    };
    let dest = dir.path().join("out");
    match plugd_package::unpack(&Source::Archive(archive), &dest, &limits) {
        Ok(unpacked) => {
            assert!(unpacked.root.starts_with(&dest), "root escaped: {:?}", unpacked.root);
            let _ = plugd_package::tree_digest(&unpacked.root);
        }
        Err(_) => assert!(!dest.exists(), "a refused unpack left {dest:?} behind"),
    }
    // Locked trees must still be removable.
    let _ = plugd_package::remove_tree(&dest);
});
