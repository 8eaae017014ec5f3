//! The signature and public-key readers (a `.minisig` beside a package and a key
//! given to `plugd key trust` are both outside input).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = plugd_package::SignatureFile::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = plugd_package::PublicKey::parse(text);
    }
});
