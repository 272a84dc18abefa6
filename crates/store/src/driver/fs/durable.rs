//! The filesystem driver's durable file operations: directories made durable in their parents
//! (cached), temp file writes, renames followed by a directory sync.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::lock::RootLock;
use super::TMP_SUFFIX;

/// The driver's shared state: its root and the directories known to be durable.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) root: PathBuf,
    /// This process's lock on the root, held as long as anything can write through `Inner`.
    pub(super) _lock: Arc<RootLock>,
    /// Directories known to exist durably (created and synced, or synced once since open).
    /// Ordered by components, so a directory's descendants follow it contiguously.
    pub(super) durable_dirs: Mutex<BTreeSet<PathBuf>>,
}

/// Syncs a directory (its entries become durable).
pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The parent directory of `path`, or an error for a root.
pub(super) fn parent_of(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))
}

impl Inner {
    /// Makes sure `dir` exists and its entry is durable in its parent (recursively).
    pub(super) fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        if self.durable_dirs.lock().contains(dir) {
            return Ok(());
        }
        let parent = parent_of(dir)?;
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} exists and is not a directory",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_dir(parent)?;
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        // Whether we created it or found it, its entry must be durable before we use it.
        fsync_dir(parent)?;
        self.durable_dirs.lock().insert(dir.to_path_buf());
        Ok(())
    }

    /// Makes sure `dir` exists, without syncing anything (scratch space for writers).
    pub(super) fn make_dir(&self, dir: &Path) -> io::Result<()> {
        if self.durable_dirs.lock().contains(dir) {
            return Ok(());
        }
        fs::create_dir_all(dir)
    }

    /// Forgets cached directories at or below `dir` (after a delete).
    pub(super) fn forget_dirs(&self, dir: &Path) {
        // Only the range at and below `dir` is visited (a full scan made every delete cost
        // O(directories known), which dominated the mixed benchmark after 5,000 repositories).
        let mut dirs = self.durable_dirs.lock();
        let doomed: Vec<PathBuf> = dirs
            .range(dir.to_path_buf()..)
            .take_while(|d| d.starts_with(dir))
            .cloned()
            .collect();
        for d in &doomed {
            dirs.remove(d);
        }
    }

    /// Renames `from` onto `to`, creating `to`'s directory, then syncs that directory.
    pub(super) fn rename_durable(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.rename_into(from, to)?;
        fsync_dir(parent_of(to)?)
    }

    /// Renames `from` onto `to` into a durable directory (created if needed), without syncing
    /// the rename itself.
    pub(super) fn rename_into(&self, from: &Path, to: &Path) -> io::Result<()> {
        let dir = parent_of(to)?;
        self.ensure_dir(dir)?;
        if let Err(e) = fs::rename(from, to) {
            if e.kind() != io::ErrorKind::NotFound || !from.exists() {
                return Err(e);
            }
            // The directory vanished under us (deleted concurrently): recreate and retry once.
            self.forget_dirs(dir);
            self.ensure_dir(dir)?;
            fs::rename(from, to)?;
        }
        Ok(())
    }

    /// Writes `content` to a new temp file next to `target` and syncs it; returns its path.
    pub(super) fn write_temp(&self, target: &Path, content: &[u8]) -> io::Result<PathBuf> {
        let dir = parent_of(target)?;
        self.ensure_dir(dir)?;
        temp_file(dir, target, content, true)
    }

    /// Writes `content` over `target` through a temp file and a rename, syncing nothing
    /// (journaled writes: the journal holds the content until a checkpoint syncs the files).
    pub(super) fn put_unsynced(&self, target: &Path, content: &[u8]) -> io::Result<()> {
        let dir = parent_of(target)?;
        self.make_dir(dir)?;
        let tmp = temp_file(dir, target, content, false)?;
        let renamed = fs::rename(&tmp, target);
        if renamed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        renamed
    }

    pub(super) fn put_blocking(&self, target: &Path, content: &[u8]) -> io::Result<()> {
        let tmp = self.write_temp(target, content)?;
        let result = self.rename_durable(&tmp, target);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A new temp file in `dir` (named after `target`) holding `content`, synced when `sync`.
fn temp_file(dir: &Path, target: &Path, content: &[u8], sync: bool) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let tmp = dir.join(format!(".{name}.{random}{TMP_SUFFIX}"));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(content)?;
        if sync {
            file.sync_all()?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}
