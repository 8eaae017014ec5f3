//! `plugd scan`, `plugd key …`, `plugd sign`, and the trust flags of install and
//! update: argument definitions and the glue to [`plugd_host::trust`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use plugd_host::trust::{Keyring, ScanSummary, SignatureCheck, finding_line};
use plugd_host::{InstallOptions, InstallReport};
use serde_json::{Value, json};

use crate::args::UnpackLimits;
use crate::output::{emit_json, say, table};

/// The trust flags shared by `install` and `update`.
#[derive(Debug, Args, Clone)]
pub struct InstallTrustArgs {
    /// Install a `trusted` or `verified` plugin even though the security scan
    /// found high-severity issues (review them first: they are listed in the error).
    #[arg(long)]
    pub accept_findings: bool,
    /// The package's minisign signature [default: <package>.minisig beside the package,
    /// e.g. echo-1.0.0.tar.gz.minisig, or echo.minisig next to a directory echo/].
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// An OSV-format advisory file (offline) to match the declared dependencies against.
    #[arg(long, env = "PLUGD_ADVISORIES", value_name = "FILE")]
    pub advisories: Option<PathBuf>,
}

impl InstallTrustArgs {
    /// The host's options for these flags.
    pub fn options(&self, enable: bool) -> InstallOptions {
        InstallOptions {
            enable,
            accept_findings: self.accept_findings,
            signature: self.signature.clone(),
            advisories: self.advisories.clone(),
            accept_permissions: false,
        }
    }
}

/// `plugd scan`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 no high-severity finding, 1 at least one high-severity finding, 2 bad usage or unreadable input."
)]
pub struct ScanArgs {
    /// A plugin directory or a .tar.gz package (unpacked safely to a temporary directory first).
    pub path: PathBuf,
    /// Print SARIF 2.1.0 (for CI code-scanning views) instead of text (or --json).
    #[arg(long)]
    pub sarif: bool,
    /// An OSV-format advisory file (offline) to match the declared dependencies against.
    #[arg(long, env = "PLUGD_ADVISORIES", value_name = "FILE")]
    pub advisories: Option<PathBuf>,
    #[command(flatten)]
    pub limits: UnpackLimits,
}

/// `plugd key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a minisign key pair for signing packages (<NAME>.key, mode 0600, and <NAME>.pub).
    ///
    /// The secret key is encrypted with the password read from --password-file or
    /// PLUGD_KEY_PASSWORD; --no-password stores it unencrypted (protected by its file mode only).
    Generate {
        /// Where to write the key files [default: $PLUGD_HOME/keys].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The key's name (file names <NAME>.key and <NAME>.pub).
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Store the secret key unencrypted.
        #[arg(long, conflicts_with = "password_file")]
        no_password: bool,
        /// Replace existing key files of that name.
        #[arg(long)]
        force: bool,
    },
    /// Trust a public key: `verified` plugins signed by it may be installed.
    Trust {
        /// A minisign public key file, or the key itself (the base64 line).
        key: String,
        /// The name to trust it under [default: key-<key id>].
        #[arg(long)]
        name: Option<String>,
        /// Replace a trusted key of the same name.
        #[arg(long)]
        force: bool,
    },
    /// List trusted keys.
    List,
    /// Stop trusting a key (plugins already installed stay installed).
    Untrust {
        /// The key's name or key id.
        key: String,
    },
}

/// Where a secret key's password comes from.
#[derive(Debug, Args, Clone)]
pub struct PasswordArgs {
    /// Read the secret key's password from the first line of FILE [default: $PLUGD_KEY_PASSWORD].
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl PasswordArgs {
    fn resolve(&self) -> anyhow::Result<Option<String>> {
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {}", file.display()))?;
            let password = text.lines().next().unwrap_or_default().to_string();
            if password.is_empty() {
                bail!(
                    "the password file {} is empty; put the password on its first line",
                    file.display()
                );
            }
            return Ok(Some(password));
        }
        Ok(std::env::var("PLUGD_KEY_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()))
    }
}

/// `plugd sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The plugin directory or .tar.gz package to sign.
    pub package: PathBuf,
    /// The secret key file [default: $PLUGD_HOME/keys/default.key].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where to write the signature [default: <package>.minisig beside the package].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(flatten)]
    pub limits: UnpackLimits,
}

/// Runs `plugd scan`. Errors are printed here because they exit with 2, not 1.
pub fn scan(args: &ScanArgs, json: bool) -> anyhow::Result<ExitCode> {
    match scan_inner(args, json) {
        Ok(code) => Ok(code),
        Err(err) if crate::output::is_broken_pipe(&err) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            crate::output::print_error(&err, json && !args.sarif);
            Ok(ExitCode::from(2))
        }
    }
}

fn scan_inner(args: &ScanArgs, json: bool) -> anyhow::Result<ExitCode> {
    let source = plugd_package::Source::detect(&args.path)
        .with_context(|| format!("cannot scan {}", args.path.display()))?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let root = match &source {
        plugd_package::Source::Dir(dir) => dir.clone(),
        plugd_package::Source::Archive(_) => {
            plugd_package::unpack(&source, &scratch.path().join("pkg"), &args.limits.resolve())
                .with_context(|| format!("cannot unpack {}", args.path.display()))?
                .root
        }
    };
    let (manifest, manifest_error) = match plugd_manifest::load(&root) {
        Ok(loaded) => (Some(loaded.manifest), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let report =
        plugd_host::trust::scan_package(&root, manifest.as_ref(), args.advisories.as_deref());
    let code = if report.has_high() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if args.sarif {
        emit_json(&plugd_scan::to_sarif(&report))?;
    } else if json {
        let mut doc = serde_json::to_value(&report)?;
        if let Value::Object(map) = &mut doc {
            map.insert("path".into(), json!(args.path));
            map.insert(
                "manifest".into(),
                manifest.as_ref().map_or(Value::Null, |m| {
                    json!({"id": m.id, "version": m.version.to_string(), "trust_level": m.trust_level.to_string()})
                }),
            );
            map.insert("manifest_error".into(), json!(manifest_error));
        }
        emit_json(&doc)?;
    } else {
        match (&manifest, &manifest_error) {
            (Some(m), _) => say(format!(
                "{} {} (trust level {}): {} files scanned in {:.0?}",
                m.id, m.version, m.trust_level, report.files_scanned, report.duration
            ))?,
            (None, Some(e)) => say(format!(
                "no usable manifest ({e}); scanned without manifest context, so the manifest-vs-code rules did not run\n{} files scanned in {:.0?}",
                report.files_scanned, report.duration
            ))?,
            (None, None) => {}
        }
        let c = report.counts();
        say(format!(
            "findings: {} high, {} medium, {} low",
            c.high, c.medium, c.low
        ))?;
        if !report.findings.is_empty() {
            say(table(
                ["RULE", "SEVERITY", "CONFIDENCE", "LOCATION", "EXPLANATION"],
                report.findings.iter().map(|f| {
                    [
                        f.rule_id.clone(),
                        word(&f.severity),
                        word(&f.confidence),
                        if f.line > 0 {
                            format!("{}:{}", f.file, f.line)
                        } else {
                            f.file.clone()
                        },
                        f.message.clone(),
                    ]
                }),
            ))?;
        }
        for skipped in &report.skipped {
            say(format!("skipped {}: {}", skipped.file, skipped.reason))?;
        }
    }
    Ok(code)
}

/// `high`, `medium`, `low`: the serde name of a severity or confidence.
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Runs `plugd key …`.
pub fn key(home: &Path, command: KeyCommand, json: bool) -> anyhow::Result<ExitCode> {
    let ring = Keyring::new(home);
    match command {
        KeyCommand::Generate {
            out,
            name,
            password,
            no_password,
            force,
        } => {
            let password = password.resolve()?;
            if password.is_none() && !no_password {
                bail!(
                    "a secret key needs a password: pass --password-file FILE or set PLUGD_KEY_PASSWORD, or pass --no-password to store it unencrypted"
                );
            }
            if password.is_some() && no_password {
                bail!("--no-password was given but PLUGD_KEY_PASSWORD is set; unset one of them");
            }
            let report = ring.generate(out.as_deref(), &name, password.as_deref(), force)?;
            if json {
                emit_json(&report)?;
            } else {
                say(format!(
                    "generated key {} ({})\n  secret key {}{}\n  public key {}\n  {}\ntrust it where plugins are installed with:\n  plugd key trust {}",
                    name,
                    report.key_id,
                    report.secret_key_file,
                    if report.encrypted {
                        " (encrypted)"
                    } else {
                        " (NOT encrypted: protected by its file mode 0600 only)"
                    },
                    report.public_key_file,
                    report.public_key,
                    report.public_key
                ))?;
            }
        }
        KeyCommand::Trust { key, name, force } => {
            let path = Path::new(&key);
            let text = if path.is_file() {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the public key file {key}"))?
            } else {
                key.clone()
            };
            let trusted = ring.trust(&text, name.as_deref(), force)?;
            if json {
                emit_json(&trusted)?;
            } else {
                say(format!(
                    "trusted key {} as `{}` ({})",
                    trusted.key_id, trusted.name, trusted.path
                ))?;
            }
        }
        KeyCommand::List => {
            let keys = ring.list()?;
            if json {
                emit_json(&json!({ "keys": keys }))?;
            } else if keys.is_empty() {
                say("no trusted keys (add one with `plugd key trust <public-key>`)")?;
            } else {
                say(table(
                    ["NAME", "KEY ID", "PUBLIC KEY"],
                    keys.into_iter().map(|k| [k.name, k.key_id, k.public_key]),
                ))?;
            }
        }
        KeyCommand::Untrust { key } => {
            let removed = ring.untrust(&key)?;
            if json {
                emit_json(&removed)?;
            } else {
                say(format!(
                    "no longer trusting key {} (`{}`)",
                    removed.key_id, removed.name
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `plugd sign`.
pub fn sign(home: &Path, args: &SignArgs, json: bool) -> anyhow::Result<ExitCode> {
    let ring = Keyring::new(home);
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| ring.default_secret_key());
    if !key_path.exists() {
        bail!(
            "no secret key at {}; generate one with `plugd key generate` or pass --key FILE",
            key_path.display()
        );
    }
    let key = ring.load_secret(&key_path, args.password.resolve()?.as_deref())?;
    let (path, claim) = plugd_host::trust::sign_package(
        &args.package,
        &key,
        args.output.as_deref(),
        &args.limits.resolve(),
    )?;
    if json {
        emit_json(&json!({
            "signature": path,
            "key_id": key.public().id().to_string(),
            "id": claim.id,
            "version": claim.version,
            "digest": claim.digest.to_string(),
        }))?;
    } else {
        say(format!(
            "signed {} {} ({}) with key {}\n  wrote {}",
            claim.id,
            claim.version,
            claim.digest,
            key.public().id(),
            path.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The trust part of an install or update report, for people: the signature,
/// the scan counts and top findings, and warnings (on stderr).
pub fn print_install_trust(report: &InstallReport) -> anyhow::Result<()> {
    say(format!("  signature: {}", report.signature.describe()))?;
    print_scan_summary(&report.scan)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

fn print_scan_summary(scan: &ScanSummary) -> anyhow::Result<()> {
    say(format!(
        "  security scan: {} high, {} medium, {} low ({} files)",
        scan.counts.high, scan.counts.medium, scan.counts.low, scan.files_scanned
    ))?;
    for finding in &scan.top {
        say(format!("    - {}", finding_line(finding)))?;
    }
    Ok(())
}

/// The trust lines of `plugd info` for one version: signer and stored scan.
pub fn print_version_trust(
    signer: Option<&SignatureCheck>,
    scan: Option<&plugd_scan::ScanReport>,
) -> anyhow::Result<()> {
    say(format!(
        "  signer: {}",
        signer.map_or("none (unsigned)".to_string(), SignatureCheck::describe)
    ))?;
    match scan {
        Some(report) => print_scan_summary(&ScanSummary::of(report)),
        None => say("  security scan: not recorded"),
    }
}
