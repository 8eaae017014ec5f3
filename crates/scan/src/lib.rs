//! plugd's static security scanner.
//!
//! This crate owns the answer to "what does this plugin's code do that an operator should know
//! before installing it?". [`scan_dir`] walks an unpacked package, parses every source file with a
//! real parser (tree-sitter grammars for Python, Bash, R and JavaScript), runs the rules of each
//! language, the package-level checks (setuid bits, world-writable files, undeclared native
//! binaries, files whose content contradicts their extension), the manifest-vs-code checks
//! ("will be denied at run time") and, when configured, an offline OSV advisory match of the
//! declared dependencies. The result is a [`ScanReport`] of [`Finding`]s, serializable as JSON and,
//! through [`to_sarif`], as SARIF 2.1.0 for CI systems.
//!
//! Why it is built this way:
//! - Parsers, not regular expressions: `import subprocess as sp; sp.call(x, shell=True)` and
//!   `from os import system` are only recognisable once imports and aliases are resolved, which
//!   needs a syntax tree. tree-sitter is error tolerant, so a file with a syntax error is still
//!   scanned (and the error is reported as a soft error).
//! - Soft errors are collected, never fatal (ripgrep's `Partial` habit): an unreadable or oversized
//!   file lands in [`ScanReport::skipped`] and the rest of the package is still scanned, because a
//!   scanner that gives up on the first odd file is trivially evaded.
//! - The scanner takes a small [`ScanContext`] of manifest facts rather than a `Manifest`, so it
//!   does not depend on the manifest crate's evolving types; the host maps one onto the other.
//! - Every input is attacker controlled: walks never follow symlinks, file sizes are bounded, tree
//!   walks are iterative (no recursion depth an attacker can choose) and the advisory file is
//!   parsed leniently but with typed errors.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod advisory;
mod bash;
mod js;
mod package;
mod python;
mod r;
mod rules;
mod sarif;
mod tree;

pub use advisory::AdvisoryError;
pub use rules::{RULES, RuleInfo, rule_info};
pub use sarif::to_sarif;

/// How bad a finding is if it is a true positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; rarely exploitable on its own.
    Low,
    /// Exploitable in some configurations.
    Medium,
    /// Likely exploitable or a direct escape from the plugin's declared powers.
    High,
}

/// How sure the rule is that the finding is real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// A pattern that is often benign.
    Low,
    /// Probably real.
    Medium,
    /// The code certainly does this.
    High,
}

/// The trust level the plugin is being installed at (DESIGN.md's three levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Runs inside the full sandbox; no file writes outside its scratch space.
    #[default]
    Sandboxed,
    /// Runs with the permissions the operator granted.
    Trusted,
    /// Trusted and signed by a trusted maintainer key.
    Verified,
}

/// The manifest facts the manifest-vs-code and package-level rules need.
///
/// Kept as a plain struct so the scanner does not depend on the manifest crate; the host fills it
/// from the parsed manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanContext {
    /// The manifest grants network access.
    pub declared_network: bool,
    /// The manifest grants spawning processes (`script:execute` or similar).
    pub declared_process: bool,
    /// The manifest grants writing files outside the scratch space.
    pub declared_fs_write: bool,
    /// The trust level of this install.
    pub trust_level: TrustLevel,
    /// Package-relative paths of native binaries the manifest declares (e.g. `bin/tool`).
    pub declared_binaries: Vec<String>,
    /// Python requirements as declared (`requests==2.19.0`, `pyyaml>=5`, `flask`).
    pub python_deps: Vec<String>,
    /// npm dependencies as `(name, version requirement)`.
    pub npm_deps: Vec<(String, String)>,
}

/// Knobs of one scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanOptions {
    /// Files larger than this are skipped and reported in [`ScanReport::skipped`].
    pub max_file_bytes: u64,
    /// An OSV-format advisory file (one advisory, an array, or `{"vulns": [...]}`) to match the
    /// declared dependencies against. Offline: nothing is fetched.
    pub advisories: Option<PathBuf>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: 2 * 1024 * 1024,
            advisories: None,
        }
    }
}

/// One problem found in the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule id: a Bandit test id (`B602`) where the rule matches one, else `plugd-…`.
    pub rule_id: String,
    /// How bad it is.
    pub severity: Severity,
    /// How sure the rule is.
    pub confidence: Confidence,
    /// Path relative to the scanned root, `/`-separated.
    pub file: String,
    /// 1-based line (0 for findings about a whole file or dependency).
    pub line: usize,
    /// 1-based column (0 when not applicable).
    pub column: usize,
    /// One-line explanation: what is wrong and why it matters.
    pub message: String,
    /// The offending source line, trimmed and truncated.
    pub snippet: String,
}

/// A file that was not scanned, or scanned only partly, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Path relative to the scanned root.
    pub file: String,
    /// Why, in words an operator can act on.
    pub reason: String,
}

/// Findings per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    /// Number of low-severity findings.
    pub low: usize,
    /// Number of medium-severity findings.
    pub medium: usize,
    /// Number of high-severity findings.
    pub high: usize,
}

/// The outcome of [`scan_dir`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanReport {
    /// Findings, sorted by severity (highest first), then file and line.
    pub findings: Vec<Finding>,
    /// Number of files parsed by a language's rules.
    pub files_scanned: usize,
    /// Files not scanned (too large, unreadable, symlinks) or parsed with syntax errors.
    pub skipped: Vec<Skipped>,
    /// Wall time of the scan.
    pub duration: Duration,
    /// Counts by severity, kept in the serialized form so consumers need not recount.
    pub counts: SeverityCounts,
}

impl ScanReport {
    /// Counts findings by severity.
    pub fn counts(&self) -> SeverityCounts {
        let mut c = SeverityCounts::default();
        for f in &self.findings {
            match f.severity {
                Severity::Low => c.low += 1,
                Severity::Medium => c.medium += 1,
                Severity::High => c.high += 1,
            }
        }
        c
    }

    /// Whether any finding is high severity (blocks `trusted`/`verified` installs by policy).
    pub fn has_high(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::High)
    }
}

/// Source language of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Python 3.
    Python,
    /// Bash / POSIX shell.
    Bash,
    /// R.
    R,
    /// JavaScript (also `.mjs`/`.cjs`).
    JavaScript,
}

/// Picks a language by extension, then by shebang line.
pub fn detect_language(path: &Path, head: &[u8]) -> Option<Language> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("py" | "pyw") => return Some(Language::Python),
        Some("sh" | "bash") => return Some(Language::Bash),
        Some("r") => return Some(Language::R),
        Some("js" | "mjs" | "cjs") => return Some(Language::JavaScript),
        _ => {}
    }
    let first = head.split(|&b| b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?;
    let rest = first.strip_prefix("#!")?;
    // `#!/usr/bin/env python3` and `#!/bin/bash` alike: the interpreter is the last path
    // component of the first word, or the word after `env`.
    let mut words = rest.split_whitespace();
    let mut prog = words.next()?.rsplit('/').next()?;
    if prog == "env" {
        prog = words.find(|w| !w.starts_with('-'))?;
    }
    if prog.starts_with("python") {
        Some(Language::Python)
    } else if matches!(prog, "sh" | "bash" | "dash" | "zsh" | "ksh") {
        Some(Language::Bash)
    } else if prog == "Rscript" || prog == "R" {
        Some(Language::R)
    } else if prog == "node" || prog == "nodejs" {
        Some(Language::JavaScript)
    } else {
        None
    }
}

/// What a piece of code does that the manifest must grant; collected by the language rules and
/// compared with [`ScanContext`] once the whole package is scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capability {
    Network,
    Process,
    FsWrite,
}

/// Per-file collector the language rules push into.
pub(crate) struct FileScan<'a> {
    pub file: &'a str,
    pub src: &'a [u8],
    pub findings: Vec<Finding>,
    pub uses: Vec<(Capability, usize, usize, String)>,
}

impl<'a> FileScan<'a> {
    pub fn new(file: &'a str, src: &'a [u8]) -> Self {
        Self {
            file,
            src,
            findings: Vec::new(),
            uses: Vec::new(),
        }
    }

    fn snippet(&self, row: usize) -> String {
        let line = self.src.split(|&b| b == b'\n').nth(row).unwrap_or_default();
        let s = String::from_utf8_lossy(line);
        let s = s.trim();
        if s.chars().count() > 160 {
            format!("{}…", s.chars().take(160).collect::<String>())
        } else {
            s.to_string()
        }
    }

    /// Reports a finding at `node` with the rule's default severity.
    pub fn report(
        &mut self,
        rule_id: &str,
        node: tree_sitter::Node<'_>,
        confidence: Confidence,
        message: impl Into<String>,
    ) {
        let severity = rules::rule_info(rule_id).map_or(Severity::Medium, |r| r.severity);
        self.report_sev(rule_id, node, severity, confidence, message);
    }

    /// Reports a finding with an explicit severity (Bandit varies some by argument shape).
    pub fn report_sev(
        &mut self,
        rule_id: &str,
        node: tree_sitter::Node<'_>,
        severity: Severity,
        confidence: Confidence,
        message: impl Into<String>,
    ) {
        let p = node.start_position();
        self.findings.push(Finding {
            rule_id: rule_id.to_string(),
            severity,
            confidence,
            file: self.file.to_string(),
            line: p.row + 1,
            column: p.column + 1,
            message: message.into(),
            snippet: self.snippet(p.row),
        });
    }

    /// Records a capability the code uses, for the manifest-vs-code check.
    pub fn uses(&mut self, cap: Capability, node: tree_sitter::Node<'_>, what: impl Into<String>) {
        let p = node.start_position();
        self.uses.push((cap, p.row + 1, p.column + 1, what.into()));
    }
}

/// Scans the package rooted at `root`. Never fails: problems with single files are reported in
/// [`ScanReport::skipped`], a bad advisory file as a `plugd-advisory-file` finding.
pub fn scan_dir(root: &Path, ctx: &ScanContext, options: &ScanOptions) -> ScanReport {
    let start = Instant::now();
    let mut report = ScanReport::default();
    let mut uses: Vec<(String, Capability, usize, usize, String)> = Vec::new();
    let mut snippets: Vec<(String, usize, String)> = Vec::new();

    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let file = e.path().map(|p| rel(root, p)).unwrap_or_default();
                report.skipped.push(Skipped {
                    file,
                    reason: format!("could not read directory entry: {e}"),
                });
                continue;
            }
        };
        let path = entry.path();
        let file = rel(root, path);
        let ft = entry.file_type();
        if ft.is_symlink() {
            report.skipped.push(Skipped {
                file,
                reason: "symlink not followed; the package unpacker should have rejected it".into(),
            });
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                report.skipped.push(Skipped {
                    file,
                    reason: format!("could not stat: {e}"),
                });
                continue;
            }
        };
        package::check_mode(&file, &meta, &mut report.findings);
        if !ft.is_file() {
            continue;
        }
        if meta.len() > options.max_file_bytes {
            report.skipped.push(Skipped {
                file,
                reason: format!(
                    "{} bytes is over the scan limit of {} bytes; raise ScanOptions::max_file_bytes or remove the file",
                    meta.len(),
                    options.max_file_bytes
                ),
            });
            continue;
        }
        let src = match std::fs::read(path) {
            Ok(s) => s,
            Err(e) => {
                report.skipped.push(Skipped {
                    file,
                    reason: format!("could not read: {e}"),
                });
                continue;
            }
        };
        package::check_content(&file, &src, ctx, &mut report.findings);
        let Some(lang) = detect_language(path, &src[..src.len().min(256)]) else {
            continue;
        };
        let mut fs = FileScan::new(&file, &src);
        let parsed = match lang {
            Language::Python => python::scan(&mut fs),
            Language::Bash => bash::scan(&mut fs),
            Language::R => r::scan(&mut fs),
            Language::JavaScript => js::scan(&mut fs),
        };
        match parsed {
            Ok(had_errors) => {
                report.files_scanned += 1;
                if had_errors {
                    report.skipped.push(Skipped {
                        file: file.clone(),
                        reason: "parsed with syntax errors; rules ran on the recoverable parts"
                            .into(),
                    });
                }
            }
            Err(reason) => report.skipped.push(Skipped {
                file: file.clone(),
                reason,
            }),
        }
        for (cap, line, col, what) in fs.uses.drain(..) {
            uses.push((file.clone(), cap, line, col, what));
        }
        report.findings.append(&mut fs.findings);
        // Keep the snippets of capability lines for the manifest findings below.
        for (f, _, line, _, _) in uses.iter().filter(|u| u.0 == file) {
            let snip = src
                .split(|&b| b == b'\n')
                .nth(line - 1)
                .map(|l| String::from_utf8_lossy(l).trim().to_string())
                .unwrap_or_default();
            snippets.push((f.clone(), *line, snip));
        }
    }

    manifest_vs_code(ctx, &uses, &snippets, &mut report.findings);
    if let Some(path) = &options.advisories {
        advisory::check(path, ctx, &mut report.findings);
    }
    report.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.file.cmp(&b.file))
            .then(a.line.cmp(&b.line))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    report.findings.dedup();
    report.counts = report.counts();
    report.duration = start.elapsed();
    report
}

fn manifest_vs_code(
    ctx: &ScanContext,
    uses: &[(String, Capability, usize, usize, String)],
    snippets: &[(String, usize, String)],
    out: &mut Vec<Finding>,
) {
    for (file, cap, line, column, what) in uses {
        let (id, denied, perm) = match cap {
            Capability::Network => (
                "plugd-manifest-network",
                !ctx.declared_network,
                "a network permission",
            ),
            Capability::Process => (
                "plugd-manifest-process",
                !ctx.declared_process,
                "a process permission (script:execute)",
            ),
            Capability::FsWrite => (
                "plugd-manifest-fs-write",
                ctx.trust_level == TrustLevel::Sandboxed && !ctx.declared_fs_write,
                "a file-write permission (the plugin is sandboxed)",
            ),
        };
        if !denied {
            continue;
        }
        let snippet = snippets
            .iter()
            .find(|s| &s.0 == file && s.1 == *line)
            .map(|s| s.2.clone())
            .unwrap_or_default();
        out.push(Finding {
            rule_id: id.into(),
            severity: Severity::Medium,
            confidence: Confidence::Medium,
            file: file.clone(),
            line: *line,
            column: *column,
            message: format!("{what} without {perm} in the manifest: will be denied at run time; declare the permission or remove the call"),
            snippet,
        });
    }
}

fn rel(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    let s = r
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    if s.is_empty() { ".".into() } else { s }
}
