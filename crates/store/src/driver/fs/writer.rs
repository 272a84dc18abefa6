//! The filesystem driver's writer: vectored writes with one in flight, writeback started as
//! data arrives.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;

use super::blocking;
use crate::driver::FileWriter;
use crate::error::{Result, StoreError};

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

/// Starts writeback of `len` bytes at `offset` without waiting for it and without the disk
/// cache flush (and, on journaling filesystems, the journal commit) of an `fdatasync`, so the
/// disk works while data still arrives and the sync before acknowledging is short. Measured on
/// the 2-core reference machine, streaming 256 MiB in 1 MiB writes then one `fdatasync`:
/// ~2.2-2.5 GB/s with `sync_file_range(SYNC_FILE_RANGE_WRITE)` after each write, ~1.5-1.6 GB/s
/// with nothing, ~0.9-1.0 GB/s with an `fdatasync` per MiB (the writer used to run those in
/// the background). `posix_fadvise(DONTNEED)` also starts writeback (measured about as fast
/// alone) but then tries to evict the range and, finding pages still under writeback, drains
/// every CPU's LRU lists (`lru_add_drain_all`) on each call.
/// Best effort: an error here changes nothing about durability (the commit syncs).
fn start_writeback(file: &File, offset: u64, len: u64) {
    let _ = ocireg_sys::start_writeback(file, offset, len);
}

/// Bytes behind the newest write that stay cached; older ranges of the object are waited for
/// (their writeback was started long ago) and dropped from the page cache.
///
/// Blob bytes are written once and read later, if at all, so caching every byte pushed only
/// grows the page cache (and evicts what is hot). It also cost throughput here: on the 2-core
/// reference VM, pages the guest had not touched before were ~6x slower to fill (a 512 MiB
/// chunked push fell from ~700 to ~250 MB/s after ~3.5 GiB had been pushed through one server,
/// `copy_folio_from_iter_atomic` going from 7% to 44% of its CPU profile); reusing the pages
/// just dropped keeps every push on warm memory. A blob pulled right after its push is read
/// back from disk (its last `DROP_WINDOW` bytes excepted).
const DROP_WINDOW: u64 = 8 << 20;

/// Waits for and drops the range `[from, to)` (see [`DROP_WINDOW`]). Best effort.
fn drop_written(file: &File, from: u64, to: u64) {
    if to > from {
        let _ = ocireg_sys::write_back_and_drop(file, from, to - from);
    }
}

/// Old ranges are dropped by one background task at a time (see [`FsWriter::write`]), in
/// steps of at least this many bytes.
const DROP_STEP: u64 = 2 << 20;

/// A file writer that keeps one write in flight on the blocking pool, so the caller can
/// hash the next chunk while the previous one is being written.
///
/// Dropping old pages (which waits for their writeback) runs on a second blocking task, one at
/// a time, not after each write: the write stage was the push pipeline's slowest (per MiB
/// ~0.4 ms of `write`, ~0.1 ms starting writeback and ~0.2 ms on average, up to 1.6 ms,
/// waiting for the device before dropping, against ~0.55 ms of SHA-256), so every MiB waited
/// on the disk.
pub(super) struct FsWriter {
    file: Arc<File>,
    key: String,
    path: PathBuf,
    size: u64,
    /// Offset up to which written pages were dropped from the cache (or handed to the dropper).
    dropped: u64,
    pending: Option<JoinHandle<io::Result<()>>>,
    /// The background drop task, if one runs (one still running when the writer ends
    /// finishes on its own: it holds the file).
    dropper: Option<JoinHandle<()>>,
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
    pub(super) fn new(file: File, key: String, path: PathBuf, size: u64) -> FsWriter {
        FsWriter {
            file: Arc::new(file),
            key,
            path,
            size,
            // The window is per object, not per writer: an earlier writer of this object (the
            // previous PATCH of an upload) left its last bytes cached; re-dropping a range that
            // is already out of the cache costs next to nothing.
            dropped: size.saturating_sub(2 * DROP_WINDOW),
            pending: None,
            dropper: None,
        }
    }

    async fn wait_pending(&mut self) -> Result<()> {
        join_io(self.pending.take(), "write", &self.key).await
    }

    /// Hands what lies more than [`DROP_WINDOW`] behind `written` (every byte before it is
    /// written) to a background task that waits for it to be written back and drops it,
    /// unless one still runs or less than [`DROP_STEP`] is new. Best effort.
    fn drop_behind(&mut self, written: u64) {
        if self.dropper.as_ref().is_some_and(|d| !d.is_finished()) {
            return;
        }
        let (from, to) = (self.dropped, written.saturating_sub(DROP_WINDOW));
        if to < from + DROP_STEP {
            return;
        }
        let file = Arc::clone(&self.file);
        self.dropper = Some(tokio::task::spawn_blocking(move || {
            drop_written(&file, from, to);
        }));
        self.dropped = to;
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
        // Every byte before `offset` is written now (one write in flight at a time).
        let (file, offset) = (Arc::clone(&self.file), self.size);
        self.drop_behind(offset);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            write_all_chunks(&file, &chunks)?;
            start_writeback(&file, offset, len);
            Ok(())
        }));
        self.size += len;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        self.wait_pending().await?;
        // The data (and size) only: the file's directory entry is scratch (see the module docs
        // of the driver); `move_object` makes the bytes durably visible under their real key.
        let (file, key) = (Arc::clone(&self.file), self.key.clone());
        blocking(move || {
            file.sync_data()
                .map_err(|e| StoreError::io("sync", &key, e))
        })
        .await?;
        Ok(self.size)
    }

    async fn close(mut self: Box<Self>) -> Result<u64> {
        // No sync: `close` promises no durability; a later `commit` (of this object, by any
        // writer) syncs everything. Syncing each chunk of a chunked upload cost 20-40%.
        self.wait_pending().await?;
        Ok(self.size)
    }

    async fn cancel(mut self: Box<Self>) -> Result<()> {
        // The pending write's outcome no longer matters: the file goes away.
        let _ = self.wait_pending().await;
        let (path, key) = (self.path.clone(), self.key.clone());
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("cancel", &key, e)),
        })
        .await
    }
}
