//! One process per storage root: `<root>/.lock`, locked exclusively (`flock`) while any driver
//! of this process has the root open.
//!
//! Opening a root sweeps temp files and replays the journal, and a running store keeps its
//! index in memory: a second process on the same root (a second `ocireg serve`, an offline
//! `ocireg gc --root` while the server runs) would delete another's in-flight temp files,
//! replay records under its feet or collect blobs it is linking. The lock turns that into a
//! clear error at open. Within one process the lock is shared: opening the root again (a
//! restart in a test, a reload) while an earlier driver still lives reuses it. The lock file
//! holds the holder's process id, for the error message. `flock` locks are released by the
//! kernel when the process dies, so a crash leaves nothing to clean up.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::{Result, StoreError};

/// The lock file's name in the root (a dot name: never a key, never listed).
pub(super) const LOCK_NAME: &str = ".lock";

/// Roots this process holds, by canonical path.
static HELD: Mutex<BTreeMap<PathBuf, Weak<RootLock>>> = Mutex::new(BTreeMap::new());

/// The held lock of one root; released when the last driver (and task) using it is gone.
#[derive(Debug)]
pub(super) struct RootLock {
    _file: File,
}

/// Locks `root` (an existing directory) for this process, or shares the lock this process
/// already holds on it. [`StoreError::RootInUse`] if another process holds it.
pub(super) fn lock_root(root: &Path) -> Result<Arc<RootLock>> {
    let key = root.display().to_string();
    let canonical = root
        .canonicalize()
        .map_err(|e| StoreError::io("lock root", &key, e))?;
    let mut held = HELD.lock();
    if let Some(lock) = held.get(&canonical).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    let path = canonical.join(LOCK_NAME);
    let fail = |e| StoreError::io("lock root", &key, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(fail)?;
    if !ocireg_sys::try_lock_exclusive(&file).map_err(fail)? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(StoreError::RootInUse {
            root: key,
            holder: if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("process {holder}")
            },
        });
    }
    write_pid(&mut file).map_err(fail)?;
    let lock = Arc::new(RootLock { _file: file });
    held.retain(|_, weak| weak.strong_count() > 0);
    held.insert(canonical, Arc::downgrade(&lock));
    Ok(lock)
}

/// Replaces the lock file's content with this process's id (not synced: it only names the
/// holder while the lock is held).
fn write_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn shared_within_the_process_exclusive_across_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_root(dir.path()).unwrap();
        let again = lock_root(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one lock per root per process");
        // Another open file description (as another process would have) cannot take it.
        let other = File::open(dir.path().join(LOCK_NAME)).unwrap();
        assert_eq!(
            ocireg_sys::try_lock_exclusive(&other).unwrap(),
            !cfg!(target_os = "linux")
        );
        drop((first, again));
        assert!(ocireg_sys::try_lock_exclusive(&other).unwrap());
        // Now "another process" holds it: opening fails and names the holder.
        std::fs::write(dir.path().join(LOCK_NAME), "4242\n").unwrap();
        if cfg!(target_os = "linux") {
            let err = lock_root(dir.path()).unwrap_err();
            assert!(
                matches!(&err, StoreError::RootInUse { holder, .. } if holder == "process 4242"),
                "{err}"
            );
        }
        drop(other);
        let lock = lock_root(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_NAME)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(lock);
    }
}
