//! Advisory `flock(2)` locks: the home lock that serialises changes to the store, and the
//! per-staging-directory locks that tell recovery which staging directories are still in use.
//!
//! `flock` rather than a PID file: the kernel drops the lock when its holder dies however it
//! dies, PIDs get reused and differ across PID namespaces, and `flock` locks belong to the open
//! file description, so two `Store`s in one process exclude each other exactly like two
//! processes do (which is what the threaded tests rely on). Acquiring polls with `LOCK_NB` so a
//! wedged holder produces an error the user can act on instead of an endless hang.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::StoreError;
use crate::error::io;

/// How long a process waits for the home lock before giving up. Commits hold it for a rename
/// and one transaction, so this is only ever reached when a holder is stuck.
pub(crate) const HOME_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The exclusive lock on `$PLUGD_HOME/lock`, released on drop (closing the file releases it).
#[derive(Debug)]
pub(crate) struct HomeLock {
    _file: File,
}

impl HomeLock {
    /// Waits (up to `timeout`) for the exclusive lock on `path`, creating the file if needed.
    pub(crate) fn acquire(path: &Path, timeout: Duration) -> Result<HomeLock, StoreError> {
        let file = open_lock_file(path, false)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if try_lock(&file, path)? {
                return Ok(HomeLock { _file: file });
            }
            if start.elapsed() >= timeout {
                return Err(StoreError::LockTimeout {
                    path: path.to_path_buf(),
                    waited_secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Opens (creating with mode 0600 unless `create_new`, then it must not exist) a lock file.
pub(crate) fn open_lock_file(path: &Path, create_new: bool) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    options.open(path).map_err(io("open the lock file", path))
}

/// Tries to take an exclusive lock without waiting; `Ok(false)` means someone else holds it.
pub(crate) fn try_lock(file: &File, path: &Path) -> Result<bool, StoreError> {
    loop {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io("lock", PathBuf::from(path))(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_description_is_excluded_until_the_first_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let first = HomeLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let err = HomeLock::acquire(&path, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::LockTimeout { .. }), "{err}");
        assert!(err.to_string().contains("another plugd process"));
        drop(first);
        HomeLock::acquire(&path, Duration::from_millis(50)).unwrap();
    }
}
