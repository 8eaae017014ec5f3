//! The manifest loader, every dialect: the first byte picks the file name
//! (which picks YAML or JSON and the dialect rules), the rest is the manifest.
//! Any input must give a `Manifest` or a `LoadError`, never a panic or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 3] = ["manifest.yaml", "manifest.json", "plugin.yaml"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[pick as usize % NAMES.len()];
    let _ = plugd_manifest::parse(bytes, Path::new(name));
});
