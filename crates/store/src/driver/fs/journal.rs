//! The filesystem driver's write-ahead journal for `put_ordered` (manifests and their links,
//! blob links).
//!
//! Without it a manifest put cost three rounds of syncs one after the other (the temp files,
//! the bytes' rename and directory, the links' renames and directories), so a single client
//! waited on three disk cache flushes per put. With it a put is one record appended to
//! `<root>/.journal` and one `fdatasync` of that file, shared by every put that arrived
//! meanwhile (group commit); then the record's files are written in group order with no sync
//! at all. They become durable at the next checkpoint: `syncfs` of the store's filesystem,
//! then the journal is emptied (truncated and synced); `Driver::flush` runs one for a graceful
//! stop. Opening the driver replays whatever
//! the journal holds (every record in order, each file rewritten whole through a temp file
//! and a rename) and checkpoints, so a put acknowledged before a crash is complete after it
//! whatever state its unsynced files were left in, and one that was not acknowledged is
//! either complete or absent (its record is whole or it is ignored).
//!
//! Other writes (`put_content`, `move_object`, deletes) stay durable on their own. One that
//! touches a file a pending record names, or a directory above one, checkpoints first: a
//! replay can never bring an older state back over it.
//!
//! A blob's publication (`publish`: an upload's data file becomes the blob, then its link) is
//! one record too: the *move* and the link. Its append runs while the upload's data is still
//! being synced and its hash settled, so completing a push waits for one round of syncs (the
//! data's and the record's at once) instead of three in a row (data; rename and directory;
//! journal: ~1.9 ms of the ~2.2 ms completion of a 1 MiB push here). The rename itself and the link are done only after both the data and
//! the record are durable, and are not synced: replay redoes them. Replay moves the data only
//! if its bytes hash to the record's digest: the record may be durable while the data never
//! was (a crash during the data's sync, or an upload whose digest did not match). If the data
//! is neither at its destination nor verifiable at its source, the record's remaining files
//! (the links) are dropped: a link never names missing bytes. Replay must find the bytes at
//! the source if the rename was lost, so the source's name must be durable: on ext4, XFS and
//! btrfs the data's `fdatasync` makes it so (`ocireg_sys::names_durable_with_data`); on any
//! other filesystem the source's directory is synced alongside (measured on ext4, where it is
//! not needed: ~15% of a 1 MiB push). To bound what replay hashes, a checkpoint also runs once
//! [`CHECKPOINT_MOVED`] bytes were published.
//!
//! Record: `payload length: u32 LE | SHA-256 of the payload | payload`; the payload is the
//! steps in order, each `key length: u32 LE | key | content length: u32 LE | content`; a move
//! is a step with an empty key whose content is `from NUL to NUL digest`. Replay stops at the
//! first record that is short or fails its checksum (an append torn by a crash; it was never
//! acknowledged). A failed append is cut off again before the next one.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ocireg_oci::{Digest, DigestHasher};
use sha2::{Digest as _, Sha256};

use super::durable::{fsync_dir, parent_of, Inner};
use super::{blocking, JOURNAL_NAME};
use crate::driver::Publication;
use crate::error::{Result, StoreError};

/// A checkpoint runs once this many records (or [`CHECKPOINT_BYTES`] of records, or
/// [`CHECKPOINT_MOVED`] bytes published) are pending.
const CHECKPOINT_RECORDS: usize = 2048;
const CHECKPOINT_BYTES: u64 = 32 << 20;
/// Replay hashes at most this much published data (~0.6 s at SHA-256's ~1.8 GB/s).
const CHECKPOINT_MOVED: u64 = 1 << 30;
const HEADER: usize = 4 + 32;

/// One file of a record: its (validated) key and content.
pub(super) type Entry = (String, Bytes);

/// One step of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// A file's whole content.
    Put(Entry),
    /// A writer's object `from` becomes `to`, if its bytes hash to `digest`.
    Move {
        from: String,
        to: String,
        digest: Digest,
    },
}

#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: Arc<File>,
    /// Encoded records waiting for the next append, and the sequence number of the last.
    queue: parking_lot::Mutex<Queue>,
    /// Held by the one task appending and syncing (the group commit leader).
    sync: tokio::sync::Mutex<SyncState>,
    /// Puts hold it shared from append to applied; a checkpoint holds it exclusively.
    gate: Arc<tokio::sync::RwLock<()>>,
    pending: parking_lot::Mutex<Pending>,
    /// Whether `publish` syncs the source's directory (see the module docs).
    pub(super) sync_source_dirs: bool,
}

#[derive(Debug, Default)]
struct Queue {
    buf: Vec<u8>,
    last: u64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Records up to this sequence number are durable.
    synced: u64,
    /// Records up to this one were lost by a failed append (their puts fail).
    failed: u64,
    /// The journal's length after the last durable append.
    len: u64,
    /// An append failed and could not be cut off: no more appends until restart.
    broken: bool,
}

/// Files written by records since the last checkpoint.
#[derive(Debug, Default)]
struct Pending {
    paths: BTreeSet<PathBuf>,
    records: usize,
    bytes: u64,
    /// Bytes of published data (which replay may hash).
    moved: u64,
}

impl Journal {
    /// Opens `<root>/.journal`, replays what it holds and checkpoints; returns the journal and
    /// the number of records replayed. Blocking.
    pub(super) fn open(inner: &Inner) -> io::Result<(Journal, usize)> {
        let path = inner.root.join(JOURNAL_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let records = decode(&data);
        for record in &records {
            for op in record {
                match op {
                    Op::Put((key, content)) => {
                        let target = inner.root.join(key);
                        // A file that already holds the content is left alone (and keeps its
                        // modification time, which garbage collection's grace period reads).
                        match fs::read(&target) {
                            Ok(found) if found == content.as_ref() => {}
                            _ => inner.put_unsynced(&target, content)?,
                        }
                    }
                    Op::Move { from, to, digest } => {
                        if !replay_move(inner, from, to, digest)? {
                            tracing::warn!(
                                from, to, %digest,
                                "a journaled blob's bytes never became durable: its links are dropped"
                            );
                            break;
                        }
                    }
                }
            }
        }
        if !data.is_empty() {
            ocireg_sys::sync_filesystem(&file)?;
            file.set_len(0)?;
            file.sync_data()?;
        }
        let sync_source_dirs = !ocireg_sys::names_durable_with_data(&file);
        let journal = Journal {
            path,
            file: Arc::new(file),
            queue: parking_lot::Mutex::default(),
            sync: tokio::sync::Mutex::default(),
            gate: Arc::default(),
            pending: parking_lot::Mutex::default(),
            sync_source_dirs,
        };
        Ok((journal, records.len()))
    }

    /// Makes `entries` durable as one record, then writes them in order (see the module docs).
    /// Runs as its own task: a caller that goes away (a client disconnecting) cannot stop it
    /// between its append and its writes.
    pub(super) async fn put(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        entries: Vec<Entry>,
    ) -> Result<()> {
        let (journal, inner) = (Arc::clone(self), Arc::clone(inner));
        detached(async move { journal.put_now(&inner, entries).await }).await
    }

    async fn put_now(&self, inner: &Arc<Inner>, entries: Vec<Entry>) -> Result<()> {
        let ops: Vec<Op> = entries.iter().cloned().map(Op::Put).collect();
        let record = encode(&ops)?;
        {
            let _shared = self.gate.read().await;
            self.note_pending(inner, &ops, record.len(), 0);
            self.append(record).await?;
            let inner = Arc::clone(inner);
            blocking(move || put_all_unsynced(&inner, &entries)).await?;
        }
        self.checkpoint_if_due().await;
        Ok(())
    }

    /// Publishes `from` as `to` with `links` (see `Driver::publish` and the module docs): the
    /// record's append overlaps `ready`; the rename and the links follow, unsynced.
    pub(super) async fn publish(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        p: Publication<'_>,
    ) -> Result<()> {
        let Publication {
            from,
            to,
            digest,
            size,
            ready,
            links,
        } = p;
        let (from, to) = (from.to_owned(), to.to_owned());
        let mut ops = vec![Op::Move {
            from: from.clone(),
            to: to.clone(),
            digest: digest.clone(),
        }];
        ops.extend(links.iter().cloned().map(Op::Put));
        let record = encode(&ops)?;
        let (src, dst) = (inner.root.join(&from), inner.root.join(&to));
        let dirs = parent_of(&src)
            .and_then(|s| Ok((s.to_path_buf(), parent_of(&dst)?.to_path_buf())))
            .map_err(|e| StoreError::io("publish", &to, e))?;
        // Held until the rename and links are done, which run to completion on their own
        // (a checkpoint must not empty the journal between this append and them).
        let shared = Arc::clone(&self.gate).read_owned().await;
        self.note_pending(inner, &ops, record.len(), size);
        let journal = Arc::clone(self);
        let append = detached(async move { journal.append(record).await });
        let prepare = {
            let (inner, key) = (Arc::clone(inner), to.clone());
            let (src_dir, dst_dir) = dirs;
            let sync_source = self.sync_source_dirs;
            blocking(move || {
                // Where the data's sync does not make the source's name durable, its directory
                // sync does: replay must find the bytes there if the rename is lost.
                if sync_source {
                    inner
                        .ensure_dir(&src_dir)
                        .and_then(|()| fsync_dir(&src_dir))
                } else {
                    Ok(())
                }
                .and_then(|()| inner.ensure_dir(&dst_dir))
                .map_err(|e| StoreError::io("prepare", &key, e))
            })
        };
        let (ready, appended, prepared) = tokio::join!(ready, append, prepare);
        ready?;
        appended?;
        prepared?;
        let inner = Arc::clone(inner);
        blocking(move || {
            let _shared = shared;
            inner
                .rename_into(&src, &dst)
                .map_err(|e| StoreError::io("move", &from, e))?;
            put_all_unsynced(&inner, &links)
        })
        .await?;
        self.checkpoint_if_due().await;
        Ok(())
    }

    /// Records what a record about to be appended writes (`moved`: bytes it publishes).
    fn note_pending(&self, inner: &Inner, ops: &[Op], record_len: usize, moved: u64) {
        let mut pending = self.pending.lock();
        pending.paths.extend(ops.iter().map(|op| match op {
            Op::Put((key, _)) => inner.root.join(key),
            // The source is a writer's scratch object: nothing writes it again.
            Op::Move { to, .. } => inner.root.join(to),
        }));
        pending.records += 1;
        pending.bytes += record_len as u64;
        pending.moved += moved;
    }

    async fn checkpoint_if_due(&self) {
        let due = {
            let p = self.pending.lock();
            p.records >= CHECKPOINT_RECORDS
                || p.bytes >= CHECKPOINT_BYTES
                || p.moved >= CHECKPOINT_MOVED
        };
        if due {
            // The put itself is durable (journaled): a failed checkpoint is retried later.
            if let Err(e) = self.checkpoint_now().await {
                tracing::warn!(error = %e, "journal checkpoint failed");
            }
        }
    }

    /// Checkpoints first when a pending record wrote `path` or anything below it: called
    /// before any other write or delete of `path`.
    pub(super) async fn settle(self: &Arc<Self>, path: &Path) -> Result<()> {
        let conflict = {
            let pending = self.pending.lock();
            pending
                .paths
                .range(path.to_path_buf()..)
                .next()
                .is_some_and(|p| p.starts_with(path))
        };
        if conflict {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Makes every applied record's files durable and empties the journal (as its own task:
    /// an abandoned truncate must not race the next append).
    pub(super) async fn checkpoint(self: &Arc<Self>) -> Result<()> {
        let journal = Arc::clone(self);
        detached(async move { journal.checkpoint_now().await }).await
    }

    async fn checkpoint_now(&self) -> Result<()> {
        let _exclusive = self.gate.write().await;
        if self.pending.lock().records == 0 {
            return Ok(());
        }
        let mut state = self.sync.lock().await;
        let file = Arc::clone(&self.file);
        let key = self.path.display().to_string();
        blocking(move || {
            ocireg_sys::sync_filesystem(&file)
                .and_then(|()| file.set_len(0))
                .and_then(|()| file.sync_data())
                .map_err(|e| StoreError::io("checkpoint journal", &key, e))
        })
        .await?;
        state.len = 0;
        state.broken = false;
        *self.pending.lock() = Pending::default();
        Ok(())
    }

    /// Appends `record`; returns once it is durable (group commit: one leader appends and
    /// syncs everything queued, the others find their record done).
    async fn append(&self, record: Vec<u8>) -> Result<()> {
        let seq = {
            let mut queue = self.queue.lock();
            queue.buf.extend_from_slice(&record);
            queue.last += 1;
            queue.last
        };
        let mut state = self.sync.lock().await;
        if seq <= state.synced {
            return Ok(());
        }
        let key = self.path.display().to_string();
        if seq <= state.failed || state.broken {
            return Err(StoreError::io(
                "append journal",
                &key,
                io::Error::other("an earlier append failed"),
            ));
        }
        let (buf, upto) = {
            let mut queue = self.queue.lock();
            (std::mem::take(&mut queue.buf), queue.last)
        };
        let file = Arc::clone(&self.file);
        let len = state.len;
        let added = buf.len() as u64;
        let outcome = blocking(move || {
            let written = (&*file).write_all(&buf).and_then(|()| file.sync_data());
            // A failed append is cut off so the next one follows the last good record.
            Ok(written.map_err(|e| (e, file.set_len(len).is_ok())))
        })
        .await?;
        match outcome {
            Ok(()) => {
                state.synced = upto;
                state.len += added;
                Ok(())
            }
            Err((e, cut)) => {
                state.failed = upto;
                state.broken |= !cut;
                Err(StoreError::io("append journal", &key, e))
            }
        }
    }
}

/// Runs `task` to completion even if the caller stops waiting.
async fn detached<T: Send + 'static>(
    task: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(task)
        .await
        .map_err(|e| StoreError::Internal(format!("journal task failed: {e}")))?
}

/// Writes a record's files, unsynced (the record holds them until a checkpoint).
fn put_all_unsynced(inner: &Inner, entries: &[Entry]) -> Result<()> {
    for (key, content) in entries {
        inner
            .put_unsynced(&inner.root.join(key), content)
            .map_err(|e| StoreError::io("put", key, e))?;
    }
    Ok(())
}

/// Completes a journaled move at replay; `false` if it cannot be (the bytes are neither at `to`
/// nor verifiable at `from`).
fn replay_move(inner: &Inner, from: &str, to: &str, digest: &Digest) -> io::Result<bool> {
    let (src, dst) = (inner.root.join(from), inner.root.join(to));
    if is_file(&dst)? {
        return Ok(true);
    }
    if !is_file(&src)? || !hashes_to(&src, digest)? {
        return Ok(false);
    }
    inner.rename_into(&src, &dst)?;
    Ok(true)
}

fn is_file(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.is_file()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn hashes_to(path: &Path, digest: &Digest) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let mut hasher = DigestHasher::new(digest.algorithm());
    let mut buf = vec![0; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finish() == *digest)
}

/// Encodes one record.
fn encode(ops: &[Op]) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    for op in ops {
        let (key, content): (&str, Bytes) = match op {
            Op::Put((key, content)) => (key, content.clone()),
            Op::Move { from, to, digest } => ("", Bytes::from(format!("{from}\0{to}\0{digest}"))),
        };
        for part in [key.as_bytes(), content.as_ref()] {
            let len = u32::try_from(part.len())
                .map_err(|_| StoreError::Internal(format!("{key}: too large to journal")))?;
            payload.extend_from_slice(&len.to_le_bytes());
            payload.extend_from_slice(part);
        }
    }
    let len = u32::try_from(payload.len())
        .map_err(|_| StoreError::Internal("record too large to journal".to_owned()))?;
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&Sha256::digest(&payload));
    record.extend_from_slice(&payload);
    Ok(record)
}

/// The whole records at the start of `data`, each as its steps.
fn decode(data: &[u8]) -> Vec<Vec<Op>> {
    let mut records = Vec::new();
    let mut rest = data;
    while let Some((record, after)) = decode_one(rest) {
        records.push(record);
        rest = after;
    }
    records
}

fn decode_one(data: &[u8]) -> Option<(Vec<Op>, &[u8])> {
    let (len, rest) = take_u32(data)?;
    let (sum, rest) = rest.split_at_checked(32)?;
    let (mut payload, after) = rest.split_at_checked(len)?;
    if Sha256::digest(payload).as_slice() != sum {
        return None;
    }
    let mut entries = Vec::new();
    while !payload.is_empty() {
        let (key_len, rest) = take_u32(payload)?;
        let (key, rest) = rest.split_at_checked(key_len)?;
        let (content_len, rest) = take_u32(rest)?;
        let (content, rest) = rest.split_at_checked(content_len)?;
        let key = std::str::from_utf8(key).ok()?;
        entries.push(if key.is_empty() {
            decode_move(content)?
        } else {
            // Keys were validated when written; a record naming anything else is not ours.
            super::super::validate_key(key).ok()?;
            Op::Put((key.to_owned(), Bytes::copy_from_slice(content)))
        });
        payload = rest;
    }
    Some((entries, after))
}

fn take_u32(data: &[u8]) -> Option<(usize, &[u8])> {
    let (head, rest) = data.split_at_checked(4)?;
    let len = u32::from_le_bytes(head.try_into().ok()?);
    Some((usize::try_from(len).ok()?, rest))
}

fn decode_move(content: &[u8]) -> Option<Op> {
    let mut parts = std::str::from_utf8(content).ok()?.split('\0');
    let (from, to, digest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    for key in [from, to] {
        super::super::validate_key(key).ok()?;
    }
    Some(Op::Move {
        from: from.to_owned(),
        to: to.to_owned(),
        digest: digest.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_moves_round_trip_and_reject_bad_moves() {
        let digest = Digest::compute(ocireg_oci::Algorithm::Sha256, b"x");
        let ops = vec![
            Op::Move {
                from: "u/1/data".to_owned(),
                to: "blobs/x".to_owned(),
                digest: digest.clone(),
            },
            Op::Put(("r/link".to_owned(), Bytes::from_static(b"sha256:..."))),
        ];
        let record = encode(&ops).unwrap();
        assert_eq!(decode(&record), vec![ops]);
        for bad in [
            "u/data\0blobs/x".to_owned(),
            format!("../u\0blobs/x\0{digest}"),
            "u/data\0blobs/x\0sha256:nothex".to_owned(),
            format!("u/data\0blobs/x\0{digest}\0more"),
        ] {
            assert_eq!(decode_move(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
