//! Package-level checks: mode bits, native binaries the manifest does not declare, and files whose
//! content contradicts their extension (a `.py` that is an ELF executable, a `.png` that is not).

use std::fs::Metadata;
use std::os::unix::fs::PermissionsExt;

use crate::{Confidence, Finding, ScanContext, Severity};

fn finding(id: &str, sev: Severity, file: &str, msg: String) -> Finding {
    Finding {
        rule_id: id.into(),
        severity: sev,
        confidence: Confidence::High,
        file: file.into(),
        line: 0,
        column: 0,
        message: msg,
        snippet: String::new(),
    }
}

pub(crate) fn check_mode(file: &str, meta: &Metadata, out: &mut Vec<Finding>) {
    let mode = meta.permissions().mode();
    if mode & 0o6000 != 0 {
        let which = if mode & 0o4000 != 0 {
            "setuid"
        } else {
            "setgid"
        };
        out.push(finding(
            "plugd-pkg-setuid",
            Severity::High,
            file,
            format!(
                "has the {which} bit (mode {:o}); plugins never need it, remove it",
                mode & 0o7777
            ),
        ));
    }
    // The sticky bit makes a world-writable directory like /tmp safe-ish; still report files.
    if mode & 0o002 != 0 && !(meta.is_dir() && mode & 0o1000 != 0) {
        out.push(finding(
            "plugd-pkg-world-writable",
            Severity::Medium,
            file,
            format!(
                "is world-writable (mode {:o}); use 644 for files, 755 for directories",
                mode & 0o7777
            ),
        ));
    }
}

/// What the first bytes say a file is, for the magic numbers that matter here.
fn sniff(src: &[u8]) -> Option<&'static str> {
    let m = |p: &[u8]| src.starts_with(p);
    if m(b"\x7fELF") {
        Some("ELF executable")
    } else if m(&[0xfe, 0xed, 0xfa, 0xce])
        || m(&[0xfe, 0xed, 0xfa, 0xcf])
        || m(&[0xce, 0xfa, 0xed, 0xfe])
        || m(&[0xcf, 0xfa, 0xed, 0xfe])
    {
        Some("Mach-O executable")
    } else if m(b"MZ") && src.len() >= 64 {
        Some("PE/Windows executable")
    } else if m(b"\x89PNG\r\n\x1a\n") {
        Some("PNG image")
    } else if m(b"PK\x03\x04") {
        Some("zip archive")
    } else if m(&[0x1f, 0x8b]) {
        Some("gzip data")
    } else if m(b"%PDF") {
        Some("PDF")
    } else if m(b"\xff\xd8\xff") {
        Some("JPEG image")
    } else {
        None
    }
}

fn is_native(kind: &str) -> bool {
    kind.ends_with("executable")
}

pub(crate) fn check_content(file: &str, src: &[u8], ctx: &ScanContext, out: &mut Vec<Finding>) {
    let kind = sniff(src);
    if let Some(k) = kind.filter(|k| is_native(k)) {
        let declared = ctx
            .declared_binaries
            .iter()
            .any(|b| b.trim_start_matches("./") == file);
        if !declared {
            out.push(finding(
                "plugd-pkg-undeclared-binary",
                Severity::High,
                file,
                format!("is a native {k} the manifest does not declare; declare it or remove it"),
            ));
        }
    }
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let text_ext = matches!(
        ext.as_str(),
        "py" | "sh"
            | "bash"
            | "r"
            | "js"
            | "mjs"
            | "cjs"
            | "txt"
            | "md"
            | "json"
            | "yaml"
            | "yml"
            | "toml"
            | "cfg"
            | "ini"
            | "csv"
            | "html"
            | "css"
            | "xml"
    );
    let expected: Option<&str> = match ext.as_str() {
        "png" => Some("PNG image"),
        "jpg" | "jpeg" => Some("JPEG image"),
        "zip" | "whl" | "jar" => Some("zip archive"),
        "gz" | "tgz" => Some("gzip data"),
        "pdf" => Some("PDF"),
        _ => None,
    };
    let mismatch = if text_ext {
        // NUL bytes in the first 8 KiB: not text, whatever the extension says.
        kind.map(str::to_string).or_else(|| {
            src.iter()
                .take(8192)
                .any(|&b| b == 0)
                .then(|| "binary data".to_string())
        })
    } else if let Some(e) = expected {
        (kind != Some(e)).then(|| kind.unwrap_or("something else").to_string())
    } else {
        None
    };
    if let Some(actual) = mismatch {
        out.push(finding(
            "plugd-pkg-ext-mismatch",
            Severity::Medium,
            file,
            format!("has extension .{ext} but contains {actual}; rename it or remove it"),
        ));
    }
}
