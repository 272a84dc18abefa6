//! The filesystem driver's writer: positional writes kept in flight while the next batches
//! arrive; the whole aligned blocks of each batch go straight to the disk (`O_DIRECT`), the
//! rest (and everything where direct writes are unavailable) through the page cache with
//! writeback started as data arrives.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ocireg_sys::DIRECT_ALIGN;
use tokio::task::JoinHandle;

use super::blocking;
use crate::driver::FileWriter;
use crate::error::{Result, StoreError};

/// The bytes `[from, to)` of the concatenation of `chunks`, as slices of them.
fn slices(chunks: &[Bytes], from: usize, to: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for c in chunks {
        let (start, end) = (at, at + c.len());
        at = end;
        if end <= from || c.is_empty() {
            continue;
        }
        if start >= to {
            break;
        }
        out.push(&c[from.max(start) - start..to.min(end) - start]);
    }
    out
}

/// Writes `parts` at `offset` through the page cache. Positional: writes in flight at the
/// same time do not share a cursor.
fn write_buffered(file: &File, parts: &[&[u8]], offset: u64) -> io::Result<()> {
    let mut at = offset;
    for part in parts {
        file.write_all_at(part, at)?;
        at += part.len() as u64;
    }
    Ok(())
}

/// Bytes copied into one aligned buffer per direct write.
const DIRECT_STEP: usize = 1 << 20;

/// The descriptors of the object being written, shared by the writes in flight.
struct Target {
    /// Through the page cache.
    file: File,
    /// The same file without page cache ([`ocireg_sys::reopen_direct`]), where available.
    direct: Option<File>,
    /// Set once a direct write was refused: everything goes through the cache from then on.
    direct_refused: AtomicBool,
}

impl Target {
    fn new(file: File) -> Target {
        Target {
            direct: ocireg_sys::reopen_direct(&file),
            file,
            direct_refused: AtomicBool::new(false),
        }
    }

    /// The direct descriptor, unless there is none or it refused a write.
    fn direct(&self) -> Option<&File> {
        self.direct
            .as_ref()
            .filter(|_| !self.direct_refused.load(Ordering::Relaxed))
    }
}

/// Writes one batch of `len` bytes at `offset`: the part covering whole aligned blocks with
/// direct writes (copied into an aligned buffer, [`DIRECT_STEP`] at a time), the unaligned
/// head and tail (and everything, when direct writes are off) through the page cache.
///
/// Why direct: measured on the 2-core reference VM, streaming 512 MiB in 1 MiB writes costs
/// ~0.33 ms of CPU per MiB through the page cache (copying into cache pages, starting their
/// writeback, waiting for it and dropping them: see [`DROP_WINDOW`]) and ~0.13 ms direct
/// (0.03 of it the copy into the aligned buffer), at 1.6 GB/s with one write in flight,
/// about twice what a push's other stages (receiving, SHA-256) sustain. Large pushes are
/// CPU-bound on such a machine.
fn write_batch(target: &Target, chunks: &[Bytes], offset: u64) -> io::Result<()> {
    let file = &target.file;
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let align = DIRECT_ALIGN as u64;
    // `head` < DIRECT_ALIGN, so the conversion cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let head = (((align - offset % align) % align) as usize).min(len);
    let blocks_end = head + (len - head) / DIRECT_ALIGN * DIRECT_ALIGN;
    let Some(direct) = target.direct().filter(|_| blocks_end > head) else {
        write_buffered(file, &slices(chunks, 0, len), offset)?;
        start_writeback(file, offset, len as u64);
        return Ok(());
    };
    write_buffered(file, &slices(chunks, 0, head), offset)?;
    let mut done = head;
    while done < blocks_end {
        let step = (blocks_end - done).min(DIRECT_STEP);
        let parts = slices(chunks, done, done + step);
        let at = offset + done as u64;
        match write_direct(direct, &parts, step, at) {
            Ok(()) => done += step,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                // The device wants a larger alignment (or the filesystem changed its mind):
                // this and every later byte go through the page cache.
                target.direct_refused.store(true, Ordering::Relaxed);
                write_buffered(file, &slices(chunks, done, len), at)?;
                start_writeback(file, at, (len - done) as u64);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    write_buffered(
        file,
        &slices(chunks, blocks_end, len),
        offset + blocks_end as u64,
    )?;
    if head > 0 || blocks_end < len {
        start_writeback(file, offset, len as u64);
    }
    Ok(())
}

/// Copies `parts` (`len` bytes, a multiple of [`DIRECT_ALIGN`]) into an aligned buffer and
/// writes it at `offset` through the direct descriptor. The buffer is allocated per write
/// without zeroing; the process's allocator settings keep such buffers on the heap
/// (`ocireg_sys::tune_allocator`), so this reuses memory rather than faulting in new pages.
fn write_direct(direct: &File, parts: &[&[u8]], len: usize, offset: u64) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(len + DIRECT_ALIGN);
    let pad = buf.as_ptr().align_offset(DIRECT_ALIGN);
    if pad >= DIRECT_ALIGN {
        // Cannot happen for a byte pointer; refuse as an unsupported alignment would be.
        return Err(io::ErrorKind::InvalidInput.into());
    }
    buf.resize(pad, 0);
    parts.iter().for_each(|p| buf.extend_from_slice(p));
    direct.write_all_at(&buf[pad..], offset)
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

/// Writes in flight at most; a batch's write runs while the next batches arrive and are
/// hashed. Direct writes wait for the disk (~0.6-0.7 ms per MiB here, about what hashing
/// takes); a second one in flight let a raw loop of 1 MiB direct appends go from ~1.7 to
/// ~1.9 GB/s on the reference VM, though end to end (512 MiB pushes, alternating builds) it
/// measured the same as one: ~800-940 MB/s either way.
const IN_FLIGHT: usize = 2;

/// A file writer that keeps up to [`IN_FLIGHT`] positional writes in flight on the blocking
/// pool, so the caller can receive and hash the next batches while earlier ones are written.
///
/// Bytes that went through the page cache (all of them where direct writes are unavailable)
/// are dropped from it behind the writer by another blocking task, one at a time, not after
/// each write: the write stage was the push pipeline's slowest (per MiB ~0.4 ms of `write`,
/// ~0.1 ms starting writeback and ~0.2 ms on average, up to 1.6 ms, waiting for the device
/// before dropping, against ~0.55 ms of SHA-256), so every MiB waited on the disk.
pub(super) struct FsWriter {
    target: Arc<Target>,
    key: String,
    path: PathBuf,
    size: u64,
    /// Offset up to which written pages were dropped from the cache (or handed to the dropper).
    dropped: u64,
    /// Writes in flight, oldest first, each with the offset it starts at.
    pending: VecDeque<(u64, JoinHandle<io::Result<()>>)>,
    /// The background drop task, if one runs (one still running when the writer ends
    /// finishes on its own: it holds the file).
    dropper: Option<JoinHandle<()>>,
}

impl FsWriter {
    /// A writer on an open file positioned at its end (`size`). Blocks: opens the file's
    /// direct descriptor.
    pub(super) fn new(file: File, key: String, path: PathBuf, size: u64) -> FsWriter {
        FsWriter {
            target: Arc::new(Target::new(file)),
            key,
            path,
            size,
            // The window is per object, not per writer: an earlier writer of this object (the
            // previous PATCH of an upload) left its last bytes cached; re-dropping a range that
            // is already out of the cache costs next to nothing.
            dropped: size.saturating_sub(2 * DROP_WINDOW),
            pending: VecDeque::new(),
            dropper: None,
        }
    }

    /// Waits for the oldest write in flight, if any.
    async fn wait_oldest(&mut self) -> Result<()> {
        let Some((_, task)) = self.pending.pop_front() else {
            return Ok(());
        };
        task.await
            .map_err(|e| StoreError::Internal(format!("write task failed: {e}")))?
            .map_err(|e| StoreError::io("write", &self.key, e))
    }

    /// Waits for every write in flight; the first failure is returned (after all finished).
    async fn wait_all(&mut self) -> Result<()> {
        let mut outcome = Ok(());
        while !self.pending.is_empty() {
            let r = self.wait_oldest().await;
            if outcome.is_ok() {
                outcome = r;
            }
        }
        outcome
    }

    /// Hands what lies more than [`DROP_WINDOW`] behind `written` (every byte before it is
    /// written) to a background task that waits for it to be written back and drops it,
    /// unless one still runs or less than [`DROP_STEP`] is new. Best effort; nothing to do
    /// while writes go direct (only partial blocks pass through the cache then).
    fn drop_behind(&mut self, written: u64) {
        if self.target.direct().is_some() || self.dropper.as_ref().is_some_and(|d| !d.is_finished())
        {
            return;
        }
        let (from, to) = (self.dropped, written.saturating_sub(DROP_WINDOW));
        if to < from + DROP_STEP {
            return;
        }
        let target = Arc::clone(&self.target);
        self.dropper = Some(tokio::task::spawn_blocking(move || {
            drop_written(&target.file, from, to);
        }));
        self.dropped = to;
    }
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if len == 0 {
            return Ok(());
        }
        while self.pending.len() >= IN_FLIGHT {
            self.wait_oldest().await?;
        }
        // Every byte before the oldest write in flight is written.
        let written = self.pending.front().map_or(self.size, |(at, _)| *at);
        self.drop_behind(written);
        let (target, offset) = (Arc::clone(&self.target), self.size);
        let task = tokio::task::spawn_blocking(move || write_batch(&target, &chunks, offset));
        self.pending.push_back((offset, task));
        self.size += len;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        self.wait_all().await?;
        // The data (and size) only: the file's directory entry is scratch (see the module docs
        // of the driver); `move_object` makes the bytes durably visible under their real key.
        let (target, key) = (Arc::clone(&self.target), self.key.clone());
        blocking(move || {
            target
                .file
                .sync_data()
                .map_err(|e| StoreError::io("sync", &key, e))
        })
        .await?;
        Ok(self.size)
    }

    async fn close(mut self: Box<Self>) -> Result<u64> {
        // No sync: `close` promises no durability; a later `commit` (of this object, by any
        // writer) syncs everything. Syncing each chunk of a chunked upload cost 20-40%.
        self.wait_all().await?;
        Ok(self.size)
    }

    async fn cancel(mut self: Box<Self>) -> Result<()> {
        // The pending writes' outcome no longer matters: the file goes away.
        let _ = self.wait_all().await;
        let (path, key) = (self.path.clone(), self.key.clone());
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("cancel", &key, e)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// `data` cut into frames of uneven sizes.
    fn frames(data: &[u8]) -> Vec<Bytes> {
        let sizes = [7usize, 4096, 100_000, 1, 4089, 600_000];
        let (mut out, mut at, mut i) = (Vec::new(), 0, 0);
        while at < data.len() {
            let end = (at + sizes[i % sizes.len()]).min(data.len());
            out.push(Bytes::copy_from_slice(&data[at..end]));
            (at, i) = (end, i + 1);
        }
        out
    }

    #[test]
    fn slices_cut_ranges_across_chunks() {
        let chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
        ];
        assert_eq!(slices(&chunks, 0, 7).concat(), b"abcdefg");
        assert_eq!(slices(&chunks, 2, 5).concat(), b"cde");
        assert_eq!(slices(&chunks, 3, 3), Vec::<&[u8]>::new());
        assert_eq!(slices(&chunks, 6, 7).concat(), b"g");
    }

    /// Batches at aligned and unaligned offsets, of aligned and unaligned sizes, across
    /// writers appending to the same file: the file holds exactly the bytes, in order. On a
    /// filesystem with direct I/O the aligned blocks went direct.
    #[tokio::test]
    async fn batches_at_any_offset_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        let mut expected = Vec::new();
        let batches: [&[usize]; 3] = [
            &[1 << 20, 4096, 3 * 4096 + 7, 1, 2 << 20],
            &[4095, 1 << 20, 5],
            &[(1 << 20) + 3 * 4096, 12],
        ];
        let mut went_direct = false;
        for (w, sizes) in batches.iter().enumerate() {
            let file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            let size = fs::metadata(&path).unwrap().len();
            assert_eq!(size, expected.len() as u64);
            let mut writer = FsWriter::new(file, "obj".into(), path.clone(), size);
            for (i, &n) in sizes.iter().enumerate() {
                let data = pattern(n, (w * 10 + i) as u8);
                writer.write(frames(&data)).await.unwrap();
                expected.extend_from_slice(&data);
            }
            writer.wait_all().await.unwrap();
            went_direct |= writer.target.direct().is_some();
            let boxed: Box<FsWriter> = Box::new(writer);
            let n = if w == 2 {
                boxed.commit().await.unwrap()
            } else {
                boxed.close().await.unwrap()
            };
            assert_eq!(n, expected.len() as u64);
        }
        assert!(fs::read(&path).unwrap() == expected, "contents differ");
        let probe = File::open(&path).unwrap();
        assert_eq!(went_direct, ocireg_sys::reopen_direct(&probe).is_some());
    }
}
