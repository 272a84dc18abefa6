//! Upload sessions on shared storage (replicas on one bucket, [`Driver::shared`]): any replica
//! continues any session, with nothing shared but the storage.
//!
//! Nothing about a session is kept in memory between requests. Each request claims the
//! session's state object (`…/_uploads/<id>/state`, see `state.rs`), reads the offset and the
//! SHA-256 state from it, checks them against the data object's size (a request that died
//! after writing may have left more bytes than the state says: the data's size wins and the
//! hash is rebuilt by re-reading, as after a restart), writes, closes the data's writer and
//! swaps in the new offset and hash state before it answers. Two requests racing on a session
//! cannot both write: the one that does not get the claim within `CLAIM_WAIT` answers 416
//! with the offset storage holds, and one whose data writer finds another writer won
//! ([`StoreError::PreconditionFailed`]) answers the same way, with nothing acknowledged.
//! Completion on any replica resumes the hash from the state, so it does not re-read the
//! blob (unless the state has no hash, or a SHA-512 digest is asked for). Cancelling removes
//! the state first: from then on the session is unknown everywhere.
//!
//! [`Driver::shared`]: crate::Driver::shared

use bytes::Bytes;
use ocireg_oci::{Algorithm, Digest, DigestHasher, RepoName};

use super::state::{self, refused_error, Claimed, Refused, State, CLAIM_WAIT};
use super::{unknown, valid_id, Chunk};
use crate::blobs::new_session_id;
use crate::driver::{FileWriter, Precondition};
use crate::error::{Result, StoreError};
use crate::ingest::{hash_object, ingest_pending, Hashing};
use crate::paths;
use crate::store::Store;

/// How often a status request looks again at a session another request holds.
const STATUS_POLL: std::time::Duration = std::time::Duration::from_millis(20);
use crate::ByteStream;

/// A claimed session as this request sees it.
struct Live {
    /// The session's data key.
    data: String,
    offset: u64,
    /// SHA-256 (or, for an upload that arrives whole with its completion, the digest's
    /// algorithm) of the `offset` bytes, when known.
    hasher: Option<DigestHasher>,
}

/// Why a request on a claimed session failed, and whether the failure ends the session.
struct Stop {
    error: StoreError,
    ends: bool,
}

/// A digest mismatch and a full storage end the session (its bytes are useless, or what the
/// device needs back); a quota refusal that stopped a body says so itself.
impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Stop {
        let ends =
            matches!(error, StoreError::DigestMismatch { .. }) || error.storage_full().is_some();
        Stop { error, ends }
    }
}

impl Store {
    pub(super) async fn shared_start(
        &self,
        repo: &RepoName,
        owner: Option<&str>,
    ) -> Result<String> {
        let id = new_session_id();
        let data = paths::upload(repo.as_str(), &id);
        let state_key = paths::upload_state(repo.as_str(), &id);
        let driver = self.inner.driver.as_ref();
        driver.put_scratch(&data, Bytes::new()).await?;
        // The state last: the session exists for other replicas once it does.
        driver
            .put_if(&state_key, State::fresh().encode()?, Precondition::Absent)
            .await?;
        self.inner.sessions.known.touch(&data, &state_key);
        if let Some(owner) = owner {
            self.inner.sessions.watchers.opened(&data, owner);
        }
        self.start_sweeping();
        Ok(id)
    }

    pub(super) async fn shared_offset(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let (data, state_key) = self.shared_keys(repo, id)?;
        // Requests on a session are ordered, across replicas too: a status asked while another
        // request holds the session (a failed one finishing, say) waits for it, so it reports
        // where that request left the data, as a single process would.
        let waited = std::time::Instant::now();
        let state = loop {
            let Some((state, _)) = state::read(self.inner.driver.as_ref(), &state_key).await?
            else {
                self.forget_session(&data, false);
                return Err(unknown(id));
            };
            if state.live_claim().is_none() || waited.elapsed() >= CLAIM_WAIT {
                break state;
            }
            tokio::time::sleep(STATUS_POLL).await;
        };
        self.shared_used(&data, &state_key);
        if state.live_claim().is_some() {
            // Still held after the wait (or its holder died): the data's size is not settled.
            return Ok(state.offset);
        }
        match self.inner.driver.stat(&data).await {
            Ok(meta) => Ok(meta.size),
            Err(e) if e.is_not_found() => Err(unknown(id)),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn shared_append(
        &self,
        repo: &RepoName,
        id: &str,
        chunk: Chunk,
    ) -> Result<u64> {
        let (claimed, live) = self.shared_claim(repo, id).await?;
        let (live, writer) = match self
            .shared_write_chunk(&claimed, live, repo, chunk, Algorithm::Sha256)
            .await
        {
            Ok(done) => done,
            Err(stop) => return self.shared_failed(claimed, repo, id, stop).await,
        };
        if let Some(writer) = writer {
            if let Err(e) = writer.close().await {
                return self.shared_failed(claimed, repo, id, e.into()).await;
            }
        }
        claimed
            .release(&State::at(live.offset, live.hasher.as_ref()))
            .await?;
        Ok(live.offset)
    }

    pub(super) async fn shared_complete(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        last: Option<Chunk>,
    ) -> Result<u64> {
        let (claimed, mut live) = self.shared_claim(repo, id).await?;
        let mut writer = None;
        if let Some(chunk) = last {
            let alg = digest.algorithm();
            match self
                .shared_write_chunk(&claimed, live, repo, chunk, alg)
                .await
            {
                Ok((l, w)) => (live, writer) = (l, w),
                Err(stop) => return self.shared_failed(claimed, repo, id, stop).await,
            }
        }
        let outcome = claimed
            .keep_alive(self.shared_publish(repo, digest, &mut live, writer))
            .await;
        match outcome {
            Ok(()) => {
                // The bytes became the blob: only the state is left to remove.
                claimed.remove().await?;
                self.forget_session(&live.data, true);
                Ok(live.offset)
            }
            Err(e) => self.shared_failed(claimed, repo, id, e.into()).await,
        }
    }

    /// Verifies the session's bytes against `digest` and commits the blob.
    async fn shared_publish(
        &self,
        repo: &RepoName,
        digest: &Digest,
        live: &mut Live,
        mut writer: Option<Box<dyn FileWriter>>,
    ) -> Result<()> {
        let driver = self.inner.driver.as_ref();
        let (data, offset) = (live.data.as_str(), live.offset);
        if offset == 0 {
            // Nothing was ever written: the blob is empty (and its bytes durably so).
            if let Some(w) = writer.take() {
                w.close().await?;
            }
            driver.put_content(data, Bytes::new()).await?;
        }
        let hasher = match live.hasher.take() {
            Some(h) if h.algorithm() == digest.algorithm() => h,
            _ => {
                if let Some(w) = writer.take() {
                    w.close().await?;
                }
                hash_object(driver, data, digest.algorithm(), offset).await?
            }
        };
        let verified = super::matches_digest(digest, hasher.finish());
        let ready = async {
            verified?;
            match writer {
                Some(w) => w.commit().await.map(drop),
                None if offset > 0 => driver.writer(data, true).await?.commit().await.map(drop),
                None => Ok(()),
            }
        };
        self.commit_blob(repo, digest, data, offset, ready).await
    }

    /// Checks where the chunk starts, reserves its quota and appends it; returns the session
    /// after it and the data's writer, still open (to be closed or committed by the caller).
    async fn shared_write_chunk(
        &self,
        claimed: &Claimed,
        live: Live,
        repo: &RepoName,
        chunk: Chunk,
        alg: Algorithm,
    ) -> std::result::Result<(Live, Option<Box<dyn FileWriter>>), Stop> {
        let offset = live.offset;
        if let Some(start) = chunk.start.filter(|s| *s != offset) {
            return Err(Stop::from(StoreError::UploadRange {
                message: format!("chunk starts at {start}, upload is at offset {offset}"),
                offset,
            }));
        }
        if chunk.len == Some(0) {
            return Ok((live, None));
        }
        self.check_room(chunk.len).await?;
        let key = live.data.clone();
        let Some(quota) = self.chunk_quota(repo, &key, offset, chunk.len)? else {
            let appended = claimed.keep_alive(self.shared_ingest(live, chunk.body, alg));
            return Ok(appended.await?);
        };
        let body = quota.body.limit(chunk.body);
        let appended = claimed
            .keep_alive(self.shared_ingest(live, body, alg))
            .await;
        if let Some(refusal) = quota.body.refusal() {
            // Stopped by the quota: the session is discarded.
            return Err(Stop {
                error: refusal,
                ends: true,
            });
        }
        let stored = match &appended {
            Ok((live, _)) => Some(live.offset),
            Err(_) => self.inner.driver.stat(&key).await.ok().map(|m| m.size),
        };
        quota.settle(stored);
        Ok(appended?)
    }

    /// Streams `body` onto the session's data; the hash covers the new bytes when it returns.
    async fn shared_ingest(
        &self,
        live: Live,
        body: ByteStream,
        alg: Algorithm,
    ) -> Result<(Live, Option<Box<dyn FileWriter>>)> {
        let driver = self.inner.driver.as_ref();
        let Live {
            data,
            offset,
            hasher,
        } = live;
        let hasher = match hasher {
            _ if offset == 0 => DigestHasher::new(alg),
            Some(h) => h,
            None => hash_object(driver, &data, Algorithm::Sha256, offset).await?,
        };
        // The data changed behind the claim when the sizes differ: whoever changed it decides.
        let mut writer = super::at_offset(driver.writer(&data, true).await?, offset).await?;
        let (outcome, hashing) = ingest_pending(body, writer.as_mut(), Hashing::from(hasher)).await;
        let hasher = hashing.settle().await?;
        if let Err(e) = outcome {
            // Keep what arrived: the next request finds it by the data's size.
            let _ = writer.close().await;
            return Err(e);
        }
        let offset = writer.size();
        let live = Live {
            data,
            offset,
            hasher: Some(hasher),
        };
        Ok((live, Some(writer)))
    }

    /// Claims the session and reads where it is.
    async fn shared_claim(&self, repo: &RepoName, id: &str) -> Result<(Claimed, Live)> {
        let (data, state_key) = self.shared_keys(repo, id)?;
        let claimed = match Claimed::take(&self.inner.driver, &state_key, CLAIM_WAIT).await? {
            Ok(claimed) => claimed,
            Err(Refused::Gone) => {
                self.forget_session(&data, false);
                return Err(unknown(id));
            }
            Err(refused) => return Err(refused_error(refused, &state_key)),
        };
        self.shared_used(&data, &state_key);
        let size = match self.inner.driver.stat(&data).await {
            Ok(meta) => meta.size,
            Err(e) if e.is_not_found() => {
                // Its bytes became a blob, or were removed, and the state stayed behind.
                claimed.remove().await?;
                self.forget_session(&data, false);
                return Err(unknown(id));
            }
            Err(e) => return Err(e),
        };
        let hasher = (size == claimed.state.offset)
            .then(|| claimed.state.hasher())
            .flatten();
        let live = Live {
            data,
            offset: size,
            hasher,
        };
        Ok((claimed, live))
    }

    /// A request on a claimed session failed with `e`: a lost race or a gone session says
    /// where storage is; a digest mismatch, a quota refusal or a full storage ends the
    /// session; anything else hands the claim back (the next request re-reads the data).
    async fn shared_failed<T>(
        &self,
        claimed: Claimed,
        repo: &RepoName,
        id: &str,
        stop: Stop,
    ) -> Result<T> {
        let data = paths::upload(repo.as_str(), id);
        let Stop { error: e, ends } = stop;
        if ends {
            if let Err(removal) = claimed.remove().await {
                tracing::warn!(key = %data, error = %removal, "could not remove upload state");
            }
            self.remove_shared_data(&data).await;
            self.forget_session(&data, true);
            return Err(e);
        }
        claimed.hand_back().await;
        match e {
            StoreError::PreconditionFailed { .. } => {
                let state_key = paths::upload_state(repo.as_str(), id);
                let refused = match state::read(self.inner.driver.as_ref(), &state_key).await? {
                    Some((state, _)) => Refused::At(state.offset),
                    None => Refused::Gone,
                };
                Err(refused_error(refused, &state_key))
            }
            e => Err(e),
        }
    }

    pub(super) async fn shared_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let (data, state_key) = self.shared_keys(repo, id)?;
        let driver = self.inner.driver.as_ref();
        if state::read(driver, &state_key).await?.is_none() {
            self.forget_session(&data, false);
            return Err(unknown(id));
        }
        // The state first: from then on no replica continues the session.
        state::remove(driver, &state_key).await?;
        self.remove_shared_data(&data).await;
        self.forget_session(&data, true);
        Ok(())
    }

    /// Removes a session's data (scratch: a failure leaves it to garbage collection).
    async fn remove_shared_data(&self, data: &str) {
        if let Err(e) = self.inner.driver.delete_scratch(data).await {
            if !e.is_not_found() {
                tracing::warn!(key = data, error = %e, "could not remove upload session");
            }
        }
    }

    /// The session's data and state keys (`BLOB_UPLOAD_UNKNOWN` for an id that cannot be one).
    fn shared_keys(&self, repo: &RepoName, id: &str) -> Result<(String, String)> {
        if !valid_id(id) {
            return Err(unknown(id));
        }
        Ok((
            paths::upload(repo.as_str(), id),
            paths::upload_state(repo.as_str(), id),
        ))
    }

    fn shared_used(&self, data: &str, state_key: &str) {
        self.inner.sessions.known.touch(data, state_key);
        self.inner.sessions.watchers.used(data);
    }
}
