//! Staging directories: where the caller unpacks a package before it is committed.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::fsutil::{create_private_dir, remove_tree};
use crate::lock::{open_lock_file, try_lock};

/// Suffix of the lock file that sits next to each staging directory.
pub(crate) const LOCK_SUFFIX: &str = ".lock";

/// A fresh directory under `$PLUGD_HOME/staging`, removed (with everything in it) on drop.
///
/// The caller unpacks a package somewhere inside [`Staging::path`] and hands the package root to
/// [`Store::commit_install`](crate::Store::commit_install), which moves it into the store with
/// one rename; the rest of the staging directory goes away when the `Staging` is dropped.
///
/// While a `Staging` lives, this process holds an exclusive `flock` on its sibling file
/// `staging/<name>.lock`. [`Store::open`](crate::Store::open) in any process removes staging
/// directories whose lock it can take, that is, the ones whose owner died without cleaning up.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    // Held for the lifetime of the `Staging`: closing it releases the `flock`.
    _lock: File,
}

impl Staging {
    /// Creates `<staging_root>/<uuid>` and its locked `<uuid>.lock`.
    ///
    /// Must be called with the home lock held: recovery also runs under it, so it can never see
    /// the moment between creating the lock file and locking it.
    pub(crate) fn create(staging_root: &Path) -> Result<Staging, StoreError> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let lock_path = staging_root.join(format!("{name}{LOCK_SUFFIX}"));
        let lock = open_lock_file(&lock_path, true)?;
        if !try_lock(&lock, &lock_path)? {
            // A fresh uuid's lock file cannot be held by anyone; if it is, refuse loudly.
            return Err(StoreError::Io {
                op: "lock",
                path: lock_path,
                source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
            });
        }
        let dir = staging_root.join(&name);
        let staging = Staging {
            dir,
            lock_path,
            _lock: lock,
        };
        create_private_dir(&staging.dir)?;
        Ok(staging)
    }

    /// The directory to unpack into.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Directory first, lock file last: a directory without its lock file is recognisably
        // dead, so a crash between the two steps still leaves nothing recovery would keep.
        if let Err(e) = remove_tree(&self.dir) {
            tracing::warn!(error = %e, "could not remove a staging directory; the next start removes it");
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.lock_path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.lock_path.display(), error = %e, "could not remove a staging lock file");
        }
    }
}
