//! The filesystem driver's writer: vectored writes with one in flight, background syncs.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;

use super::{blocking, fsync_dir};
use crate::driver::FileWriter;
use crate::error::{Result, StoreError};

/// A writer starts a background `fdatasync` whenever this many bytes were written since the
/// last one started and it has finished: the disk works while data still arrives, dirty pages
/// stay few (no writeback throttling), and the final sync before acknowledging is short.
/// Measured on the 2-core reference machine: 512 MiB pushes went from ~400 MB/s without
/// background syncs, and ~600 MB/s with a 4 MiB step, to ~800-1,250 MB/s with 1 MiB.
const BACKGROUND_SYNC: u64 = 1 << 20;

/// Writes all chunks at the file's cursor with vectored writes.
fn write_all_chunks(mut file: &File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| IoSlice::new(c))
        .collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A file writer that keeps one write in flight on the blocking pool, so the caller can
/// hash the next chunk while the previous one is being written.
pub(super) struct FsWriter {
    file: Arc<File>,
    key: String,
    path: PathBuf,
    dir: PathBuf,
    created: bool,
    size: u64,
    pending: Option<JoinHandle<io::Result<()>>>,
    background_sync: Option<JoinHandle<io::Result<()>>>,
    unsynced: u64,
}

async fn join_io(
    task: Option<JoinHandle<io::Result<()>>>,
    op: &'static str,
    key: &str,
) -> Result<()> {
    if let Some(task) = task {
        task.await
            .map_err(|e| StoreError::Internal(format!("{op} task failed: {e}")))?
            .map_err(|e| StoreError::io(op, key, e))?;
    }
    Ok(())
}

impl FsWriter {
    /// A writer on an open file positioned at its end (`size`).
    pub(super) fn new(
        file: File,
        key: String,
        path: PathBuf,
        dir: PathBuf,
        created: bool,
        size: u64,
    ) -> FsWriter {
        FsWriter {
            file: Arc::new(file),
            key,
            path,
            dir,
            created,
            size,
            pending: None,
            background_sync: None,
            unsynced: 0,
        }
    }

    async fn wait_pending(&mut self) -> Result<()> {
        join_io(self.pending.take(), "write", &self.key).await
    }

    /// Waits for the pending write and any background sync.
    async fn settle(&mut self) -> Result<()> {
        let written = self.wait_pending().await;
        let synced = join_io(self.background_sync.take(), "sync", &self.key).await;
        written.and(synced)
    }

    /// Starts a background `fdatasync` once enough unsynced bytes piled up and the previous
    /// one finished.
    async fn maybe_sync_in_background(&mut self) -> Result<()> {
        if self.unsynced < BACKGROUND_SYNC {
            return Ok(());
        }
        if self
            .background_sync
            .as_ref()
            .is_some_and(|t| !t.is_finished())
        {
            return Ok(());
        }
        join_io(self.background_sync.take(), "sync", &self.key).await?;
        let file = Arc::clone(&self.file);
        self.background_sync = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        self.unsynced = 0;
        Ok(())
    }
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        self.wait_pending().await?;
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if len == 0 {
            return Ok(());
        }
        let file = Arc::clone(&self.file);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            write_all_chunks(&file, &chunks)
        }));
        self.size += len;
        self.unsynced += len;
        self.maybe_sync_in_background().await
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        self.settle().await?;
        let (file, dir, created) = (Arc::clone(&self.file), self.dir.clone(), self.created);
        let key = self.key.clone();
        blocking(move || {
            file.sync_all()
                .map_err(|e| StoreError::io("sync", &key, e))?;
            if created {
                fsync_dir(&dir).map_err(|e| StoreError::io("sync dir", &key, e))?;
            }
            Ok(())
        })
        .await?;
        Ok(self.size)
    }

    async fn close(mut self: Box<Self>) -> Result<u64> {
        // A background sync still running is left to finish on its own: `close` promises no
        // durability, and a later `commit` (of this object, by any writer) syncs everything.
        // Waiting for it cost each chunk of a chunked upload a disk flush.
        self.wait_pending().await?;
        drop(self.background_sync.take());
        Ok(self.size)
    }

    async fn cancel(mut self: Box<Self>) -> Result<()> {
        // The pending write's outcome no longer matters: the file goes away.
        let _ = self.settle().await;
        let (path, key) = (self.path.clone(), self.key.clone());
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("cancel", &key, e)),
        })
        .await
    }
}
