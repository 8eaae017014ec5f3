//! Install, update, rollback, enable, disable, uninstall, list and info.
//!
//! Every path that writes goes through [`Host::stage`] (unpack into the store's
//! staging area, validate, digest) and then one store commit, so a refused or
//! interrupted install leaves the store exactly as it was.

use std::path::{Path, PathBuf};

use plugd_manifest::{Loaded, Manifest, TrustLevel};
use plugd_package::{Digest, Source};
use plugd_store::{ActivationEvent, CommitOutcome, NewVersion, Staging};

use crate::trust::{self, ScanSummary, SignatureCheck};
use crate::views::{InstallReport, InstallStatus, PluginView, RollbackReport, VersionView};
use crate::{Host, HostError};

/// Receives the names of the slow steps of an operation, so a caller can show
/// progress (the CLI draws a spinner on a terminal and nothing elsewhere).
pub trait Progress {
    /// A new step starts.
    fn step(&self, message: &str);
}

/// A [`Progress`] that shows nothing.
pub struct SilentProgress;

impl Progress for SilentProgress {
    fn step(&self, _message: &str) {}
}

/// Options of [`Host::install`] and [`Host::update`].
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Enable the plugin right away (a new plugin is installed disabled otherwise;
    /// ignored by `update`, which keeps the plugin's state).
    pub enable: bool,
    /// Install `trusted` and `verified` plugins despite high-severity scan findings.
    pub accept_findings: bool,
    /// The signature file, when it is not `<package>.minisig` beside the package.
    pub signature: Option<PathBuf>,
    /// An OSV advisory file to match the declared dependencies against.
    pub advisories: Option<PathBuf>,
    /// Let `update` activate a version that declares permissions the active
    /// one does not (DESIGN §6: widening needs explicit consent).
    pub accept_permissions: bool,
}

/// A package unpacked and checked in the staging area, not yet committed.
struct Staged {
    staging: Staging,
    root: PathBuf,
    loaded: Loaded,
    digest: Digest,
    source: String,
    scan: plugd_scan::ScanReport,
    signature: SignatureCheck,
    warnings: Vec<String>,
}

impl Staged {
    fn manifest(&self) -> &Manifest {
        &self.loaded.manifest
    }

    fn digest_string(&self) -> String {
        self.digest.to_string()
    }

    fn new_version(&self, enable: bool) -> Result<NewVersion, HostError> {
        let m = self.manifest();
        let manifest_json = serde_json::to_string(m).map_err(|e| HostError::StoredManifest {
            id: m.id.clone(),
            version: m.version.to_string(),
            message: e.to_string(),
        })?;
        Ok(NewVersion {
            id: m.id.clone(),
            name: m.name.clone(),
            version: m.version.to_string(),
            digest: self.digest.to_string(),
            manifest_json,
            runtime: m.runtime.to_string(),
            trust_level: m.trust_level.to_string(),
            source: self.source.clone(),
            enable,
        })
    }
}

impl Host {
    /// Unpacks, validates, scans, digests and verifies a package in the staging
    /// area, applying the trust policy (see [`crate::trust`]).
    fn stage(
        &self,
        path: &Path,
        options: &InstallOptions,
        progress: &dyn Progress,
    ) -> Result<Staged, HostError> {
        let source = Source::detect(path)?;
        let staging = self.store.stage()?;
        progress.step("unpacking");
        let unpacked = plugd_package::unpack(
            &source,
            &staging.path().join("package"),
            &self.config.unpack_limits,
        )?;
        progress.step("validating the manifest");
        let loaded = plugd_manifest::load(&unpacked.root)?;
        progress.step("scanning the code");
        let scan = trust::scan_package(
            &unpacked.root,
            Some(&loaded.manifest),
            options.advisories.as_deref(),
        );
        let mut warnings = self.apply_scan_policy(&loaded.manifest, &scan, options)?;
        progress.step("computing the digest");
        let digest = plugd_package::tree_digest(&unpacked.root)?;
        progress.step("checking the signature");
        let signature =
            self.apply_signature_policy(path, &loaded.manifest, digest, options, &mut warnings)?;
        plugd_package::make_read_only(&unpacked.root)?;
        let source = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        Ok(Staged {
            staging,
            root: unpacked.root,
            loaded,
            digest,
            source,
            scan,
            signature,
            warnings,
        })
    }

    fn apply_scan_policy(
        &self,
        manifest: &Manifest,
        scan: &plugd_scan::ScanReport,
        options: &InstallOptions,
    ) -> Result<Vec<String>, HostError> {
        let mut warnings = Vec::new();
        let high = scan.counts().high;
        if high == 0 {
            return Ok(warnings);
        }
        let top = || {
            scan.findings
                .iter()
                .filter(|f| f.severity == plugd_scan::Severity::High)
                .take(trust::TOP_FINDINGS)
                .map(trust::finding_line)
                .collect::<Vec<_>>()
        };
        match manifest.trust_level {
            TrustLevel::Sandboxed => warnings.push(format!(
                "the security scan found {high} high-severity finding(s); installing anyway because `sandboxed` plugins run confined"
            )),
            TrustLevel::Trusted | TrustLevel::Verified if options.accept_findings => {
                warnings.push(format!(
                    "the security scan found {high} high-severity finding(s), accepted with --accept-findings"
                ))
            }
            TrustLevel::Trusted | TrustLevel::Verified => {
                return Err(HostError::FindingsBlock {
                    id: manifest.id.clone(),
                    trust_level: manifest.trust_level.to_string(),
                    high,
                    top: top(),
                });
            }
        }
        Ok(warnings)
    }

    fn apply_signature_policy(
        &self,
        path: &Path,
        manifest: &Manifest,
        digest: Digest,
        options: &InstallOptions,
        warnings: &mut Vec<String>,
    ) -> Result<SignatureCheck, HostError> {
        let claim = plugd_package::SignedClaim {
            id: manifest.id.clone(),
            version: manifest.version.to_string(),
            digest,
        };
        let keyring = trust::Keyring::new(self.home());
        let check = trust::check_signature(&keyring, path, options.signature.as_deref(), &claim)?;
        let verified = manifest.trust_level == TrustLevel::Verified;
        match &check {
            SignatureCheck::Trusted { .. } => {}
            SignatureCheck::Unsigned { expected } if verified => {
                return Err(HostError::VerifiedNeedsSignature {
                    id: manifest.id.clone(),
                    expected: expected.clone(),
                });
            }
            SignatureCheck::Unsigned { .. } => {}
            SignatureCheck::Untrusted { key_id, .. } if verified => {
                return Err(HostError::UntrustedSigner {
                    id: manifest.id.clone(),
                    key_id: key_id.clone(),
                });
            }
            SignatureCheck::Untrusted { key_id, checked } => warnings.push(format!(
                "{}; the signer is recorded as untrusted (trust it with `plugd key trust`)",
                SignatureCheck::Untrusted {
                    key_id: key_id.clone(),
                    checked: *checked
                }
                .describe()
            )),
        }
        Ok(check)
    }

    /// Prepares the language environment of a staged package (DESIGN §6: after
    /// validation, before the commit), see [`crate::environment`].
    fn prepare_staged_env(
        &self,
        staged: &Staged,
        progress: &dyn Progress,
    ) -> Result<Option<crate::environment::PendingEnv>, HostError> {
        self.prepare_env(
            staged.manifest(),
            &staged.root,
            &staged.digest_string(),
            progress,
        )
    }

    fn commit(
        &self,
        staged: Staged,
        enable: bool,
        activate: bool,
        progress: &dyn Progress,
    ) -> Result<(InstallStatus, PathBuf, StagedSummary), HostError> {
        progress.step("committing");
        let new = staged.new_version(enable)?;
        let summary = StagedSummary::from(&staged);
        let scan_json = serde_json::to_string(&staged.scan).ok();
        let signer = staged.signature.signer_json();
        let outcome = self
            .store
            .commit_install(staged.staging, &staged.root, &new, activate)?;
        // A second write, after the commit: the store's commit takes no scan or
        // signer. A crash between the two leaves the version without them
        // (shown as "not recorded"), never a half-installed version.
        self.store.set_version_meta(
            &summary.id,
            &summary.version,
            scan_json.as_deref(),
            signer.as_deref(),
        )?;
        Ok(match outcome {
            CommitOutcome::Installed { dir } => (InstallStatus::Installed, dir, summary),
            CommitOutcome::AlreadyInstalled { dir } => (InstallStatus::Unchanged, dir, summary),
        })
    }

    /// Installs a new plugin from a directory or a `.tar.gz`.
    ///
    /// The same id, version and digest again is a no-op; another version of an
    /// installed plugin is refused with a pointer to [`Host::update`].
    pub fn install(
        &self,
        path: &Path,
        options: &InstallOptions,
        progress: &dyn Progress,
    ) -> Result<InstallReport, HostError> {
        let staged = self.stage(path, options, progress)?;
        let id = staged.manifest().id.clone();
        let version = staged.manifest().version.to_string();
        if let Some(plugin) = self.store.plugin(&id)?
            && self.store.version(&id, &version)?.is_none()
        {
            return Err(HostError::AlreadyInstalled {
                id,
                active: plugin.active_version,
                offered: version,
            });
        }
        let env = self.prepare_staged_env(&staged, progress)?;
        let (status, dir, summary) = self.commit(staged, options.enable, true, progress)?;
        self.place_env(env, progress)?;
        if status == InstallStatus::Unchanged && options.enable {
            self.store.set_enabled(&id, true)?;
        }
        self.report(status, dir, summary, None)
    }

    /// Installs a newer version of an installed plugin beside the old one and makes
    /// it active. A version older than the active one is refused (that is a
    /// rollback); an installed newer version is re-activated.
    ///
    /// The package goes through the same scan and signature policy as an install.
    pub fn update(
        &self,
        id: &str,
        path: &Path,
        options: &InstallOptions,
        progress: &dyn Progress,
    ) -> Result<InstallReport, HostError> {
        let plugin = self.require_plugin(id)?;
        let staged = self.stage(path, options, progress)?;
        let manifest = staged.manifest();
        if manifest.id != id {
            return Err(HostError::UpdateIdMismatch {
                expected: id.to_string(),
                found: manifest.id.clone(),
            });
        }
        let offered = manifest.version.clone();
        // Going back is a rollback, which records a reason; update only moves forward
        // (or re-offers the active version, a no-op when the digest matches).
        let active = parse_version(id, &plugin.active_version)?;
        if offered < active {
            return Err(HostError::NotNewer {
                id: id.to_string(),
                active: plugin.active_version,
                offered: offered.to_string(),
            });
        }
        if !options.accept_permissions {
            let old = self.stored_manifest(id, &plugin.active_version)?;
            let had: Vec<&str> = old
                .permissions
                .iter()
                .map(|p| p.original.as_str())
                .collect();
            let added: Vec<String> = manifest
                .permissions
                .iter()
                .map(|p| p.original.clone())
                .filter(|p| !had.contains(&p.as_str()))
                .collect();
            if !added.is_empty() {
                return Err(HostError::PermissionsWidened {
                    id: id.to_string(),
                    version: offered.to_string(),
                    added,
                });
            }
        }
        let env = self.prepare_staged_env(&staged, progress)?;
        let (status, dir, summary) = self.commit(staged, plugin.enabled, false, progress)?;
        self.place_env(env, progress)?;
        let mut previous = None;
        if plugin.active_version != offered.to_string() {
            progress.step("health check of the new version");
            if self.health_check(id, &offered.to_string())? == crate::health::Health::NotApplicable
            {
                tracing::info!(plugin = %id, "runtime has no health request; activating without one");
            }
            progress.step("activating");
            previous = Some(self.store.activate(
                id,
                &offered.to_string(),
                ActivationEvent::Update,
                None,
            )?);
        }
        self.report(status, dir, summary, previous)
    }

    /// Makes an installed older version active again and records why.
    ///
    /// Without `to`, the newest installed version older than the active one.
    pub fn rollback(
        &self,
        id: &str,
        to: Option<&str>,
        reason: &str,
    ) -> Result<RollbackReport, HostError> {
        if reason.trim().is_empty() {
            return Err(HostError::ReasonRequired);
        }
        let plugin = self.require_plugin(id)?;
        let target = match to {
            Some(version) => {
                if version == plugin.active_version {
                    return Err(HostError::AlreadyActive {
                        id: id.to_string(),
                        version: version.to_string(),
                    });
                }
                version.to_string()
            }
            None => {
                let active = parse_version(id, &plugin.active_version)?;
                let older = self
                    .store
                    .versions(id)?
                    .into_iter()
                    .filter_map(|v| semver::Version::parse(&v.version).ok())
                    .filter(|v| *v < active)
                    .max();
                match older {
                    Some(v) => v.to_string(),
                    None => {
                        return Err(HostError::NoRollbackTarget {
                            id: id.to_string(),
                            active: plugin.active_version,
                        });
                    }
                }
            }
        };
        let from = self
            .store
            .activate(id, &target, ActivationEvent::Rollback, Some(reason))?;
        Ok(RollbackReport {
            id: id.to_string(),
            from_version: from,
            to_version: target,
            reason: reason.to_string(),
        })
    }

    /// Allows or refuses calls to a plugin. Returns whether the state changed.
    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, HostError> {
        self.require_plugin(id)?;
        Ok(self.store.set_enabled(id, enabled)?)
    }

    /// Removes every version of a plugin. Returns the versions removed.
    pub fn uninstall(&self, id: &str) -> Result<Vec<String>, HostError> {
        self.require_plugin(id)?;
        let removed = self.store.uninstall(id)?;
        // After the rows: a crash in between leaves envs that the next open sweeps.
        self.remove_envs(id)?;
        Ok(removed)
    }

    /// Every installed plugin.
    pub fn list(&self) -> Result<Vec<PluginView>, HostError> {
        self.store
            .plugins()?
            .into_iter()
            .map(|p| self.plugin_view(p, false))
            .collect()
    }

    /// One plugin with its versions and audit log.
    pub fn info(&self, id: &str) -> Result<PluginView, HostError> {
        let plugin = self.require_plugin(id)?;
        self.plugin_view(plugin, true)
    }

    pub(crate) fn require_plugin(&self, id: &str) -> Result<plugd_store::PluginRecord, HostError> {
        self.store
            .plugin(id)?
            .ok_or_else(|| HostError::NotInstalled { id: id.to_string() })
    }

    /// The manifest of one installed version, read back from the database.
    pub(crate) fn stored_manifest(&self, id: &str, version: &str) -> Result<Manifest, HostError> {
        let record = self
            .store
            .version(id, version)?
            .ok_or_else(|| HostError::NotInstalled { id: id.to_string() })?;
        serde_json::from_str(&record.manifest_json).map_err(|e| HostError::StoredManifest {
            id: id.to_string(),
            version: version.to_string(),
            message: e.to_string(),
        })
    }

    fn plugin_view(
        &self,
        plugin: plugd_store::PluginRecord,
        detailed: bool,
    ) -> Result<PluginView, HostError> {
        let manifest = self.stored_manifest(&plugin.id, &plugin.active_version)?;
        let (versions, audit) = if detailed {
            let versions = self
                .store
                .versions(&plugin.id)?
                .into_iter()
                .map(|v| VersionView {
                    dir: self
                        .store
                        .version_dir(&plugin.id, &v.version)
                        .display()
                        .to_string(),
                    version: v.version,
                    active: v.active,
                    digest: v.digest,
                    runtime: v.runtime,
                    trust_level: v.trust_level,
                    source: v.source,
                    installed_at: v.installed_at,
                    scan: v
                        .scan_json
                        .as_deref()
                        .and_then(|j| serde_json::from_str(j).ok()),
                    signer: v
                        .signer
                        .as_deref()
                        .and_then(|j| serde_json::from_str(j).ok()),
                })
                .collect();
            (versions, self.store.audit(Some(&plugin.id), 100)?)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(PluginView {
            runtime: manifest.runtime.to_string(),
            trust_level: manifest.trust_level.to_string(),
            description: manifest.description.clone(),
            actions: manifest.actions.iter().map(|a| a.name.clone()).collect(),
            id: plugin.id,
            name: plugin.name,
            enabled: plugin.enabled,
            active_version: plugin.active_version,
            installed_at: plugin.installed_at,
            updated_at: plugin.updated_at,
            versions,
            audit,
        })
    }

    fn report(
        &self,
        status: InstallStatus,
        dir: PathBuf,
        summary: StagedSummary,
        previous_version: Option<String>,
    ) -> Result<InstallReport, HostError> {
        let plugin = self.require_plugin(&summary.id)?;
        Ok(InstallReport {
            status,
            active: plugin.active_version == summary.version,
            enabled: plugin.enabled,
            id: summary.id,
            name: summary.name,
            version: summary.version,
            digest: summary.digest,
            runtime: summary.runtime,
            trust_level: summary.trust_level,
            dialect: summary.dialect,
            previous_version,
            dir: dir.display().to_string(),
            scan: summary.scan,
            signature: summary.signature,
            warnings: summary.warnings,
        })
    }
}

/// The parts of a staged package that outlive the commit (which consumes the staging).
struct StagedSummary {
    id: String,
    name: String,
    version: String,
    digest: String,
    runtime: String,
    trust_level: String,
    dialect: String,
    scan: ScanSummary,
    signature: SignatureCheck,
    warnings: Vec<String>,
}

impl From<&Staged> for StagedSummary {
    fn from(s: &Staged) -> Self {
        let m = s.manifest();
        Self {
            id: m.id.clone(),
            name: m.name.clone(),
            version: m.version.to_string(),
            digest: s.digest.to_string(),
            runtime: m.runtime.to_string(),
            trust_level: m.trust_level.to_string(),
            dialect: s.loaded.dialect.to_string(),
            scan: ScanSummary::of(&s.scan),
            signature: s.signature.clone(),
            warnings: s.warnings.clone(),
        }
    }
}

fn parse_version(id: &str, version: &str) -> Result<semver::Version, HostError> {
    semver::Version::parse(version).map_err(|e| HostError::StoredManifest {
        id: id.to_string(),
        version: version.to_string(),
        message: e.to_string(),
    })
}
