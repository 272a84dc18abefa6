//! The push paths with quota: blob uploads (single request, chunks, completion), mounts and
//! manifest puts reserve what they add before writing anything.
//!
//! The `*_sized` methods take the request's `Content-Length` when the server knows it: the
//! whole length is reserved (and refused) before the first byte is written. Without it, the
//! body is reserved frame by frame and stopped before the frame that would pass a limit;
//! an upload session stopped that way is discarded (its bytes removed), a single-request
//! upload leaves nothing. Without a configured quota they are the plain methods.

use ocireg_oci::{Digest, ParsedManifest, RepoName};

use super::check::{Push, TempHold};
use super::ledger::Amount;
use super::namespace_of;
use crate::error::{Result, StoreError};
use crate::paths::{self, DataLoc};
use crate::store::Store;
use crate::ByteStream;

fn scaled(unit: Amount, n: u64) -> Amount {
    Amount {
        ns_bytes: unit.ns_bytes.saturating_mul(n),
        total_bytes: unit.total_bytes.saturating_mul(n),
        artifacts: 0,
    }
}

impl Store {
    /// [`Store::blob_put`] with the body's length when known (quota checked first).
    pub async fn blob_put_sized(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
        len: Option<u64>,
    ) -> Result<u64> {
        let Some(adm) = self.admission(repo.as_str()) else {
            return self.blob_put(repo, digest, body).await;
        };
        // Per byte: nothing where the digest is already counted (dedupe), else one.
        let unit = self.added_by(repo.as_str(), digest, self.write_loc(), 1);
        let prepaid = len.unwrap_or(0);
        let hold = adm.hold(scaled(unit, prepaid), Push::Upload)?;
        let (body, refused) = adm.limit_stream(&hold.key, body, prepaid, unit);
        let result = self.blob_put(repo, digest, body).await;
        drop(hold);
        result.map_err(|e| refused.lock().take().unwrap_or(e))
    }

    /// [`Store::upload_append`] with the chunk's length when known (quota checked first).
    pub async fn upload_append_sized(
        &self,
        repo: &RepoName,
        session: &str,
        start: Option<u64>,
        body: ByteStream,
        len: Option<u64>,
    ) -> Result<u64> {
        let Some(key) = self.session_reservation(repo, session).await? else {
            return self.upload_append(repo, session, start, body).await;
        };
        let (body, refused) = self.reserve_chunk(repo, &key, body, len)?;
        let result = self.upload_append(repo, session, start, body).await;
        self.after_chunk(repo, session, &key, result, &refused)
            .await
    }

    /// [`Store::upload_complete`] with the last chunk's length when known (quota checked first).
    pub async fn upload_complete_sized(
        &self,
        repo: &RepoName,
        session: &str,
        digest: &Digest,
        body: Option<ByteStream>,
        len: Option<u64>,
    ) -> Result<u64> {
        let Some(body) = body else {
            return self.upload_complete(repo, session, digest, None).await;
        };
        let Some(key) = self.session_reservation(repo, session).await? else {
            return self
                .upload_complete(repo, session, digest, Some(body))
                .await;
        };
        let (body, refused) = self.reserve_chunk(repo, &key, body, len)?;
        let result = self
            .upload_complete(repo, session, digest, Some(body))
            .await;
        self.after_chunk(repo, session, &key, result, &refused)
            .await
    }

    /// With a quota: the session's ledger key, its stored bytes reserved under it (a session
    /// from an earlier run becomes known to the ledger here).
    async fn session_reservation(&self, repo: &RepoName, session: &str) -> Result<Option<String>> {
        if self.quota().is_none() {
            return Ok(None);
        }
        let offset = self.upload_offset(repo, session).await?;
        let key = paths::upload(repo.as_str(), session);
        let ns = namespace_of(repo.as_str());
        self.inner.quota.ledger.set(&key, ns, Amount::bytes(offset));
        Ok(Some(key))
    }

    /// Reserves a chunk's known length and limits the rest of its body.
    fn reserve_chunk(
        &self,
        repo: &RepoName,
        key: &str,
        body: ByteStream,
        len: Option<u64>,
    ) -> Result<(ByteStream, RefusalSlot)> {
        let Some(adm) = self.admission(repo.as_str()) else {
            return Ok((body, RefusalSlot::default()));
        };
        let prepaid = len.unwrap_or(0);
        adm.reserve(key, Amount::bytes(prepaid), Push::Upload)?;
        Ok(adm.limit_stream(key, body, prepaid, Amount::bytes(1)))
    }

    /// Brings the session's reservation back to its stored bytes; a chunk stopped by the quota
    /// discards the session.
    async fn after_chunk(
        &self,
        repo: &RepoName,
        session: &str,
        key: &str,
        result: Result<u64>,
        refused: &RefusalSlot,
    ) -> Result<u64> {
        let stopped = refused.lock().take();
        if let Some(refusal) = stopped {
            if let Err(e) = self.upload_cancel(repo, session).await {
                if !matches!(e, StoreError::UploadUnknown { .. }) {
                    tracing::warn!(repo = repo.as_str(), session, error = %e, "could not discard an upload over quota");
                }
            }
            return Err(refusal);
        }
        let ns = namespace_of(repo.as_str());
        match self.upload_offset(repo, session).await {
            Ok(offset) => self.inner.quota.ledger.set(key, ns, Amount::bytes(offset)),
            // Ended (completed, or discarded on a digest mismatch): its end released it.
            Err(_) => self.inner.quota.ledger.release(key, false),
        }
        result
    }

    /// Quota for mounting `digest` from `src_repo` (data at `src_loc`) into `repo`; the hold
    /// lasts until the mount is linked.
    pub(crate) fn mount_quota(
        &self,
        repo: &RepoName,
        digest: &Digest,
        src_repo: &str,
        src_loc: DataLoc,
    ) -> Result<Option<TempHold>> {
        let Some(adm) = self.admission(repo.as_str()) else {
            return Ok(None);
        };
        let known = self
            .inner
            .quota
            .facts
            .read()
            .physical(src_repo, digest, src_loc);
        let size = known.or_else(|| {
            self.inner
                .index
                .read(src_repo, |r| r.blobs.get(digest).copied().flatten())
                .flatten()
        });
        let Some(size) = size else {
            return Ok(None);
        };
        let amount = self.added_by(repo.as_str(), digest, self.write_loc(), size);
        adm.hold(amount, Push::Mount).map(Some)
    }

    /// Quota for a manifest put of `size` bytes stored at `loc`; `new` when the repository
    /// does not have the revision yet (a tag-only put adds nothing).
    pub(crate) fn manifest_quota(
        &self,
        repo: &str,
        digest: &Digest,
        loc: DataLoc,
        new: bool,
        parsed: &ParsedManifest,
        size: u64,
    ) -> Result<Option<TempHold>> {
        if !new {
            return Ok(None);
        }
        let Some(adm) = self.admission(repo) else {
            return Ok(None);
        };
        let mut amount = self.added_by(repo, digest, loc, size);
        amount.artifacts = self.artifact_delta(repo, parsed);
        adm.hold(amount, Push::Manifest).map(Some)
    }

    /// Artifacts a new manifest adds to `repo`: one, minus the children it takes in that
    /// counted as artifacts themselves until now.
    fn artifact_delta(&self, repo: &str, parsed: &ParsedManifest) -> u64 {
        let facts = self.inner.quota.facts.read();
        let folded = self
            .inner
            .index
            .read(repo, |r| {
                let mut covered = std::collections::HashSet::new();
                for m in r.manifests.keys() {
                    covered.extend(facts.children(m).iter());
                }
                parsed
                    .manifest_refs()
                    .map(|c| &c.digest)
                    .filter(|c| r.manifests.contains_key(*c) && !covered.contains(*c))
                    .collect::<std::collections::HashSet<_>>()
                    .len() as u64
            })
            .unwrap_or(0);
        1u64.saturating_sub(folded)
    }

    /// Records a stored manifest's size and children for usage accounting.
    pub(crate) fn note_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        loc: DataLoc,
        parsed: &ParsedManifest,
        size: u64,
    ) {
        let mut facts = self.inner.quota.facts.write();
        facts.record(repo, digest, loc, size);
        facts.record_children(
            digest,
            parsed.manifest_refs().map(|d| d.digest.clone()).collect(),
        );
    }
}

/// Where a body limiter leaves its refusal.
type RefusalSlot = std::sync::Arc<parking_lot::Mutex<Option<StoreError>>>;
