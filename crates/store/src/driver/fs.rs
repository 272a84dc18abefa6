//! The filesystem driver: one file per object under a root directory.
//!
//! Durability recipe (every acknowledged write survives power loss, nothing torn is visible):
//! - `put_content`: write a temp file next to the target, fsync it, rename it over the
//!   target, fsync the target's directory.
//! - `move_object`: rename, then fsync the destination directory.
//! - writers sync the file's data on `commit` and nothing else: a writer's object is scratch
//!   space (an upload session) whose bytes become durably visible only through `move_object`.
//!   Its directories are created without syncs.
//! - a directory this process creates for `put_content`/`move_object` is fsynced into its
//!   parent before anything is put in it; a directory first met this process gets its parent
//!   fsynced once (it may have been created by a process that died before syncing it).
//!   Known-durable directories are cached.
//!
//! `put_ordered` (manifests and their links, blob links) and `publish` (a pushed blob's move
//! into place with its link) go through a write-ahead journal instead: one group-committed
//! `fdatasync` per put, the files synced at checkpoints (see `fs/journal.rs`).
//!
//! Temp files are named `.<name>.<random>.tmp` in the target's own directory: a rename within
//! one directory locks only that directory (a cross-directory rename takes the filesystem-wide
//! rename lock and both directories' locks, which serialized concurrent manifest puts), and
//! new inodes spread over the directories' block groups. Dot names are never reachable
//! through keys (dot components are invalid) nor listed, and opening the driver deletes every
//! leftover temp file: an interrupted write leaves nothing visible.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{
    key_prefix, range_end, validate_key, Driver, FileWriter, ObjectMeta, Precondition, Publication,
    Version,
};
use crate::error::{Result, StoreError};
use crate::ByteStream;
use writer::FsWriter;

mod bufpool;
mod durable;
mod journal;
mod lock;
mod reader;
mod writer;

use durable::{fsync_dir, parent_of, Inner};

/// Shards of the conditional-write lock table.
const CONDITIONAL_SHARDS: usize = 64;
use journal::Journal;

/// Suffix of temp file names (which also start with `.`).
const TMP_SUFFIX: &str = ".tmp";
/// The journal's file name in the root (a dot name: never a key, never listed).
const JOURNAL_NAME: &str = ".journal";

/// Stores objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct FsDriver {
    inner: Arc<Inner>,
    /// `None` where the system has no per-filesystem sync (then `put_ordered` syncs each file).
    journal: Option<Arc<Journal>>,
    /// Serializes conditional writes per key (one process owns the root: see `fs/lock.rs`).
    conditional: Arc<crate::locks::KeyLocks>,
}

impl FsDriver {
    /// Opens (creating if needed) a store rooted at `root`, and removes leftover temp files.
    /// Fails with [`StoreError::RootInUse`] while another process has the root open (see
    /// `fs/lock.rs`).
    pub async fn open(root: &Path) -> Result<FsDriver> {
        let root = root.to_path_buf();
        blocking(move || {
            let key = root.display().to_string();
            fs::create_dir_all(&root).map_err(|e| StoreError::io("create root", &key, e))?;
            let lock = lock::lock_root(&root)?;
            let removed =
                sweep_temps(&root).map_err(|e| StoreError::io("clean temp files", &key, e))?;
            if removed > 0 {
                tracing::info!(removed, root = %key, "removed temp files of interrupted writes");
            }
            let mut durable = BTreeSet::new();
            durable.insert(root.clone());
            let inner = Inner {
                root,
                _lock: lock,
                durable_dirs: Mutex::new(durable),
            };
            let journal = if cfg!(target_os = "linux") {
                let (journal, replayed) = Journal::open(&inner)
                    .map_err(|e| StoreError::io("replay journal", JOURNAL_NAME, e))?;
                if replayed > 0 {
                    tracing::info!(replayed, root = %key, "replayed journaled puts");
                }
                Some(Arc::new(journal))
            } else {
                None
            };
            Ok(FsDriver {
                inner: Arc::new(inner),
                journal,
                conditional: Arc::new(crate::locks::KeyLocks::new(CONDITIONAL_SHARDS)),
            })
        })
        .await
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.inner.root.join(key))
    }

    /// Before writing or deleting `path` (or below it) outside the journal: checkpoints the
    /// journal if a pending record wrote there, so a replay cannot undo this write.
    async fn settle(&self, path: &Path) -> Result<()> {
        match &self.journal {
            Some(journal) => journal.settle(path).await,
            None => Ok(()),
        }
    }

    /// Runs `op` on the blocking pool to write or delete `key` outside the journal, after
    /// settling the journal there; `op` gets the root's state and the key's path, and its I/O
    /// error is reported as `action` on `key`.
    async fn write_outside_journal<T, F>(&self, key: &str, action: &'static str, op: F) -> Result<T>
    where
        F: FnOnce(&Inner, &Path) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let path = self.path(key)?;
        self.settle(&path).await?;
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        blocking(move || op(&inner, &path).map_err(|e| StoreError::io(action, &key, e))).await
    }

    /// Deletes an object or a whole prefix; with `durable`, syncs the parent directory.
    async fn remove(&self, key: &str, durable: bool) -> Result<()> {
        self.write_outside_journal(key, "delete", move |inner, path| {
            let meta = fs::symlink_metadata(path)?;
            if meta.is_dir() {
                inner.forget_dirs(path);
                fs::remove_dir_all(path)?;
            } else {
                fs::remove_file(path)?;
            }
            if durable {
                fsync_dir(parent_of(path)?)?;
            }
            Ok(())
        })
        .await
    }

    fn prefix_path(&self, prefix: &str) -> Result<PathBuf> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            Ok(self.inner.root.clone())
        } else {
            self.path(trimmed)
        }
    }
}

/// Runs blocking filesystem work on tokio's blocking pool.
/// Opens a stored object for reading: the file and its size (a directory is not an object).
fn open_object(path: &std::path::Path, key: &str) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| StoreError::io("open", key, e))?;
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io("stat", key, e))?;
    if !meta.is_file() {
        return Err(StoreError::NotFound {
            key: key.to_owned(),
        });
    }
    Ok((file, meta.len()))
}

pub(super) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("blocking task failed: {e}")))?
}

/// Syncs of one stage run on separate blocking threads so the filesystem's journal commits
/// them together.
async fn in_parallel<T, F>(jobs: Vec<F>) -> Result<Vec<T>>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    futures_util::future::try_join_all(jobs.into_iter().map(blocking)).await
}

#[async_trait]
impl Driver for FsDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    async fn space(&self) -> Result<Option<ocireg_sys::Space>> {
        let root = self.inner.root.clone();
        blocking(move || {
            ocireg_sys::filesystem_space(&root)
                .map(Some)
                .map_err(|e| StoreError::io("statvfs", &root.display().to_string(), e))
        })
        .await
    }

    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version)> {
        let data = self.get_content(key).await?;
        let version = Version::of_content(&data);
        Ok((data, version))
    }

    /// Compares and writes under the key's lock: every write through `put_if` is ordered by it,
    /// and this process is the root's only writer.
    async fn put_if(&self, key: &str, content: Bytes, condition: Precondition) -> Result<Version> {
        validate_key(key)?;
        let _guard = self.conditional.lock(key).await;
        let current = match self.get_content(key).await {
            Ok(data) => Some(Version::of_content(&data)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let holds = match (&condition, &current) {
            (Precondition::Absent, None) => true,
            (Precondition::Matches(want), Some(have)) => want == have,
            _ => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed {
                key: key.to_owned(),
            });
        }
        let version = Version::of_content(&content);
        self.put_content(key, content).await?;
        Ok(version)
    }

    async fn get_content(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Err(StoreError::NotFound {
                key: key.to_owned(),
            }),
            Err(e) => Err(StoreError::io("read", key, e)),
        }
    }

    async fn put_content(&self, key: &str, content: Bytes) -> Result<()> {
        self.write_outside_journal(key, "put", move |inner, target| {
            inner.put_blocking(target, &content)
        })
        .await
    }

    /// One blocking call: the directory (unsynced) and a plain write.
    async fn put_scratch(&self, key: &str, content: Bytes) -> Result<()> {
        self.write_outside_journal(key, "put", move |inner, target| {
            inner.make_dir(parent_of(target)?)?;
            fs::write(target, &content)
        })
        .await
    }

    /// With the journal: one journaled record for all groups, written in group order (see
    /// `fs/journal.rs`). Without: all temp files are written and synced at once (one journal
    /// commit), then each group is renamed into place and its directories synced (one commit
    /// per group).
    async fn put_ordered(&self, groups: Vec<Vec<(String, Bytes)>>) -> Result<()> {
        if let Some(journal) = &self.journal {
            let entries: Vec<(String, Bytes)> = groups.into_iter().flatten().collect();
            for (key, _) in &entries {
                validate_key(key)?;
            }
            return journal.put(&self.inner, entries).await;
        }
        let mut targets = Vec::new();
        let mut writes = Vec::new();
        for (g, group) in groups.into_iter().enumerate() {
            for (key, content) in group {
                let target = self.path(&key)?;
                targets.push((g, key.clone(), target.clone()));
                let inner = Arc::clone(&self.inner);
                writes.push(move || {
                    inner
                        .write_temp(&target, &content)
                        .map_err(|e| StoreError::io("put", &key, e))
                });
            }
        }
        let temps = in_parallel(writes).await?;
        let mut staged: Vec<(usize, String, PathBuf, PathBuf)> = targets
            .into_iter()
            .zip(temps)
            .map(|((g, key, target), tmp)| (g, key, target, tmp))
            .collect();
        let mut result = Ok(());
        let last_group = staged.iter().map(|s| s.0).max().unwrap_or(0);
        for g in 0..=last_group {
            let renames = staged
                .iter()
                .filter(|s| s.0 == g)
                .map(|(_, key, target, tmp)| {
                    let (inner, key) = (Arc::clone(&self.inner), key.clone());
                    let (target, tmp) = (target.clone(), tmp.clone());
                    move || {
                        inner
                            .rename_durable(&tmp, &target)
                            .map_err(|e| StoreError::io("put", &key, e))
                    }
                })
                .collect();
            result = in_parallel(renames).await.map(drop);
            if result.is_err() {
                break;
            }
            staged.retain(|s| s.0 != g);
        }
        // Whatever was not renamed (after a failure) is removed.
        let leftovers: Vec<PathBuf> = staged.into_iter().map(|s| s.3).collect();
        if !leftovers.is_empty() {
            let _ = blocking(move || {
                for tmp in leftovers {
                    let _ = fs::remove_file(tmp);
                }
                Ok(())
            })
            .await;
        }
        result
    }

    /// With the journal: the move and the links are one record appended while `ready` runs
    /// (see `fs/journal.rs`); without, the default.
    async fn publish(&self, p: Publication<'_>) -> Result<()> {
        let Some(journal) = &self.journal else {
            return super::publish_in_order(self, p).await;
        };
        validate_key(p.from)?;
        for (key, _) in &p.links {
            validate_key(key)?;
        }
        // `path` validates `to`.
        self.settle(&self.path(p.to)?).await?;
        journal.publish(&self.inner, p).await
    }

    /// A journal checkpoint: the journal is empty afterwards.
    async fn flush(&self) -> Result<()> {
        match &self.journal {
            Some(journal) => journal.checkpoint().await,
            None => Ok(()),
        }
    }

    async fn reader(&self, key: &str, offset: u64, len: Option<u64>) -> Result<(u64, ByteStream)> {
        let path = self.path(key)?;
        let owned_key = key.to_owned();
        let (file, size, end) = blocking(move || {
            let (file, size) = open_object(&path, &owned_key)?;
            let end = range_end(&owned_key, size, offset, len)?;
            Ok((file, size, end))
        })
        .await?;
        Ok((size, reader::stream(file, size, offset, end)))
    }

    async fn open_file(&self, key: &str) -> Result<Option<File>> {
        let path = self.path(key)?;
        let owned_key = key.to_owned();
        blocking(move || open_object(&path, &owned_key).map(|(file, _)| Some(file))).await
    }

    async fn writer(&self, key: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let path = self.path(key)?;
        let inner = Arc::clone(&self.inner);
        let owned_key = key.to_owned();
        blocking(move || {
            let fail = |e| StoreError::io("open writer", &owned_key, e);
            inner
                .make_dir(parent_of(&path).map_err(fail)?)
                .map_err(fail)?;
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(!append)
                .open(&path)
                .map_err(fail)?;
            let size = file.seek(SeekFrom::End(0)).map_err(fail)?;
            let writer: Box<dyn FileWriter> = Box::new(FsWriter::new(file, owned_key, path, size));
            Ok(writer)
        })
        .await
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| StoreError::io("stat", key, e))?;
        if !meta.is_file() {
            return Err(StoreError::NotFound {
                key: key.to_owned(),
            });
        }
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.prefix_path(prefix)?;
        let base = key_prefix(prefix);
        blocking(move || {
            let mut out = Vec::new();
            for (name, _) in read_dir_visible(&dir).map_err(|e| StoreError::io("list", &base, e))? {
                out.push(format!("{base}{name}"));
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let dir = self.prefix_path(prefix)?;
        let base = key_prefix(prefix);
        blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![(dir, base)];
            while let Some((dir, base)) = stack.pop() {
                let entries =
                    read_dir_visible(&dir).map_err(|e| StoreError::io("walk", &base, e))?;
                for (name, entry) in entries {
                    let key = format!("{base}{name}");
                    let meta = match entry.metadata() {
                        Ok(m) => m,
                        // Deleted while we walked: skip it.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io("walk", &key, e)),
                    };
                    if meta.is_dir() {
                        stack.push((entry.path(), format!("{key}/")));
                    } else if meta.is_file() {
                        out.push(ObjectMeta {
                            key,
                            size: meta.len(),
                            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        });
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn move_object(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        self.settle(&src).await?;
        self.settle(&dst).await?;
        let inner = Arc::clone(&self.inner);
        let from = from.to_owned();
        blocking(move || {
            if !src.is_file() {
                return Err(StoreError::NotFound { key: from });
            }
            inner
                .rename_durable(&src, &dst)
                .map_err(|e| StoreError::io("move", &from, e))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.remove(key, true).await
    }

    async fn delete_scratch(&self, key: &str) -> Result<()> {
        self.remove(key, false).await
    }
}

/// Deletes every temp file (`.*.tmp`) below `root`; returns how many.
fn sweep_temps(root: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file_type = entry.file_type()?;
            if name.starts_with('.') {
                if file_type.is_file() && name.ends_with(TMP_SUFFIX) {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            } else if file_type.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(removed)
}

/// Entries of `dir` whose names are valid key components; a missing dir is empty.
fn read_dir_visible(dir: &Path) -> io::Result<Vec<(String, fs::DirEntry)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if validate_key(&name).is_ok() {
            out.push((name, entry));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_with_source_directory_syncs_passes_the_conformance_check() {
        let tmp = tempfile::tempdir().unwrap();
        let mut driver = FsDriver::open(tmp.path()).await.unwrap();
        if let Some(journal) = driver.journal.as_mut() {
            Arc::get_mut(journal).unwrap().sync_source_dirs = true;
        }
        crate::driver::conformance::publish(&driver).await.unwrap();
    }

    #[tokio::test]
    async fn forgetting_a_directory_drops_exactly_it_and_its_descendants() {
        let tmp = tempfile::tempdir().unwrap();
        let driver = FsDriver::open(tmp.path()).await.unwrap();
        let r = tmp.path();
        let known = ["a/b", "a/b/c", "a/b/c/d", "a/b0", "a/bc/d", "a", "z"];
        for k in known {
            driver.inner.durable_dirs.lock().insert(r.join(k));
        }
        driver.inner.forget_dirs(&r.join("a/b"));
        let left: Vec<PathBuf> = driver.inner.durable_dirs.lock().iter().cloned().collect();
        let mut want: Vec<PathBuf> = ["", "a", "a/b0", "a/bc/d", "z"]
            .iter()
            .map(|k| {
                if k.is_empty() {
                    r.to_path_buf()
                } else {
                    r.join(k)
                }
            })
            .collect();
        want.sort();
        assert_eq!(left, want);
    }
}
