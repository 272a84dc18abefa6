//! Upload sessions: start, append chunks, status, complete, cancel.
//!
//! A session is `_uploads/<id>/startedat` (its marker) plus `_uploads/<id>/data` (the bytes so
//! far). Each append streams into `data` while hashing; it is written but not fsynced (as in
//! CNCF Distribution): completing the upload fsyncs `data` once before the blob becomes
//! visible. The running hash lives in memory; after a restart (or a failed append) the session
//! is reloaded from storage and the hash rebuilt by re-reading `data`, so sessions survive
//! restarts. A crash can lose (or, on a filesystem without data journaling, zero-fill) the tail
//! of acknowledged chunks: the status endpoint then reports the offset that survived, and a
//! tail that does not match what the client sent fails the digest check at completion
//! (`DIGEST_INVALID`) — never a corrupt visible blob. Per-chunk fsyncs cost 20–40% of chunked
//! push throughput for no guarantee a client can use (it must query the offset after a
//! failure anyway). Appends hash with SHA-256 (the canonical algorithm); completing with a
//! SHA-512 digest re-hashes the data, unless the whole upload arrived with the completing
//! request, which then hashes with the digest's own algorithm directly.
//!
//! Session storage is scratch space: its directory, marker and removal are never synced (a
//! session lost in a crash is unknown afterwards, one that comes back is empty and purged by
//! GC); only the blob it becomes is made durable (data sync, then the move into place).
//!
//! Requests on one session serialize on its mutex; a chunk that does not start at the
//! current offset is `RangeInvalid` (416).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ocireg_oci::{Algorithm, Digest, DigestHasher, RepoName};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::blobs::new_session_id;
use crate::driver::FileWriter;
use crate::error::{Result, StoreError};
use crate::ingest::{hash_object, ingest};
use crate::paths;
use crate::store::Store;
use crate::ByteStream;

/// Live sessions, keyed by their storage directory (`repositories/<name>/_uploads/<id>`).
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: parking_lot::Mutex<HashMap<String, Arc<Mutex<Session>>>>,
}

#[derive(Debug)]
enum Session {
    /// Not yet read from storage (or to be re-read after a failure).
    Unloaded,
    /// Known state.
    Live {
        offset: u64,
        hasher: Option<Box<DigestHasher>>,
        /// All `offset` bytes are known to be durable.
        durable: bool,
    },
    /// Completed or cancelled.
    Gone,
}

impl Sessions {
    fn entry(&self, dir: &str, initial: impl FnOnce() -> Session) -> Arc<Mutex<Session>> {
        let mut map = self.map.lock();
        Arc::clone(
            map.entry(dir.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(initial()))),
        )
    }

    fn remove(&self, dir: &str) {
        self.map.lock().remove(dir);
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
    /// Starts an upload session; returns its id (32 hex characters, URL-safe).
    pub async fn upload_start(&self, repo: &RepoName) -> Result<String> {
        let id = new_session_id();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let marker = paths::upload_started(repo.as_str(), &id);
        // Written, not fsynced: a session lost in a crash is simply unknown afterwards (404;
        // the client starts over), so the two syncs of a durable put would only slow every push.
        let mut writer = self.inner.driver.writer(&marker, false).await?;
        writer.write(vec![Bytes::from(now.to_string())]).await?;
        writer.close().await?;
        let dir = paths::upload_dir(repo.as_str(), &id);
        self.inner.sessions.entry(&dir, || Session::Live {
            offset: 0,
            hasher: None,
            durable: true,
        });
        Ok(id)
    }

    /// Bytes received so far in the session (`BLOB_UPLOAD_UNKNOWN` if there is no such session).
    pub async fn upload_offset(&self, repo: &RepoName, session: &str) -> Result<u64> {
        let guard = self.open_session(repo, session).await?;
        match &*guard {
            Session::Live { offset, .. } => Ok(*offset),
            _ => Err(unknown(session)),
        }
    }

    /// Appends a chunk; `start` (from `Content-Range`), when given, must equal the current
    /// offset. Returns the new offset.
    pub async fn upload_append(
        &self,
        repo: &RepoName,
        session: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let mut guard = self.open_session(repo, session).await?;
        if let (Some(start), Session::Live { offset, .. }) = (start, &*guard) {
            if start != *offset {
                return Err(StoreError::RangeInvalid {
                    message: format!("chunk starts at {start}, upload is at offset {offset}"),
                });
            }
        }
        self.append_locked(&mut guard, repo, session, body, Algorithm::Sha256, false)
            .await
            .map(|(offset, _)| offset)
    }

    /// Finishes the session with an optional last chunk: verifies the bytes hash to `digest`
    /// and commits the blob. On a mismatch the session and its bytes are removed.
    pub async fn upload_complete(
        &self,
        repo: &RepoName,
        session: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        let mut guard = self.open_session(repo, session).await?;
        // The last chunk's writer stays open: the sync below needs no second open.
        let mut open_writer = None;
        if let Some(body) = body {
            let alg = digest.algorithm();
            open_writer = self
                .append_locked(&mut guard, repo, session, body, alg, true)
                .await?
                .1;
        }
        let data = paths::upload_data(repo.as_str(), session);
        let dir = paths::upload_dir(repo.as_str(), session);
        let Session::Live {
            offset,
            hasher,
            durable,
        } = std::mem::replace(&mut *guard, Session::Unloaded)
        else {
            return Err(unknown(session));
        };
        let driver = self.inner.driver.as_ref();
        if offset == 0 {
            // Nothing was ever written: the blob is empty (and the data object may not exist).
            if let Some(writer) = open_writer.take() {
                writer.close().await?;
            }
            driver.put_content(&data, Bytes::new()).await?;
        }
        let hasher = match hasher {
            Some(h) if h.algorithm() == digest.algorithm() => *h,
            _ => {
                // Re-read the data: everything written must have landed first.
                if let Some(writer) = open_writer.take() {
                    writer.close().await?;
                }
                hash_object(driver, &data, digest.algorithm(), offset).await?
            }
        };
        let computed = hasher.finish();
        if computed != *digest {
            if let Some(writer) = open_writer {
                let _ = writer.close().await;
            }
            self.end_session(&mut guard, &dir).await;
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                computed,
            });
        }
        // The data is synced while the link is written (see `commit_blob`).
        let sync = async {
            if let Some(writer) = open_writer {
                writer.commit().await?;
            } else if offset > 0 && !durable {
                driver.writer(&data, true).await?.commit().await?;
            }
            Ok(())
        };
        let cleanup = self.end_session(&mut guard, &dir);
        self.commit_blob(repo, digest, &data, offset, sync, cleanup)
            .await?;
        Ok(offset)
    }

    /// Cancels the session and removes its bytes.
    pub async fn upload_cancel(&self, repo: &RepoName, session: &str) -> Result<()> {
        let mut guard = self.open_session(repo, session).await?;
        let dir = paths::upload_dir(repo.as_str(), session);
        self.end_session(&mut guard, &dir).await;
        Ok(())
    }

    /// Locks the session, loading it from storage if this process does not know it yet.
    async fn open_session(&self, repo: &RepoName, id: &str) -> Result<OwnedMutexGuard<Session>> {
        if !valid_id(id) {
            return Err(unknown(id));
        }
        let dir = paths::upload_dir(repo.as_str(), id);
        let entry = self.inner.sessions.entry(&dir, || Session::Unloaded);
        let mut guard = entry.lock_owned().await;
        if matches!(&*guard, Session::Gone) {
            return Err(unknown(id));
        }
        // The marker is checked on every request, so a session whose storage was removed
        // behind our back (garbage collection of stale uploads) is unknown, not resurrected.
        let driver = &self.inner.driver;
        match driver.stat(&paths::upload_started(repo.as_str(), id)).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                *guard = Session::Gone;
                self.inner.sessions.remove(&dir);
                self.inner.quota.ledger.release(&dir, false);
                return Err(unknown(id));
            }
            Err(e) => return Err(e),
        }
        if matches!(&*guard, Session::Live { .. }) {
            return Ok(guard);
        }
        let offset = match driver.stat(&paths::upload_data(repo.as_str(), id)).await {
            Ok(meta) => meta.size,
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e),
        };
        *guard = Session::Live {
            offset,
            hasher: None,
            durable: offset == 0,
        };
        Ok(guard)
    }

    /// Streams `body` onto the session's data; on any failure the session is reloaded from
    /// storage on its next use (the bytes that made it stay, the hash is rebuilt). Returns the
    /// new offset, and the writer still open when `keep_open` asks for it (the caller commits
    /// or closes it).
    async fn append_locked(
        &self,
        guard: &mut OwnedMutexGuard<Session>,
        repo: &RepoName,
        id: &str,
        body: ByteStream,
        alg: Algorithm,
        keep_open: bool,
    ) -> Result<(u64, Option<Box<dyn FileWriter>>)> {
        let Session::Live { offset, hasher, .. } =
            std::mem::replace(&mut **guard, Session::Unloaded)
        else {
            return Err(unknown(id));
        };
        let data = paths::upload_data(repo.as_str(), id);
        let driver = self.inner.driver.as_ref();
        let mut hasher = match hasher {
            Some(h) => *h,
            None if offset == 0 => DigestHasher::new(alg),
            None => hash_object(driver, &data, Algorithm::Sha256, offset).await?,
        };
        let mut writer = driver.writer(&data, true).await?;
        if writer.size() != offset {
            // Storage and memory disagree (the data changed behind our back): resync.
            let _ = writer.close().await;
            return Err(StoreError::RangeInvalid {
                message: format!("upload data changed; offset was {offset}, reload the status"),
            });
        }
        match ingest(body, writer.as_mut(), &mut hasher).await {
            Ok(_) => {
                // Not fsynced here: completion makes the bytes durable before they are hashed
                // into a visible blob (see the module docs).
                let (size, writer) = if keep_open {
                    (writer.size(), Some(writer))
                } else {
                    (writer.close().await?, None)
                };
                **guard = Session::Live {
                    offset: size,
                    hasher: Some(Box::new(hasher)),
                    durable: false,
                };
                Ok((size, writer))
            }
            Err(e) => {
                // Keep what arrived (the client may resume from the reported offset).
                let _ = writer.close().await;
                Err(e)
            }
        }
    }

    /// Removes the session's storage and forgets it.
    /// Storage goes first, while the session's lock is still held: a request that races in
    /// waits on the lock and then sees `Gone`, never a half-removed session.
    async fn end_session(&self, guard: &mut OwnedMutexGuard<Session>, dir: &str) {
        **guard = Session::Gone;
        // Scratch: a removal lost in a crash brings back an empty session GC purges later.
        if let Err(e) = self.inner.driver.delete_scratch(dir).await {
            if !e.is_not_found() {
                tracing::warn!(dir, error = %e, "could not remove upload session");
            }
        }
        self.inner.sessions.remove(dir);
        // Its bytes are no longer reserved (committed: a completed upload is index usage now).
        self.inner.quota.ledger.release(dir, true);
    }
}

impl Store {
    /// Upload sessions this process knows to be open: started here, or resumed since it started
    /// (sessions left in storage by an earlier run count once a request touches them).
    pub fn upload_session_count(&self) -> usize {
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
    /// nothing in `repositories/<repo>/_uploads/<id>/` was modified after `stale_before` and
    /// returns the bytes it held (`None`: gone already, or written to meanwhile).
    pub(crate) async fn purge_stale_upload(
        &self,
        repo: &str,
        id: &str,
        stale_before: SystemTime,
    ) -> Result<Option<u64>> {
        let dir = paths::upload_dir(repo, id);
        let entry = self.inner.sessions.entry(&dir, || Session::Unloaded);
        let mut guard = entry.lock_owned().await;
        let objects = self.inner.driver.walk(&dir).await?;
        let fresh = objects.iter().any(|o| o.modified > stale_before);
        if objects.is_empty() || fresh {
            return Ok(None);
        }
        let bytes = objects.iter().map(|o| o.size).sum();
        self.end_session(&mut guard, &dir).await;
        Ok(Some(bytes))
    }
}
