//! Trust before install: the security-scan policy, signature verification and
//! the keyring (DESIGN §5, §6).
//!
//! Policy, in the order the install pipeline applies it:
//!
//! 1. **Scan** ([`scan_package`]) every staged package with `plugd-scan`. High
//!    findings block `trusted` and `verified` installs unless the operator
//!    passes `--accept-findings` ([`crate::InstallOptions::accept_findings`]); a
//!    `sandboxed` install goes on with a warning, because the sandbox contains
//!    what the code tries. The whole report is stored with the version.
//! 2. **Signature**: `<package>.minisig` (see [`plugd_package::signature_path`])
//!    is verified when present. A signature that does not verify, or that
//!    covers another digest, id or version, refuses the install whatever the
//!    trust level: a package that arrives with a broken seal is not installed.
//!    A valid signature by a key in the keyring makes the signer trusted; a
//!    valid one by another key is recorded as untrusted (with a warning).
//!    `verified` plugins need a trusted signer.
//!
//! Trusted keys are files, not database rows: `$PLUGD_HOME/keys/trusted/<name>.pub`,
//! each an ordinary minisign public key file. The directory *is* the index
//! (the key id is inside each file). Files keep the store's schema (owned by
//! another crate) unchanged, can be provisioned by configuration management
//! like any other trust anchor (`/etc/ssh/ssh_known_hosts`, apt's
//! `trusted.gpg.d`), and can be audited with `ls` and `cat`. The keyring is
//! small, so reading every file per lookup costs nothing.
//!
//! Secret keys made by `plugd key generate` live in `$PLUGD_HOME/keys/<name>.key`
//! (mode 0600, the directory 0700) beside `<name>.pub`; they are
//! scrypt-encrypted when a password is given and stored in the clear only when
//! the caller explicitly asked for no password.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use plugd_manifest::{Language, Manifest, TrustLevel};
use plugd_package::{KeyId, PublicKey, SecretKey, SignatureError, SignatureFile, SignedClaim};
use serde::{Deserialize, Serialize};

use crate::HostError;

/// How many findings an install summary and an error list.
pub const TOP_FINDINGS: usize = 5;

/// Why a keyring operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file-system step failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What plugd was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key name that cannot be a file name.
    #[error(
        "`{name}` cannot name a key: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// The file exists and `--force` was not given.
    #[error("{} already exists; refusing to overwrite it (pass --force to replace it)", path.display())]
    Exists {
        /// The file that would be overwritten.
        path: PathBuf,
    },
    /// The same key is already trusted under another name.
    #[error("key {key_id} is already trusted as `{name}`")]
    AlreadyTrusted {
        /// The key id.
        key_id: KeyId,
        /// The name it is trusted under.
        name: String,
    },
    /// `untrust` of something not in the keyring.
    #[error("no trusted key is named or has the id `{what}` (see `plugd key list`)")]
    NotTrusted {
        /// The name or id given.
        what: String,
    },
    /// A key file could not be read as a key.
    #[error("the key in {} is unusable", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: SignatureError,
    },
}

/// One trusted public key.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    /// The name it is trusted under (its file name without `.pub`).
    pub name: String,
    /// The minisign key id.
    pub key_id: String,
    /// The key itself, base64.
    pub public_key: String,
    /// The file it is stored in.
    pub path: String,
}

/// What `plugd key generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedKeyReport {
    /// The minisign key id.
    pub key_id: String,
    /// The public key, base64 (give it to `plugd key trust` on the installing side).
    pub public_key: String,
    /// The secret key file (mode 0600).
    pub secret_key_file: String,
    /// The public key file.
    pub public_key_file: String,
    /// Whether the secret key is password-protected.
    pub encrypted: bool,
}

/// The keys under `$PLUGD_HOME/keys/`.
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
}

impl Keyring {
    /// The keyring of a plugd home (nothing is created until a key is written).
    pub fn new(home: &Path) -> Keyring {
        Keyring {
            dir: home.join("keys"),
        }
    }

    /// `$PLUGD_HOME/keys`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn trusted_dir(&self) -> PathBuf {
        self.dir.join("trusted")
    }

    /// The secret key file `plugd sign` uses by default.
    pub fn default_secret_key(&self) -> PathBuf {
        self.dir.join("default.key")
    }

    /// Generates a key pair named `name` into `out` (default: the keyring's
    /// directory). `password: None` stores the secret key unencrypted.
    pub fn generate(
        &self,
        out: Option<&Path>,
        name: &str,
        password: Option<&str>,
        force: bool,
    ) -> Result<GeneratedKeyReport, KeyError> {
        check_name(name)?;
        let dir = out.unwrap_or(&self.dir);
        create_private_dir(dir)?;
        let secret_path = dir.join(format!("{name}.key"));
        let public_path = dir.join(format!("{name}.pub"));
        if !force {
            for path in [&secret_path, &public_path] {
                if fs::symlink_metadata(path).is_ok() {
                    return Err(KeyError::Exists { path: path.clone() });
                }
            }
        }
        let generated = plugd_package::generate_key(password, &format!("plugd key `{name}`"))
            .map_err(|source| KeyError::Key {
                path: secret_path.clone(),
                source,
            })?;
        write_file(&secret_path, generated.secret_file.as_bytes(), 0o600)?;
        write_file(&public_path, generated.public_file.as_bytes(), 0o644)?;
        Ok(GeneratedKeyReport {
            key_id: generated.public.id().to_string(),
            public_key: generated.public.to_base64(),
            secret_key_file: secret_path.display().to_string(),
            public_key_file: public_path.display().to_string(),
            encrypted: password.is_some(),
        })
    }

    /// Reads a secret key file (decrypting it with `password` when it is encrypted).
    pub fn load_secret(&self, path: &Path, password: Option<&str>) -> Result<SecretKey, KeyError> {
        let text = read_small(path)?;
        SecretKey::parse(&text, password).map_err(|source| KeyError::Key {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Adds a public key (a `.pub` file's text or the bare base64 line) to the
    /// trusted keys. Without a name, `key-<id>` is used.
    pub fn trust(
        &self,
        key_text: &str,
        name: Option<&str>,
        force: bool,
    ) -> Result<TrustedKey, KeyError> {
        let key = PublicKey::parse(key_text).map_err(|source| KeyError::Key {
            path: PathBuf::from("<the key given>"),
            source,
        })?;
        let name = match name {
            Some(name) => name.to_string(),
            None => format!("key-{}", key.id().to_string().to_ascii_lowercase()),
        };
        check_name(&name)?;
        for existing in self.list()? {
            if existing.key_id == key.id().to_string() && existing.name != name {
                return Err(KeyError::AlreadyTrusted {
                    key_id: key.id(),
                    name: existing.name,
                });
            }
        }
        let path = self.trusted_dir().join(format!("{name}.pub"));
        if !force && fs::symlink_metadata(&path).is_ok() {
            return Err(KeyError::Exists { path });
        }
        create_private_dir(&self.dir)?;
        create_private_dir(&self.trusted_dir())?;
        let text = key.to_file_text(&format!("plugd trusted key `{name}` {}", key.id()));
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(TrustedKey {
            name,
            key_id: key.id().to_string(),
            public_key: key.to_base64(),
            path: path.display().to_string(),
        })
    }

    /// Every trusted key, sorted by name. A damaged file is an error naming it,
    /// not silently skipped: the operator put it there to be trusted.
    pub fn list(&self) -> Result<Vec<TrustedKey>, KeyError> {
        Ok(self.entries()?.into_iter().map(|(key, _)| key).collect())
    }

    fn entries(&self) -> Result<Vec<(TrustedKey, PublicKey)>, KeyError> {
        let dir = self.trusted_dir();
        let read = match fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "read the trusted keys in",
                    path: dir,
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.map_err(|source| KeyError::Io {
                action: "read the trusted keys in",
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pub"))
            else {
                continue;
            };
            let text = read_small(&path)?;
            let key = PublicKey::parse(&text).map_err(|source| KeyError::Key {
                path: path.clone(),
                source,
            })?;
            out.push((
                TrustedKey {
                    name: name.to_string(),
                    key_id: key.id().to_string(),
                    public_key: key.to_base64(),
                    path: path.display().to_string(),
                },
                key,
            ));
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }

    /// Removes a trusted key by name or key id (case-insensitive).
    pub fn untrust(&self, name_or_id: &str) -> Result<TrustedKey, KeyError> {
        let found = self
            .list()?
            .into_iter()
            .find(|k| k.name == name_or_id || k.key_id.eq_ignore_ascii_case(name_or_id.trim()));
        let Some(key) = found else {
            return Err(KeyError::NotTrusted {
                what: name_or_id.to_string(),
            });
        };
        fs::remove_file(&key.path).map_err(|source| KeyError::Io {
            action: "remove",
            path: PathBuf::from(&key.path),
            source,
        })?;
        Ok(key)
    }

    /// The trusted key with this id, if any.
    pub fn find(&self, id: KeyId) -> Result<Option<(TrustedKey, PublicKey)>, KeyError> {
        Ok(self.entries()?.into_iter().find(|(_, key)| key.id() == id))
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName {
            name: name.to_string(),
        })
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let existed = dir.is_dir();
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        action: "create the key directory",
        path: dir.to_path_buf(),
        source,
    })?;
    // Only a directory plugd made is tightened; `--out` may name a shared one.
    if !existed {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            KeyError::Io {
                action: "restrict the permissions of",
                path: dir.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(())
}

/// Writes through a temporary file created with its final mode, then renames,
/// so a secret key is never readable by others even for a moment and a crash
/// never leaves half a key.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id()
    ));
    let io = |source| KeyError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    let io = |source| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.len() > 64 * 1024 {
        return Err(KeyError::Key {
            path: path.to_path_buf(),
            source: SignatureError::BadPublicKey {
                reason: format!("the file is {} bytes; key files are tiny", meta.len()),
            },
        });
    }
    fs::read_to_string(path).map_err(io)
}

/// The outcome of checking a package's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureCheck {
    /// No signature file was found.
    Unsigned {
        /// Where it was looked for.
        expected: String,
    },
    /// A valid signature by a trusted key.
    Trusted {
        /// The minisign key id.
        key_id: String,
        /// The name the key is trusted under.
        key_name: String,
    },
    /// A signature by a key that is not in the keyring.
    Untrusted {
        /// The minisign key id.
        key_id: String,
        /// Whether the signature could be checked against the public key it
        /// carries (it then covers this package; only the signer is unknown).
        checked: bool,
    },
}

impl SignatureCheck {
    /// The value stored as the version's signer (`None` when unsigned).
    pub(crate) fn signer_json(&self) -> Option<String> {
        match self {
            SignatureCheck::Unsigned { .. } => None,
            other => serde_json::to_string(other).ok(),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            SignatureCheck::Unsigned { expected } => format!("unsigned (no {expected})"),
            SignatureCheck::Trusted { key_id, key_name } => {
                format!("signed by trusted key `{key_name}` ({key_id})")
            }
            SignatureCheck::Untrusted { key_id, checked } => {
                if *checked {
                    format!("signed by untrusted key {key_id} (signature valid)")
                } else {
                    format!("signed by untrusted key {key_id} (signature not checkable)")
                }
            }
        }
    }
}

/// Checks the signature beside `package` (or at `explicit`) against the staged
/// package's id, version and digest.
pub(crate) fn check_signature(
    keyring: &Keyring,
    package: &Path,
    explicit: Option<&Path>,
    actual: &SignedClaim,
) -> Result<SignatureCheck, HostError> {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| plugd_package::signature_path(package));
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(SignatureCheck::Unsigned {
                expected: path.display().to_string(),
            });
        }
        Err(source) => {
            return Err(HostError::Io {
                context: format!("cannot read the signature {}", path.display()),
                source,
            });
        }
    };
    let refused = |source| HostError::Signature {
        path: path.display().to_string(),
        source,
    };
    let signature = SignatureFile::parse(&bytes).map_err(refused)?;
    if let Some((trusted, key)) = keyring.find(signature.key_id())? {
        plugd_package::verify(&signature, &key, actual).map_err(refused)?;
        return Ok(SignatureCheck::Trusted {
            key_id: trusted.key_id,
            key_name: trusted.name,
        });
    }
    let checked = match signature.embedded_key() {
        Some(key) => {
            plugd_package::verify(&signature, key, actual).map_err(refused)?;
            true
        }
        None => false,
    };
    Ok(SignatureCheck::Untrusted {
        key_id: signature.key_id().to_string(),
        checked,
    })
}

/// The scanner's view of a manifest: what it declares, so code that does more
/// is reported as "will be denied at run time".
pub fn scan_context(manifest: &Manifest) -> plugd_scan::ScanContext {
    let perms = &manifest.permissions;
    let declared_network = perms.iter().any(|p| p.resource == "net");
    let declared_process = perms.iter().any(|p| {
        matches!(
            p.resource.as_str(),
            "script" | "process" | "proc" | "exec" | "shell" | "command"
        ) || matches!(p.action.as_str(), "execute" | "exec" | "spawn")
    });
    // A `file` plugin's contract is to write `/plugin/output.json` (into its
    // per-call copy), so its writes are expected, not denied.
    let declared_fs_write = manifest.runtime == plugd_manifest::Runtime::File
        || perms
            .iter()
            .any(|p| p.resource == "fs" && matches!(p.action.as_str(), "write" | "access" | "*"));
    let declared_binaries = match (&manifest.entry_point, manifest.language) {
        (plugd_manifest::EntryPoint::File(file), Some(Language::Exec) | None) => {
            vec![file.clone()]
        }
        _ => Vec::new(),
    };
    plugd_scan::ScanContext {
        declared_network,
        declared_process,
        declared_fs_write,
        trust_level: match manifest.trust_level {
            TrustLevel::Trusted => plugd_scan::TrustLevel::Trusted,
            TrustLevel::Verified => plugd_scan::TrustLevel::Verified,
            TrustLevel::Sandboxed => plugd_scan::TrustLevel::Sandboxed,
        },
        declared_binaries,
        python_deps: manifest.dependencies.python.clone(),
        npm_deps: Vec::new(),
    }
}

/// Scans an unpacked package with the facts its manifest declares (or none).
pub fn scan_package(
    root: &Path,
    manifest: Option<&Manifest>,
    advisories: Option<&Path>,
) -> plugd_scan::ScanReport {
    let context = manifest.map(scan_context).unwrap_or_default();
    let options = plugd_scan::ScanOptions {
        advisories: advisories.map(Path::to_path_buf),
        ..plugd_scan::ScanOptions::default()
    };
    plugd_scan::scan_dir(root, &context, &options)
}

/// What an install tells about its scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    /// Findings per severity.
    pub counts: plugd_scan::SeverityCounts,
    /// Files the rules parsed.
    pub files_scanned: usize,
    /// Files not (fully) scanned.
    pub skipped: usize,
    /// The most severe findings (at most [`TOP_FINDINGS`]).
    pub top: Vec<plugd_scan::Finding>,
}

impl ScanSummary {
    /// Summarises a report.
    pub fn of(report: &plugd_scan::ScanReport) -> ScanSummary {
        ScanSummary {
            counts: report.counts(),
            files_scanned: report.files_scanned,
            skipped: report.skipped.len(),
            top: report.findings.iter().take(TOP_FINDINGS).cloned().collect(),
        }
    }
}

/// `rule severity file:line message`, the one-line form of a finding.
pub fn finding_line(f: &plugd_scan::Finding) -> String {
    let severity = match f.severity {
        plugd_scan::Severity::High => "high",
        plugd_scan::Severity::Medium => "medium",
        plugd_scan::Severity::Low => "low",
    };
    if f.line > 0 {
        format!(
            "{} [{severity}] {}:{}: {}",
            f.rule_id, f.file, f.line, f.message
        )
    } else {
        format!("{} [{severity}] {}: {}", f.rule_id, f.file, f.message)
    }
}

/// Signs the package at `package` (a directory or a `.tar.gz`) with `key`:
/// unpacks it like an install would, reads its id and version, digests it, and
/// writes `<package>.minisig` (or `out`). Returns the path written and the claim.
pub fn sign_package(
    package: &Path,
    key: &SecretKey,
    out: Option<&Path>,
    limits: &plugd_package::Limits,
) -> Result<(PathBuf, SignedClaim), HostError> {
    let source = plugd_package::Source::detect(package)?;
    let scratch = tempfile::tempdir().map_err(|source| HostError::Io {
        context: "creating a temporary directory to unpack the package".into(),
        source,
    })?;
    let unpacked = plugd_package::unpack(&source, &scratch.path().join("pkg"), limits)?;
    let loaded = plugd_manifest::load(&unpacked.root)?;
    let claim = SignedClaim {
        id: loaded.manifest.id.clone(),
        version: loaded.manifest.version.to_string(),
        digest: plugd_package::tree_digest(&unpacked.root)?,
    };
    let text = plugd_package::sign(key, &claim).map_err(|source| HostError::Signature {
        path: package.display().to_string(),
        source,
    })?;
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| plugd_package::signature_path(package));
    fs::write(&path, text).map_err(|source| HostError::Io {
        context: format!("cannot write the signature {}", path.display()),
        source,
    })?;
    let _ = plugd_package::remove_tree(scratch.path());
    Ok((path, claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_private_and_never_overwritten() {
        let home = tempfile::tempdir().unwrap();
        let ring = Keyring::new(home.path());
        let report = ring.generate(None, "default", Some("pw"), false).unwrap();
        assert!(report.encrypted);
        let mode = fs::metadata(&report.secret_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(ring.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(matches!(
            ring.generate(None, "default", None, false),
            Err(KeyError::Exists { .. })
        ));
        let again = ring.generate(None, "default", None, true).unwrap();
        assert_ne!(again.key_id, report.key_id);
        assert!(!again.encrypted);
        let sk = ring
            .load_secret(Path::new(&again.secret_key_file), None)
            .unwrap();
        assert_eq!(sk.public().id().to_string(), again.key_id);
    }

    #[test]
    fn trust_list_untrust_round_trip() {
        let home = tempfile::tempdir().unwrap();
        let ring = Keyring::new(home.path());
        assert!(ring.list().unwrap().is_empty());
        let key = ring.generate(None, "alice", None, false).unwrap();
        let text = fs::read_to_string(&key.public_key_file).unwrap();
        let trusted = ring.trust(&text, Some("alice"), false).unwrap();
        assert_eq!(trusted.key_id, key.key_id);
        assert!(matches!(
            ring.trust(&key.public_key, Some("bob"), false),
            Err(KeyError::AlreadyTrusted { .. })
        ));
        assert!(matches!(
            ring.trust(&key.public_key, Some("alice"), false),
            Err(KeyError::Exists { .. })
        ));
        assert!(matches!(
            ring.trust(&key.public_key, Some("../evil"), false),
            Err(KeyError::BadName { .. })
        ));
        let listed = ring.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "alice");
        let removed = ring.untrust(&key.key_id.to_ascii_lowercase()).unwrap();
        assert_eq!(removed.name, "alice");
        assert!(ring.list().unwrap().is_empty());
        assert!(matches!(
            ring.untrust("alice"),
            Err(KeyError::NotTrusted { .. })
        ));
    }

    #[test]
    fn the_scan_context_reflects_declared_permissions() {
        let manifest = |extra: &str| {
            let text = format!(
                "id: ctx\nname: ctx\nversion: 1.0.0\nruntime: ndjson\nlanguage: python\nentry_point: p.py\n{extra}"
            );
            plugd_manifest::parse(text.as_bytes(), Path::new("manifest.yaml")).unwrap()
        };
        let bare = scan_context(&manifest(""));
        assert!(!bare.declared_network && !bare.declared_process && !bare.declared_fs_write);
        assert_eq!(bare.trust_level, plugd_scan::TrustLevel::Sandboxed);
        let granted = scan_context(&manifest(
            "trust_level: trusted\npermissions: ['net:connect', 'script:execute', 'fs:write:/data']\ndependencies:\n  python: ['requests==2.19.0']\n",
        ));
        assert!(granted.declared_network && granted.declared_process && granted.declared_fs_write);
        assert_eq!(granted.trust_level, plugd_scan::TrustLevel::Trusted);
        assert_eq!(granted.python_deps, vec!["requests==2.19.0".to_string()]);
    }

    #[test]
    fn a_damaged_trusted_key_file_is_named() {
        let home = tempfile::tempdir().unwrap();
        let ring = Keyring::new(home.path());
        fs::create_dir_all(home.path().join("keys/trusted")).unwrap();
        fs::write(home.path().join("keys/trusted/bad.pub"), "garbage\n").unwrap();
        let err = ring.list().unwrap_err();
        assert!(err.to_string().contains("bad.pub"), "{err}");
    }
}
