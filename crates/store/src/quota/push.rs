//! The push paths with quota: blob uploads (single request, chunks, completion), mounts and
//! manifest puts reserve what they add before writing anything.
//!
//! An upload that declares its length (`Content-Length`) has the whole length reserved (and
//! refused) before the first byte is written. Without it, the body is reserved frame by frame
//! and stopped before the frame that would pass a limit; an upload session stopped that way
//! is discarded (its bytes removed), a single-request upload leaves nothing. A session's
//! reservation is changed only under the session's lock (see `uploads.rs`).

use ocireg_oci::{Digest, ParsedManifest, RepoName};

use super::check::{Admission, Push, TempHold};
use super::ledger::Amount;
use super::namespace_of;
use crate::error::{Result, StoreError};
use crate::paths::DataLoc;
use crate::store::Store;
use crate::ByteStream;

fn scaled(unit: Amount, n: u64) -> Amount {
    Amount {
        ns_bytes: unit.ns_bytes.saturating_mul(n),
        total_bytes: unit.total_bytes.saturating_mul(n),
        artifacts: 0,
    }
}

/// The quota of one body on its way in: its declared length was reserved up front, every
/// further frame is reserved as it arrives (see [`Admission::limit_stream`]).
pub(crate) struct BodyQuota {
    adm: Admission,
    key: String,
    prepaid: u64,
    unit: Amount,
    refused: RefusalSlot,
}

impl BodyQuota {
    /// `body`, stopped before a frame that would pass a limit.
    pub(crate) fn limit(&self, body: ByteStream) -> ByteStream {
        self.adm
            .limit_stream(&self.key, body, self.prepaid, self.unit, &self.refused)
    }

    /// The refusal that stopped the body, if one did (reported instead of the body error).
    pub(crate) fn refusal(&self) -> Option<StoreError> {
        self.refused.lock().take()
    }
}

/// [`BodyQuota`] of a single-request upload: the reservation lasts as long as this.
pub(crate) struct PutQuota {
    pub(crate) body: BodyQuota,
    _hold: TempHold,
}

/// [`BodyQuota`] of a chunk of an upload session, reserved under the session's key.
pub(crate) struct ChunkQuota {
    pub(crate) body: BodyQuota,
    store: Store,
    ns: String,
}

impl ChunkQuota {
    /// Brings the session's reservation to the bytes it stores after the chunk (`None`:
    /// unknown, it is released until the session is next used).
    pub(crate) fn settle(&self, stored: Option<u64>) {
        let ledger = &self.store.inner.quota.ledger;
        match stored {
            Some(n) => ledger.set(&self.body.key, &self.ns, Amount::bytes(n)),
            None => ledger.release(&self.body.key, false),
        }
    }
}

impl Store {
    /// With a quota: reserves a single-request upload of `digest` into `repo`, `len` bytes
    /// when declared (refused before anything is written when over a limit).
    pub(crate) fn put_quota(
        &self,
        repo: &RepoName,
        digest: &Digest,
        len: Option<u64>,
    ) -> Result<Option<PutQuota>> {
        let Some(adm) = self.admission(repo.as_str()) else {
            return Ok(None);
        };
        // Per byte: nothing where the digest is already counted (dedupe), else one.
        let unit = self.added_by(repo.as_str(), digest, self.write_loc(), 1);
        let prepaid = len.unwrap_or(0);
        let hold = adm.hold(scaled(unit, prepaid), Push::Upload)?;
        let body = BodyQuota {
            key: hold.key.clone(),
            adm,
            prepaid,
            unit,
            refused: RefusalSlot::default(),
        };
        Ok(Some(PutQuota { body, _hold: hold }))
    }

    /// With a quota: for a chunk of `len` bytes (when declared) onto the session at `key`
    /// holding `offset` bytes, sets the session's reservation to its stored bytes (a session
    /// from an earlier run becomes known to the ledger here) and reserves the chunk. Called
    /// under the session's lock.
    pub(crate) fn chunk_quota(
        &self,
        repo: &RepoName,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Option<ChunkQuota>> {
        let Some(adm) = self.admission(repo.as_str()) else {
            return Ok(None);
        };
        let ns = namespace_of(repo.as_str()).to_owned();
        self.inner.quota.ledger.set(key, &ns, Amount::bytes(offset));
        let prepaid = len.unwrap_or(0);
        adm.reserve(key, Amount::bytes(prepaid), Push::Upload)?;
        let body = BodyQuota {
            adm,
            key: key.to_owned(),
            prepaid,
            unit: Amount::bytes(1),
            refused: RefusalSlot::default(),
        };
        Ok(Some(ChunkQuota {
            body,
            store: self.clone(),
            ns,
        }))
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

    /// Quota for a manifest revision new to its repository.
    pub(crate) fn manifest_quota(&self, m: &RevisionFacts<'_>) -> Result<Option<TempHold>> {
        let Some(adm) = self.admission(m.repo) else {
            return Ok(None);
        };
        let mut amount = self.added_by(m.repo, m.digest, m.loc, m.size);
        amount.artifacts = self.artifact_delta(m.repo, m.parsed);
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
    pub(crate) fn note_manifest(&self, m: &RevisionFacts<'_>) {
        let mut facts = self.inner.quota.facts.write();
        facts.record(m.repo, m.digest, m.loc, m.size);
        facts.record_children(
            m.digest,
            m.parsed.manifest_refs().map(|d| d.digest.clone()).collect(),
        );
    }
}

/// A manifest revision as usage accounting sees it: where its bytes are and what it refers to.
pub(crate) struct RevisionFacts<'a> {
    /// The repository it is put in.
    pub(crate) repo: &'a str,
    /// Its digest.
    pub(crate) digest: &'a Digest,
    /// Where its bytes are stored.
    pub(crate) loc: DataLoc,
    /// Its parsed body.
    pub(crate) parsed: &'a ParsedManifest,
    /// Size of its bytes.
    pub(crate) size: u64,
}

/// Where a body limiter leaves its refusal.
pub(crate) type RefusalSlot = std::sync::Arc<parking_lot::Mutex<Option<StoreError>>>;
