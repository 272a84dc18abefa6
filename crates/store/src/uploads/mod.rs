//! Upload sessions: start, append chunks, status, complete, cancel.
//!
//! A session is one object, `_uploads/<id>` (the bytes so far; created empty on start). Each
//! append streams into it while hashing; it is written but not fsynced (as in CNCF
//! Distribution): completing the upload fsyncs it once before the blob becomes visible. The
//! running hash lives in memory; after a restart (or a failed append) the session is
//! reloaded from storage and the hash rebuilt by re-reading its bytes, so sessions survive
//! restarts. A crash can lose (or, on a filesystem without data journaling, zero-fill) the tail
//! of acknowledged chunks: the status endpoint then reports the offset that survived, and a
//! tail that does not match what the client sent fails the digest check at completion
//! (`DIGEST_INVALID`) — never a corrupt visible blob. Per-chunk fsyncs would cost throughput
//! for no guarantee a client can use (it must query the offset after a failure anyway).
//! Appends hash with SHA-256 (the canonical algorithm); completing with a
//! SHA-512 digest re-hashes the data, unless the whole upload arrived with the completing
//! request, which then hashes with the digest's own algorithm directly.
//!
//! Session storage is scratch space: its creation and removal are never synced (a session
//! lost in a crash is unknown afterwards, one that comes back is purged by GC); only the blob
//! it becomes is made durable (its data sync and the journaled move into place; see
//! `Driver::publish`).
//!
//! Requests on one session serialize on its mutex, and everything a request decides about
//! the session happens under it: the offset is read once, a chunk that does not start there
//! is refused (`UploadRange`, 416), and with a quota the chunk's bytes are reserved (see
//! `quota/push.rs`) before the first is written.
//!
//! Between requests a live session keeps its writer open (up to `MAX_KEPT_WRITERS` sessions at
//! once, `session.rs`; beyond that each request closes its writer) and its hashing in flight: a
//! chunk is acknowledged once its last bytes are handed to the writer and the hasher, and the
//! next request on the session (or completion) waits for them, so no request drains or reopens
//! what the previous one wrote. A write that fails after its chunk was acknowledged fails the
//! session's next request and the session is reloaded from storage, like after a crash: the
//! status reports the offset that made it.
//!
//! On shared storage (replicas on one bucket, [`crate::Driver::shared`]) none of that is kept
//! in memory: a chunked upload may start on one replica, continue on a second and finish on a
//! third. Each request claims the session's state object, loads the offset and the saved
//! SHA-256 state from it and stores them back before it answers (`shared.rs`, `state.rs`);
//! sessions that end on another replica stop counting here for the watchers' per-client caps
//! and for quota reservations within about a minute (`known.rs`, which states the bounds).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use ocireg_oci::{Algorithm, Digest, DigestHasher, RepoName};
use tokio::sync::OwnedMutexGuard;

use crate::blobs::new_session_id;
use crate::driver::FileWriter;
use crate::error::{Result, StoreError};
use crate::ingest::{hash_object, ingest_pending, Hashing};
use crate::paths;
use crate::store::Store;
use crate::ByteStream;

mod known;
mod session;
mod shared;
mod state;

pub(crate) use session::Sessions;
pub use session::{Chunk, UploadWatch};
use session::{Kept, Session};

/// Where an append continues: the session's offset, the hash of its bytes so far and its
/// open writer, if it kept one.
struct Tail {
    offset: u64,
    hashing: Hashing,
    writer: Option<Box<dyn FileWriter>>,
}

/// The offset of a live session (`BLOB_UPLOAD_UNKNOWN` otherwise).
fn live_offset(session: &Session, id: &str) -> Result<u64> {
    match session {
        Session::Live { offset, .. } => Ok(*offset),
        _ => Err(unknown(id)),
    }
}

fn unknown(session: &str) -> StoreError {
    StoreError::UploadUnknown {
        session: session.chars().take(100).collect(),
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// Starts an upload session; returns its id (32 hex characters, URL-safe). `owner` names
    /// who started it for the [`UploadWatch`]ers (the server passes the client's address).
    /// Refused with `StorageFull` while free space is below the reserve (see `space.rs`).
    pub async fn upload_start(&self, repo: &RepoName, owner: Option<&str>) -> Result<String> {
        self.check_room(None).await?;
        if self.inner.driver.shared() {
            return self.shared_start(repo, owner).await;
        }
        let id = new_session_id();
        let key = paths::upload(repo.as_str(), &id);
        // Scratch, not fsynced: a session lost in a crash is simply unknown afterwards (404;
        // the client starts over), so the syncs of a durable put would only slow every push.
        self.inner.driver.put_scratch(&key, Bytes::new()).await?;
        self.inner.sessions.entry(&key, || Session::Live {
            offset: 0,
            hashing: None,
            durable: true,
            writer: None,
        });
        if let Some(owner) = owner {
            self.inner.sessions.watchers.opened(&key, owner);
        }
        Ok(id)
    }

    /// Bytes received so far in the session (`BLOB_UPLOAD_UNKNOWN` if there is no such session).
    pub async fn upload_offset(&self, repo: &RepoName, session: &str) -> Result<u64> {
        if self.inner.driver.shared() {
            return self.shared_offset(repo, session).await;
        }
        let key = paths::upload(repo.as_str(), session);
        let guard = self.open_session(&key, session).await?;
        live_offset(&guard, session)
    }

    /// Appends a chunk (see [`Chunk`]); returns the new offset.
    pub async fn upload_append(&self, repo: &RepoName, session: &str, chunk: Chunk) -> Result<u64> {
        if self.inner.driver.shared() {
            return self.shared_append(repo, session, chunk).await;
        }
        let key = paths::upload(repo.as_str(), session);
        let mut guard = self.open_session(&key, session).await?;
        self.write_chunk(&mut guard, repo, session, chunk, Algorithm::Sha256)
            .await
    }

    /// Finishes the session with an optional last chunk: verifies the bytes hash to `digest`
    /// and commits the blob. On a mismatch the session and its bytes are removed.
    pub async fn upload_complete(
        &self,
        repo: &RepoName,
        session: &str,
        digest: &Digest,
        last: Option<Chunk>,
    ) -> Result<u64> {
        if self.inner.driver.shared() {
            return self.shared_complete(repo, session, digest, last).await;
        }
        let key = paths::upload(repo.as_str(), session);
        let mut guard = self.open_session(&key, session).await?;
        if let Some(chunk) = last {
            let alg = digest.algorithm();
            self.write_chunk(&mut guard, repo, session, chunk, alg)
                .await?;
        }
        self.complete_locked(&mut guard, repo, session, digest)
            .await
    }

    /// Checks where the chunk starts against the session's offset, reserves its quota and
    /// appends it, all under the session's lock. A chunk known to be empty writes nothing.
    async fn write_chunk(
        &self,
        guard: &mut OwnedMutexGuard<Session>,
        repo: &RepoName,
        session: &str,
        chunk: Chunk,
        alg: Algorithm,
    ) -> Result<u64> {
        let offset = live_offset(guard, session)?;
        if let Some(start) = chunk.start.filter(|s| *s != offset) {
            return Err(StoreError::UploadRange {
                message: format!("chunk starts at {start}, upload is at offset {offset}"),
                offset,
            });
        }
        if chunk.len == Some(0) {
            return Ok(offset);
        }
        // Before the body is read: a chunk that cannot fit is refused unread.
        self.check_room(chunk.len).await?;
        let key = paths::upload(repo.as_str(), session);
        let Some(quota) = self.chunk_quota(repo, &key, offset, chunk.len)? else {
            let appended = self
                .append_locked(guard, repo, session, chunk.body, alg)
                .await;
            return self.free_when_full(guard, &key, appended).await;
        };
        let body = quota.body.limit(chunk.body);
        let appended = self.append_locked(guard, repo, session, body, alg).await;
        if let Some(refusal) = quota.body.refusal() {
            // Stopped by the quota: the session is discarded.
            self.end_session(guard, &key, true).await;
            return Err(refusal);
        }
        // The reservation follows the stored bytes (after a failure, what storage holds).
        let stored = match &appended {
            Ok(size) => Some(*size),
            Err(_) => self.inner.driver.stat(&key).await.ok().map(|m| m.size),
        };
        quota.settle(stored);
        self.free_when_full(guard, &key, appended).await
    }

    /// A write that found the storage full discards the session at once: its bytes are what
    /// the device needs back, and the client cannot finish it anyway.
    async fn free_when_full<T>(
        &self,
        guard: &mut OwnedMutexGuard<Session>,
        key: &str,
        outcome: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &outcome {
            if e.storage_full().is_some() {
                self.end_session(guard, key, true).await;
            }
        }
        outcome
    }

    /// Completes the locked session (its last chunk, if any, already appended).
    async fn complete_locked(
        &self,
        guard: &mut OwnedMutexGuard<Session>,
        repo: &RepoName,
        session: &str,
        digest: &Digest,
    ) -> Result<u64> {
        let data = paths::upload(repo.as_str(), session);
        let Session::Live {
            offset,
            hashing,
            durable,
            writer,
        } = std::mem::replace(&mut **guard, Session::Unloaded)
        else {
            return Err(unknown(session));
        };
        // The last chunk's writer is still open: the sync below needs no second open.
        let mut open_writer = writer.map(Kept::into_writer);
        let driver = self.inner.driver.as_ref();
        if offset == 0 {
            // Nothing was ever written: the blob is empty (and its bytes durably so).
            if let Some(writer) = open_writer.take() {
                writer.close().await?;
            }
            driver.put_content(&data, Bytes::new()).await?;
        }
        let hashing = match hashing.map(|h| *h) {
            Some(h) if h.algorithm() == digest.algorithm() => h,
            _ => {
                // Re-read the data: everything written must have landed first.
                if let Some(writer) = open_writer.take() {
                    writer.close().await?;
                }
                Hashing::from(hash_object(driver, &data, digest.algorithm(), offset).await?)
            }
        };
        // The last batch's hash and the data's sync run at once; a mismatch still fails
        // before anything becomes visible.
        let verify = async { matches_digest(digest, hashing.settle().await?.finish()) };
        let sync = async {
            if let Some(writer) = open_writer {
                writer.commit().await?;
            } else if offset > 0 && !durable {
                driver.writer(&data, true).await?.commit().await?;
            }
            Ok(())
        };
        let verified_and_synced = async {
            let (verified, synced) = tokio::join!(verify, sync);
            verified.and(synced)
        };
        match self
            .commit_blob(repo, digest, &data, offset, verified_and_synced)
            .await
        {
            Ok(()) => {
                // The bytes became the blob: nothing is left in storage.
                self.end_session(guard, &data, false).await;
                Ok(offset)
            }
            Err(e @ StoreError::DigestMismatch { .. }) => {
                self.end_session(guard, &data, true).await;
                Err(e)
            }
            Err(e) => self.free_when_full(guard, &data, Err(e)).await,
        }
    }

    /// Cancels the session and removes its bytes.
    pub async fn upload_cancel(&self, repo: &RepoName, session: &str) -> Result<()> {
        if self.inner.driver.shared() {
            return self.shared_cancel(repo, session).await;
        }
        let key = paths::upload(repo.as_str(), session);
        let mut guard = self.open_session(&key, session).await?;
        self.end_session(&mut guard, &key, true).await;
        Ok(())
    }

    /// Locks the session at `key` (id `id`), loading it from storage if this process does not
    /// know it yet.
    async fn open_session(&self, key: &str, id: &str) -> Result<OwnedMutexGuard<Session>> {
        if !valid_id(id) {
            return Err(unknown(id));
        }
        let entry = self.inner.sessions.entry(key, || Session::Unloaded);
        let mut guard = entry.lock_owned().await;
        if matches!(&*guard, Session::Gone) {
            return Err(unknown(id));
        }
        // Storage is checked on every request, so a session whose storage was removed behind
        // our back is unknown, not resurrected.
        let size = match self.inner.driver.stat(key).await {
            Ok(meta) => meta.size,
            Err(e) if e.is_not_found() => {
                *guard = Session::Gone;
                self.forget_session(key, false);
                return Err(unknown(id));
            }
            Err(e) => return Err(e),
        };
        if !matches!(&*guard, Session::Live { .. }) {
            *guard = Session::Live {
                offset: size,
                hashing: None,
                durable: size == 0,
                writer: None,
            };
        }
        self.inner.sessions.watchers.used(key);
        Ok(guard)
    }

    /// Streams `body` onto the session's data and returns the new offset; the session keeps
    /// its writer and hashing (see the module docs). On any failure the session is reloaded
    /// from storage on its next use (the bytes that made it stay, the hash is rebuilt).
    async fn append_locked(
        &self,
        guard: &mut OwnedMutexGuard<Session>,
        repo: &RepoName,
        id: &str,
        body: ByteStream,
        alg: Algorithm,
    ) -> Result<u64> {
        let Session::Live {
            offset,
            hashing,
            writer,
            ..
        } = std::mem::replace(&mut **guard, Session::Unloaded)
        else {
            return Err(unknown(id));
        };
        let data = paths::upload(repo.as_str(), id);
        let driver = self.inner.driver.as_ref();
        let (hashing, writer) = match hashing {
            Some(h) => (*h, writer.map(Kept::into_writer)),
            None if offset == 0 => (
                Hashing::from(DigestHasher::new(alg)),
                writer.map(Kept::into_writer),
            ),
            None => {
                if let Some(w) = writer {
                    w.into_writer().close().await?;
                }
                let hasher = hash_object(driver, &data, Algorithm::Sha256, offset).await?;
                (Hashing::from(hasher), None)
            }
        };
        let tail = Tail {
            offset,
            hashing,
            writer,
        };
        self.append_with(guard, &data, tail, body).await
    }

    /// Streams `body` onto the session's data after `tail`.
    async fn append_with(
        &self,
        guard: &mut OwnedMutexGuard<Session>,
        data: &str,
        tail: Tail,
        body: ByteStream,
    ) -> Result<u64> {
        let Tail {
            offset,
            hashing,
            writer,
        } = tail;
        let writer = match writer {
            Some(w) => w,
            None => self.inner.driver.writer(data, true).await?,
        };
        // Storage and memory disagree when the sizes differ (the data changed behind our
        // back): the session is reloaded from storage on its next use.
        let mut writer = at_offset(writer, offset).await?;
        let (outcome, hashing) = ingest_pending(body, writer.as_mut(), hashing).await;
        if let Err(e) = outcome {
            // Keep what arrived (the client may resume from the reported offset).
            let _ = hashing.settle().await;
            let _ = writer.close().await;
            return Err(e);
        }
        // Not fsynced here: completion makes the bytes durable before they are hashed into a
        // visible blob (see the module docs).
        let size = writer.size();
        let writer = match self.inner.sessions.keep(writer) {
            Ok(kept) => Some(kept),
            Err(writer) => {
                writer.close().await?;
                None
            }
        };
        **guard = Session::Live {
            offset: size,
            hashing: Some(Box::new(hashing)),
            durable: false,
            writer,
        };
        Ok(size)
    }

    /// Forgets the session, first removing its storage when `remove` (not after its bytes
    /// became a blob). Storage goes first, while the session's lock is still held: a request
    /// that races in waits on the lock and then sees `Gone`, never a half-removed session.
    async fn end_session(&self, guard: &mut OwnedMutexGuard<Session>, key: &str, remove: bool) {
        **guard = Session::Gone;
        // Scratch: a removal lost in a crash brings back a session GC purges later.
        if remove {
            if let Err(e) = self.inner.driver.delete_scratch(key).await {
                if !e.is_not_found() {
                    tracing::warn!(key, error = %e, "could not remove upload session");
                }
            }
        }
        // Its bytes are no longer reserved (committed: a completed upload is index usage now).
        self.forget_session(key, true);
    }

    /// Drops the ended session at `key` from the table, the quota ledger (`committed`: see
    /// [`Store::end_session`]) and tells the watchers.
    fn forget_session(&self, key: &str, committed: bool) {
        self.inner.sessions.remove(key);
        self.inner.sessions.known.remove(key);
        self.inner.quota.ledger.release(key, committed);
        self.inner.sessions.watchers.ended(key);
    }
}

impl Store {
    /// Registers `watch` to be told when upload sessions open, are used and end (registering
    /// the same watcher again changes nothing).
    pub fn watch_uploads(&self, watch: Arc<dyn UploadWatch>) {
        self.inner.sessions.watchers.add(watch);
    }

    /// Closes the writers upload sessions keep open between requests, so their last writes
    /// land: for a graceful shutdown (sessions stay resumable; nothing is synced).
    pub async fn close_uploads(&self) {
        let sessions: Vec<_> = self.inner.sessions.map.lock().values().cloned().collect();
        for session in sessions {
            let mut guard = session.lock().await;
            let Session::Live { writer, .. } = &mut *guard else {
                continue;
            };
            if let Some(kept) = writer.take() {
                if let Err(e) = kept.into_writer().close().await {
                    tracing::warn!(error = %e, "closing an upload session's writer failed");
                    *guard = Session::Unloaded;
                }
            }
        }
    }

    /// For a graceful stop, once requests are done: closes the upload sessions' writers (see
    /// [`Store::close_uploads`]) and flushes the driver, so the next start has nothing to
    /// replay.
    pub async fn shutdown(&self) -> Result<()> {
        self.close_uploads().await;
        self.inner.driver.flush().await
    }

    /// Upload sessions this process knows to be open: started here, or resumed since it started
    /// (sessions left in storage by an earlier run count once a request touches them).
    pub fn upload_session_count(&self) -> usize {
        if self.inner.driver.shared() {
            return self.inner.sessions.known.len();
        }
        self.inner
            .sessions
            .map
            .lock()
            .values()
            .filter(|s| !matches!(s.try_lock().as_deref(), Ok(Session::Gone)))
            .count()
    }
}

impl Store {
    /// Garbage collection of a stale upload session: under the session's lock, removes it if
    /// it was not modified after `stale_before` and returns the bytes it held (`None`: gone
    /// already, or written to meanwhile).
    pub(crate) async fn purge_stale_upload(
        &self,
        repo: &str,
        id: &str,
        stale_before: SystemTime,
    ) -> Result<Option<u64>> {
        let key = paths::upload(repo, id);
        let entry = self.inner.sessions.entry(&key, || Session::Unloaded);
        let mut guard = entry.lock_owned().await;
        let meta = match self.inner.driver.stat(&key).await {
            Ok(meta) => meta,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if meta.modified > stale_before {
            return Ok(None);
        }
        if self.inner.driver.shared() {
            // The state first, as a cancellation does.
            state::remove(self.inner.driver.as_ref(), &paths::upload_state(repo, id)).await?;
        }
        self.end_session(&mut guard, &key, true).await;
        Ok(Some(meta.size))
    }
}

/// The digest a client claimed against the one its bytes hash to.
fn matches_digest(expected: &Digest, computed: Digest) -> Result<()> {
    if computed == *expected {
        Ok(())
    } else {
        Err(StoreError::DigestMismatch {
            expected: expected.clone(),
            computed,
        })
    }
}

/// `writer` when it stands at `offset`; otherwise it is closed and the request answers with
/// where the data really ends.
async fn at_offset(writer: Box<dyn FileWriter>, offset: u64) -> Result<Box<dyn FileWriter>> {
    if writer.size() == offset {
        return Ok(writer);
    }
    let stored = writer.size();
    let _ = writer.close().await;
    Err(StoreError::UploadRange {
        message: format!("upload data changed; offset was {offset}, reload the status"),
        offset: stored,
    })
}
