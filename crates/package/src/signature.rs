//! Package signatures in the minisign format, bound to the plugin's identity.
//!
//! A plain minisign signature covers bytes. Signing the package *file* would
//! tie the signature to one archive (recompressing it would break it) and say
//! nothing about which plugin it is meant for, so plugd signs a short canonical
//! message instead ([`SignedClaim::message`]):
//!
//! ```text
//! plugd-signature-v1
//! <manifest id>
//! <manifest version>
//! sha256:<tree digest>
//! ```
//!
//! The tree digest ([`crate::tree_digest`]) is the same for a directory and for
//! the archive [`crate::pack`] makes of it, so one signature serves both forms.
//! Because the id and version are inside the signed bytes, a signature made for
//! one plugin or version cannot be replayed on another.
//!
//! The same claim is repeated in the minisign *trusted comment* (which the
//! global signature covers). On verification plugd first checks that the
//! signature really covers the claim it carries, then compares that claim with
//! the package at hand, so a refusal can say *what* differs (the digest, the
//! id or the version) instead of only "bad signature".
//!
//! The untrusted comment carries the signer's public key. It is not trusted for
//! anything: it only lets plugd check a signature from a key that is not in the
//! keyring (and so report "valid, but by an untrusted key" rather than
//! "cannot check"), never to grant trust.
//!
//! The signature file is attacker-controlled input: it is bounded in size
//! before parsing and every malformed shape is a [`SignatureError`].

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use crate::Digest;

/// First line of the signed message and tag of the trusted comment.
pub const SIGNATURE_FORMAT: &str = "plugd-signature-v1";

/// The extension of a signature file: `<package>.minisig`.
pub const SIGNATURE_EXTENSION: &str = "minisig";

/// A real signature file is under 1 KiB; anything far larger is not one.
const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

/// A minisign key id: the 8 random bytes minisign puts in every key and
/// signature, shown as 16 upper-case hex digits like `minisign` itself does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u64);

impl KeyId {
    fn from_keynum(keynum: &[u8]) -> KeyId {
        let mut bytes = [0u8; 8];
        let n = keynum.len().min(8);
        bytes[..n].copy_from_slice(&keynum[..n]);
        KeyId(u64::from_le_bytes(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// What a signature vouches for: one version of one plugin with one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaim {
    /// The manifest's plugin id.
    pub id: String,
    /// The manifest's version.
    pub version: String,
    /// The package's tree digest.
    pub digest: Digest,
}

impl SignedClaim {
    /// The exact bytes that are signed (see the module doc).
    pub fn message(&self) -> String {
        format!(
            "{SIGNATURE_FORMAT}\n{}\n{}\n{}\n",
            self.id, self.version, self.digest
        )
    }

    fn trusted_comment(&self) -> String {
        format!(
            "{SIGNATURE_FORMAT} id={} version={} digest={}",
            self.id, self.version, self.digest
        )
    }

    /// Reads back [`SignedClaim::trusted_comment`]; `None` for any other text
    /// (e.g. a signature made by the `minisign` tool over the message).
    fn from_trusted_comment(text: &str) -> Option<SignedClaim> {
        let mut words = text.split(' ');
        if words.next()? != SIGNATURE_FORMAT {
            return None;
        }
        let id = words.next()?.strip_prefix("id=")?;
        let version = words.next()?.strip_prefix("version=")?;
        let digest = words.next()?.strip_prefix("digest=")?.parse().ok()?;
        if words.next().is_some() || id.is_empty() || version.is_empty() {
            return None;
        }
        Some(SignedClaim {
            id: id.to_string(),
            version: version.to_string(),
            digest,
        })
    }
}

/// Where the signature of a package is looked for: `<package>.minisig` beside
/// it, for an archive (`echo-1.0.0.tar.gz.minisig`) and for a directory
/// (`echo/` → `echo.minisig` in the directory's parent) alike. It is never
/// inside the directory, because that would change the digest it signs.
pub fn signature_path(package: &Path) -> PathBuf {
    // `Path::file_name` already ignores a trailing `/`; `.` and `..` need the
    // real name, which only the canonical path has.
    let named = match package.file_name() {
        Some(_) => package.to_path_buf(),
        None => std::fs::canonicalize(package).unwrap_or_else(|_| package.to_path_buf()),
    };
    let mut name = named.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(SIGNATURE_EXTENSION);
    named.with_file_name(name)
}

/// A public key that can check signatures.
#[derive(Clone)]
pub struct PublicKey {
    inner: minisign::PublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl PublicKey {
    /// Reads a public key given as a minisign `.pub` file's text (a comment
    /// line, then the key) or as the bare base64 key line.
    pub fn parse(text: &str) -> Result<PublicKey, SignatureError> {
        if text.len() > MAX_SIGNATURE_BYTES {
            return Err(SignatureError::BadPublicKey {
                reason: format!("{} bytes is far too long for a key", text.len()),
            });
        }
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| SignatureError::BadPublicKey {
                reason: "no key line found".into(),
            })?;
        let inner =
            minisign::PublicKey::from_base64(line).map_err(|e| SignatureError::BadPublicKey {
                reason: e.to_string(),
            })?;
        // minisign only knows Ed25519 ("Ed"); another algorithm tag means the
        // text is not a minisign public key even though its length matched.
        if inner.to_bytes().get(..2) != Some(b"Ed".as_slice()) {
            return Err(SignatureError::BadPublicKey {
                reason: "the key's algorithm is not Ed25519 (`Ed`)".into(),
            });
        }
        Ok(PublicKey { inner })
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        KeyId::from_keynum(self.inner.keynum())
    }

    /// The key as one base64 line (what `minisign -P` takes).
    pub fn to_base64(&self) -> String {
        self.inner.to_base64()
    }

    /// The key as a minisign `.pub` file with the given comment.
    pub fn to_file_text(&self, comment: &str) -> String {
        format!(
            "untrusted comment: {}\n{}\n",
            one_line(comment),
            self.to_base64()
        )
    }
}

/// A secret key, decrypted and ready to sign.
pub struct SecretKey {
    inner: minisign::SecretKey,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public.id())
    }
}

impl SecretKey {
    /// Reads a minisign secret key file's text. An encrypted key needs its
    /// password; an unencrypted one ignores it. Never prompts.
    pub fn parse(text: &str, password: Option<&str>) -> Result<SecretKey, SignatureError> {
        if text.len() > MAX_SIGNATURE_BYTES {
            return Err(SignatureError::BadSecretKey {
                reason: format!("{} bytes is far too long for a key", text.len()),
            });
        }
        let unencrypted = minisign::SecretKey::from_unencrypted_box(text.to_string().into());
        let inner = match (unencrypted, password) {
            (Ok(key), _) => key,
            // `from_box` with `Some` never prompts (only `None` does).
            (Err(_), Some(password)) => {
                minisign::SecretKey::from_box(text.to_string().into(), Some(password.to_string()))
                    .map_err(|e| SignatureError::BadSecretKey {
                    reason: format!("{e} (is the password right?)"),
                })?
            }
            (Err(e), None) => {
                return Err(SignatureError::PasswordNeeded {
                    reason: e.to_string(),
                });
            }
        };
        let public = minisign::PublicKey::from_secret_key(&inner)
            .map_err(|e| SignatureError::BadSecretKey {
                reason: e.to_string(),
            })
            .map(|inner| PublicKey { inner })?;
        Ok(SecretKey { inner, public })
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

/// A freshly generated key pair, as the text of its two files.
pub struct GeneratedKey {
    /// The public key.
    pub public: PublicKey,
    /// The secret key file's text (encrypted when a password was given).
    pub secret_file: String,
    /// The public key file's text.
    pub public_file: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeneratedKey({})", self.public.id())
    }
}

/// Generates an Ed25519 key pair. With a password the secret key is encrypted
/// (scrypt, as minisign does); without one it is stored in the clear and the
/// caller must say so to the user.
pub fn generate_key(password: Option<&str>, comment: &str) -> Result<GeneratedKey, SignatureError> {
    let generate = |e: minisign::PError| SignatureError::Generate {
        reason: e.to_string(),
    };
    let pair = match password {
        Some(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password.to_string())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(generate)?;
    let public = PublicKey { inner: pair.pk };
    let secret_file = pair
        .sk
        .to_box(Some(&format!(
            "{} secret key {}",
            one_line(comment),
            public.id()
        )))
        .map_err(generate)?
        .into_string();
    let public_file = public.to_file_text(&format!("{} public key {}", comment, public.id()));
    Ok(GeneratedKey {
        public,
        secret_file,
        public_file,
    })
}

/// Signs a claim; returns the text of the `.minisig` file.
pub fn sign(key: &SecretKey, claim: &SignedClaim) -> Result<String, SignatureError> {
    let untrusted = format!(
        "plugd signature by key {} public key {}",
        key.public.id(),
        key.public.to_base64()
    );
    let signed = minisign::sign(
        Some(&key.public.inner),
        &key.inner,
        Cursor::new(claim.message().into_bytes()),
        Some(&claim.trusted_comment()),
        Some(&untrusted),
    )
    .map_err(|e| SignatureError::Sign {
        reason: e.to_string(),
    })?;
    Ok(signed.into_string())
}

/// A parsed `.minisig` file, not yet checked against any key.
pub struct SignatureFile {
    inner: minisign::SignatureBox,
    key_id: KeyId,
    claim: Option<SignedClaim>,
    embedded_key: Option<PublicKey>,
}

impl fmt::Debug for SignatureFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureFile")
            .field("key_id", &self.key_id)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

impl SignatureFile {
    /// Parses a signature file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<SignatureFile, SignatureError> {
        if bytes.len() > MAX_SIGNATURE_BYTES {
            return Err(SignatureError::Malformed {
                reason: format!(
                    "it is {} bytes; a minisign signature is under 1 KiB",
                    bytes.len()
                ),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SignatureError::Malformed {
            reason: "it is not UTF-8 text".into(),
        })?;
        let inner =
            minisign::SignatureBox::from_string(text).map_err(|e| SignatureError::Malformed {
                reason: e.to_string(),
            })?;
        if !inner.is_prehashed() {
            return Err(SignatureError::Malformed {
                reason: "it is a legacy (non-prehashed) minisign signature, which plugd does not accept; re-sign with a current minisign or `plugd sign`".into(),
            });
        }
        let key_id = KeyId::from_keynum(inner.keynum());
        let claim = inner
            .trusted_comment()
            .ok()
            .and_then(|c| SignedClaim::from_trusted_comment(&c));
        let embedded_key = inner
            .untrusted_comment()
            .ok()
            .and_then(|c| {
                c.rsplit_once(" public key ")
                    .and_then(|(_, k)| PublicKey::parse(k).ok())
            })
            // A key that does not match the signature's key id is not the
            // signer's; ignore it rather than let it stand in for one.
            .filter(|k| k.id() == key_id);
        Ok(SignatureFile {
            inner,
            key_id,
            claim,
            embedded_key,
        })
    }

    /// The id of the key that made the signature (as the file says; only a
    /// successful [`verify`] proves it).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signer's public key as carried in the untrusted comment, when it
    /// has the signature's key id. Use it to check integrity only: it proves
    /// nothing about who signed.
    pub fn embedded_key(&self) -> Option<&PublicKey> {
        self.embedded_key.as_ref()
    }

    /// What the signature says it covers, when it is a plugd signature.
    pub fn claim(&self) -> Option<&SignedClaim> {
        self.claim.as_ref()
    }
}

/// Checks that `signature` was made by `key` over `actual`.
///
/// The order matters for the message: first the signature must be genuine for
/// what it claims (else [`SignatureError::BadSignature`]), then that claim must
/// be this package (else a mismatch naming the differing part).
pub fn verify(
    signature: &SignatureFile,
    key: &PublicKey,
    actual: &SignedClaim,
) -> Result<(), SignatureError> {
    if signature.key_id != key.id() {
        return Err(SignatureError::WrongKey {
            signed_by: signature.key_id,
            key: key.id(),
        });
    }
    let claimed = signature.claim.as_ref().unwrap_or(actual);
    minisign::verify(
        &key.inner,
        &signature.inner,
        Cursor::new(claimed.message().into_bytes()),
        true,
        false,
        false,
    )
    .map_err(|e| SignatureError::BadSignature {
        key_id: key.id(),
        reason: e.to_string(),
    })?;
    if claimed.id != actual.id {
        return Err(SignatureError::IdMismatch {
            signed: claimed.id.clone(),
            actual: actual.id.clone(),
        });
    }
    if claimed.version != actual.version {
        return Err(SignatureError::VersionMismatch {
            id: actual.id.clone(),
            signed: claimed.version.clone(),
            actual: actual.version.clone(),
        });
    }
    if claimed.digest != actual.digest {
        return Err(SignatureError::DigestMismatch {
            signed: claimed.digest,
            actual: actual.digest,
        });
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature file is not a minisign signature plugd accepts.
    #[error("the signature file is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The signature does not verify under its key: forged, corrupted, or not
    /// made over what it claims.
    #[error(
        "bad signature: it does not verify under key {key_id} ({reason}); the signature file was altered or was not made by this key"
    )]
    BadSignature {
        /// The key it was checked with.
        key_id: KeyId,
        /// What minisign said.
        reason: String,
    },
    /// A key was used that did not make the signature.
    #[error("the signature was made by key {signed_by}, not by key {key}")]
    WrongKey {
        /// The key id in the signature.
        signed_by: KeyId,
        /// The key id offered.
        key: KeyId,
    },
    /// A genuine signature for another package's content.
    #[error(
        "digest mismatch: the signature covers content {signed}, but the package's files digest to {actual}; the package was modified after it was signed"
    )]
    DigestMismatch {
        /// The digest that was signed.
        signed: Digest,
        /// The digest of the package offered.
        actual: Digest,
    },
    /// A genuine signature for another plugin.
    #[error(
        "id mismatch: the signature is for plugin `{signed}`, but the package is plugin `{actual}`; a signature cannot be reused for another plugin"
    )]
    IdMismatch {
        /// The id that was signed.
        signed: String,
        /// The package's id.
        actual: String,
    },
    /// A genuine signature for another version of this plugin.
    #[error(
        "version mismatch: the signature is for `{id}` version {signed}, but the package is version {actual}; sign each version"
    )]
    VersionMismatch {
        /// The plugin id.
        id: String,
        /// The version that was signed.
        signed: String,
        /// The package's version.
        actual: String,
    },
    /// A public key could not be read.
    #[error(
        "not a minisign public key: {reason}; give the key line (base64, 56 characters) or a `.pub` file"
    )]
    BadPublicKey {
        /// What is wrong.
        reason: String,
    },
    /// A secret key could not be read or decrypted.
    #[error("cannot read the secret key: {reason}")]
    BadSecretKey {
        /// What is wrong.
        reason: String,
    },
    /// The secret key is encrypted (or damaged) and no password was given.
    #[error(
        "the secret key is encrypted (or damaged: {reason}); give its password with --password-file FILE or PLUGD_KEY_PASSWORD"
    )]
    PasswordNeeded {
        /// What minisign said when read without a password.
        reason: String,
    },
    /// Key generation failed.
    #[error("cannot generate a key: {reason}")]
    Generate {
        /// What failed.
        reason: String,
    },
    /// Signing failed.
    #[error("cannot sign: {reason}")]
    Sign {
        /// What failed.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, version: &str, content: &[u8]) -> SignedClaim {
        SignedClaim {
            id: id.into(),
            version: version.into(),
            digest: Digest::of_bytes(content),
        }
    }

    fn key() -> SecretKey {
        let generated = generate_key(None, "test").unwrap();
        SecretKey::parse(&generated.secret_file, None).unwrap()
    }

    #[test]
    fn the_signed_message_is_the_documented_canonical_text() {
        let c = claim("echo", "1.2.3", b"x");
        assert_eq!(
            c.message(),
            format!("plugd-signature-v1\necho\n1.2.3\n{}\n", c.digest)
        );
        assert!(c.digest.to_string().starts_with("sha256:"));
    }

    #[test]
    fn a_signature_verifies_and_every_part_of_the_claim_is_bound() {
        let sk = key();
        let c = claim("echo", "1.0.0", b"files");
        let text = sign(&sk, &c).unwrap();
        let sig = SignatureFile::parse(text.as_bytes()).unwrap();
        assert_eq!(sig.key_id(), sk.public().id());
        assert_eq!(sig.claim(), Some(&c));
        assert_eq!(sig.embedded_key().unwrap().id(), sk.public().id());
        verify(&sig, sk.public(), &c).unwrap();

        let other_id = claim("other", "1.0.0", b"files");
        assert!(matches!(
            verify(&sig, sk.public(), &other_id),
            Err(SignatureError::IdMismatch { .. })
        ));
        let other_version = claim("echo", "1.0.1", b"files");
        assert!(matches!(
            verify(&sig, sk.public(), &other_version),
            Err(SignatureError::VersionMismatch { .. })
        ));
        let tampered = claim("echo", "1.0.0", b"filez");
        let err = verify(&sig, sk.public(), &tampered).unwrap_err();
        assert!(matches!(err, SignatureError::DigestMismatch { .. }));
        assert!(err.to_string().contains("digest mismatch"), "{err}");
    }

    #[test]
    fn a_lying_trusted_comment_is_a_bad_signature() {
        let sk = key();
        let c = claim("echo", "1.0.0", b"files");
        let text = sign(&sk, &c).unwrap();
        // Rewrite the claim in the trusted comment to another plugin: the
        // global signature no longer matches.
        let forged = text.replace("id=echo ", "id=evil ");
        assert_ne!(forged, text);
        let sig = SignatureFile::parse(forged.as_bytes()).unwrap();
        let actual = claim("evil", "1.0.0", b"files");
        assert!(matches!(
            verify(&sig, sk.public(), &actual),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn another_key_is_refused_by_id() {
        let sk = key();
        let other = key();
        let c = claim("echo", "1.0.0", b"files");
        let sig = SignatureFile::parse(sign(&sk, &c).unwrap().as_bytes()).unwrap();
        assert!(matches!(
            verify(&sig, other.public(), &c),
            Err(SignatureError::WrongKey { .. })
        ));
    }

    #[test]
    fn an_embedded_key_with_another_id_is_ignored() {
        let sk = key();
        let other = key();
        let c = claim("echo", "1.0.0", b"files");
        let text = sign(&sk, &c)
            .unwrap()
            .replace(&sk.public().to_base64(), &other.public().to_base64());
        let sig = SignatureFile::parse(text.as_bytes()).unwrap();
        assert!(sig.embedded_key().is_none());
    }

    #[test]
    fn encrypted_keys_need_their_password_and_never_prompt() {
        let generated = generate_key(Some("hunter2"), "test").unwrap();
        assert!(matches!(
            SecretKey::parse(&generated.secret_file, None),
            Err(SignatureError::PasswordNeeded { .. })
        ));
        assert!(matches!(
            SecretKey::parse(&generated.secret_file, Some("wrong")),
            Err(SignatureError::BadSecretKey { .. })
        ));
        let sk = SecretKey::parse(&generated.secret_file, Some("hunter2")).unwrap();
        assert_eq!(sk.public().id(), generated.public.id());
        let public = PublicKey::parse(&generated.public_file).unwrap();
        assert_eq!(public.id(), generated.public.id());
        let bare = PublicKey::parse(&generated.public.to_base64()).unwrap();
        assert_eq!(bare.id(), generated.public.id());
    }

    #[test]
    fn malformed_signature_files_are_refused_not_panicked_on() {
        let sk = key();
        let good = sign(&sk, &claim("echo", "1.0.0", b"x")).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\n\n\n\n".to_vec(),
            vec![0xff, 0xfe, 0x00],
            vec![b'a'; MAX_SIGNATURE_BYTES + 1],
            lines[..2].join("\n").into_bytes(),
            format!("{}\n!!!notbase64\n{}\n{}\n", lines[0], lines[2], lines[3]).into_bytes(),
            format!("{}\nRWQ=\n{}\n{}\n", lines[0], lines[2], lines[3]).into_bytes(),
            format!("nope\n{}\n{}\n{}\n", lines[1], lines[2], lines[3]).into_bytes(),
            format!("{}\n{}\nnope\n{}\n", lines[0], lines[1], lines[3]).into_bytes(),
        ];
        for case in cases {
            assert!(
                matches!(
                    SignatureFile::parse(&case),
                    Err(SignatureError::Malformed { .. })
                ),
                "accepted {:?}",
                String::from_utf8_lossy(&case)
            );
        }
        // A damaged global signature parses but does not verify.
        let mut global: Vec<char> = lines[3].chars().collect();
        global[10] = if global[10] == 'A' { 'B' } else { 'A' };
        let global: String = global.into_iter().collect();
        let damaged = format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[2], global);
        let sig = SignatureFile::parse(damaged.as_bytes()).unwrap();
        assert!(matches!(
            verify(&sig, sk.public(), &claim("echo", "1.0.0", b"x")),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn bad_public_keys_are_refused() {
        for text in [
            "",
            "untrusted comment: x\n",
            "RWQ",
            "not a key at all, but exactly fifty six characters long!",
        ] {
            assert!(
                matches!(
                    PublicKey::parse(text),
                    Err(SignatureError::BadPublicKey { .. })
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn signature_path_is_beside_the_package() {
        assert_eq!(
            signature_path(Path::new("/a/echo-1.0.0.tar.gz")),
            Path::new("/a/echo-1.0.0.tar.gz.minisig")
        );
        assert_eq!(
            signature_path(Path::new("/a/echo/")),
            Path::new("/a/echo.minisig")
        );
    }
}
