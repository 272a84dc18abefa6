//! Blob semantics: stat, read, unlink, mount, single-request put, and the commit step shared
//! with upload sessions.
//!
//! A blob becomes visible in a repository only through its link, and the link is written only
//! after the bytes were hashed, verified and made durable under their final key. Commit holds
//! the digest's lock: concurrent commits of one digest (from any repositories) serialize, the
//! first moves its bytes into place and the others drop their copies (dedupe).

use std::future::Future;

use bytes::Bytes;
use ocireg_oci::{Digest, DigestHasher, RepoName};

use crate::driver::Publication;
use crate::error::{Result, StoreError};
use crate::ingest::{copy_verified, ingest};
use crate::paths::{self, DataLoc};
use crate::store::{BlobRead, Store};
use crate::ByteStream;

impl Store {
    /// Size of a blob linked in `repo`; `BLOB_UNKNOWN` unless linked.
    pub async fn blob_stat(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        crate::gc_shared::reusing(self, repo.as_str(), std::slice::from_ref(digest)).await?;
        let (known, loc) = self.linked_blob(repo, digest).await?;
        // A client that saw the blob may reference it next: GC keeps it for the grace period.
        self.inner.in_use.touch(repo.as_str(), digest);
        if let Some(size) = known {
            return Ok(size);
        }
        let key = paths::data(repo.as_str(), digest, loc);
        let size = match self.inner.driver.stat(&key).await {
            Ok(meta) => meta.size,
            Err(e) if e.is_not_found() => {
                tracing::warn!(repo = repo.as_str(), %digest, "blob link without data");
                return Err(blob_unknown(digest));
            }
            Err(e) => return Err(e),
        };
        self.inner.index.write(repo.as_str(), |r| {
            if let Some(slot) = r.blobs.get_mut(digest) {
                *slot = Some(size);
            }
        });
        Ok(size)
    }

    /// Reads a linked blob, whole or an inclusive byte range.
    pub async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<BlobRead> {
        crate::gc_shared::reusing(self, repo.as_str(), std::slice::from_ref(digest)).await?;
        let (_, loc) = self.linked_blob(repo, digest).await?;
        let (offset, len) = match range {
            None => (0, None),
            Some((start, end)) if end >= start => (start, Some(end - start + 1)),
            Some((start, end)) => {
                return Err(StoreError::RangeInvalid {
                    message: format!("range {start}-{end} is inverted"),
                })
            }
        };
        let key = paths::data(repo.as_str(), digest, loc);
        match self.inner.driver.reader(&key, offset, len).await {
            Ok((size, body)) => Ok(BlobRead { size, body }),
            Err(e) if e.is_not_found() => Err(blob_unknown(digest)),
            Err(e) => Err(e),
        }
    }

    /// A linked blob's bytes as an open local file, when the driver keeps blobs in files
    /// (see [`crate::driver::Driver::open_file`]); `None` otherwise. The open file keeps
    /// the bytes readable even if the blob is deleted and collected meanwhile.
    pub async fn blob_file(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<std::fs::File>> {
        let (_, loc) = self.linked_blob(repo, digest).await?;
        let key = paths::data(repo.as_str(), digest, loc);
        match self.inner.driver.open_file(&key).await {
            Err(e) if e.is_not_found() => Err(blob_unknown(digest)),
            other => other,
        }
    }

    /// Unlinks a blob from `repo` (its bytes stay until garbage collection).
    pub async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let _guard = self.inner.digest_locks.lock(digest).await;
        self.linked_blob(repo, digest).await?;
        match self
            .inner
            .driver
            .delete(&paths::layer_link(repo.as_str(), digest))
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.inner.index.write(repo.as_str(), |r| {
            r.blobs.remove(digest);
        });
        Ok(())
    }

    /// Links a blob that already exists elsewhere into `repo`. With `from`, only that
    /// repository is a source; without, any repository holding the blob is (automatic content
    /// discovery). `false` means nothing was linked and the caller starts a normal upload.
    pub async fn blob_mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<bool> {
        crate::gc_shared::reusing(self, repo.as_str(), std::slice::from_ref(digest)).await?;
        if self.linked_blob(repo, digest).await.is_ok() {
            return Ok(true);
        }
        let source = match from {
            Some(src) => match self.linked_blob(src, digest).await {
                Ok((_, loc)) => Some((src.as_str().to_owned(), loc)),
                Err(StoreError::BlobUnknown { .. }) => None,
                Err(e) => return Err(e),
            },
            // This replica's index first; over shared storage, the bucket after it.
            None => self.inner.index.read_all(|repos| {
                repos.iter().find_map(|(name, r)| {
                    r.blobs.get(digest).map(|_| (name.clone(), r.loc(digest)))
                })
            }),
        };
        let source = match source {
            None if from.is_none() && self.is_shared() && self.options().dedupe => {
                self.discover_shared(repo, digest).await?
            }
            found => found,
        };
        let Some((src_repo, src_loc)) = source else {
            return Ok(false);
        };
        // Quota: a mount adds the bytes to this namespace (and a copy when dedupe is off).
        let _quota = self.mount_quota(repo, digest, &src_repo, src_loc)?;
        let src_key = paths::data(&src_repo, digest, src_loc);
        let _guard = self.inner.digest_locks.lock(digest).await;
        let loc = self.write_loc();
        let target = paths::data(repo.as_str(), digest, loc);
        let size = match self.inner.driver.stat(&target).await {
            Ok(meta) => meta.size,
            Err(e) if e.is_not_found() => {
                if target == src_key {
                    // The index knew a link whose bytes are gone: nothing to mount.
                    return Ok(false);
                }
                let staging = paths::upload(repo.as_str(), &new_session_id());
                let copied =
                    copy_verified(self.inner.driver.as_ref(), &src_key, &staging, digest).await;
                let moved = match copied {
                    Ok(n) => self
                        .inner
                        .driver
                        .move_object(&staging, &target)
                        .await
                        .map(|()| n),
                    Err(e) => Err(e),
                };
                if moved.is_err() {
                    // A completed move left nothing behind.
                    self.remove_staging(&staging).await;
                }
                match moved {
                    Ok(n) => n,
                    Err(e) if e.is_not_found() => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.link_locked(repo, digest, loc, size).await?;
        Ok(true)
    }

    /// Single-request upload (`POST ?digest=`): streams, hashes, verifies, commits. `len` is
    /// the body's declared length (`Content-Length`), which a quota reserves up front.
    pub async fn blob_put(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
        len: Option<u64>,
    ) -> Result<u64> {
        // Before the body is read: a blob that cannot fit is refused unread.
        self.check_room(len).await?;
        let quota = self.put_quota(repo, digest, len)?;
        let body = match &quota {
            Some(q) => q.body.limit(body),
            None => body,
        };
        let id = new_session_id();
        let staging = paths::upload(repo.as_str(), &id);
        let result = self.put_staged(repo, digest, body, &staging).await;
        if result.is_err() {
            self.remove_staging(&staging).await;
        }
        match (result, quota) {
            (Err(e), Some(q)) => Err(q.body.refusal().unwrap_or(e)),
            (result, _) => result,
        }
    }

    async fn put_staged(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
        staging: &str,
    ) -> Result<u64> {
        let mut writer = self.inner.driver.writer(staging, false).await?;
        let mut hasher = DigestHasher::new(digest.algorithm());
        if let Err(e) = ingest(body, writer.as_mut(), &mut hasher).await {
            let _ = writer.cancel().await;
            return Err(e);
        }
        let size = writer.size();
        let computed = hasher.finish();
        if computed != *digest {
            let _ = writer.close().await;
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                computed,
            });
        }
        let sync = async move { writer.commit().await.map(drop) };
        self.commit_blob(repo, digest, staging, size, sync).await?;
        Ok(size)
    }

    /// Makes the bytes at `staging` the blob `digest` of `repo` once `ready` (which makes them
    /// durable and checks their digest) succeeded: publishes them under their final key with
    /// the repository's link ([`Driver::publish`]: the filesystem driver journals both while
    /// `ready` runs), unless the digest's bytes already exist (then `staging` is dropped and
    /// only the link is written). Nothing is visible before `ready` succeeded; on success
    /// `staging` is gone (moved or removed).
    ///
    /// [`Driver::publish`]: crate::Driver::publish
    pub(crate) async fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        staging: &str,
        size: u64,
        ready: impl Future<Output = Result<()>> + Send,
    ) -> Result<()> {
        crate::gc_shared::reusing(self, repo.as_str(), std::slice::from_ref(digest)).await?;
        let driver = self.inner.driver.as_ref();
        let loc = self.write_loc();
        let target = paths::data(repo.as_str(), digest, loc);
        // Held from here on: the bytes' sync overlaps the journal append (see above).
        let _guard = self.inner.digest_locks.lock(digest).await;
        let exists = match driver.stat(&target).await {
            Ok(meta) if meta.size == size => true,
            Ok(meta) => {
                tracing::warn!(%digest, stored = meta.size, size, "replacing blob bytes of the wrong size");
                false
            }
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        if exists {
            ready.await?;
            // The staging data is removed while the link is written.
            let (linked, ()) = tokio::join!(
                self.link_locked(repo, digest, loc, size),
                self.remove_staging(staging)
            );
            return linked;
        }
        let links = self.missing_link(repo, digest).into_iter().collect();
        driver
            .publish(Publication {
                from: staging,
                to: &target,
                digest,
                size,
                ready: Box::pin(ready),
                links,
            })
            .await?;
        self.record_link(repo, digest, loc, size);
        Ok(())
    }

    /// Whether the index knows `digest` as linked in `repo`.
    fn is_linked(&self, repo: &RepoName, digest: &Digest) -> bool {
        self.inner
            .index
            .read(repo.as_str(), |r| r.blobs.contains_key(digest))
            .unwrap_or(false)
    }

    /// The link file to write for `digest` in `repo`, unless the index already has it.
    fn missing_link(&self, repo: &RepoName, digest: &Digest) -> Option<(String, Bytes)> {
        (!self.is_linked(repo, digest)).then(|| {
            (
                paths::layer_link(repo.as_str(), digest),
                Bytes::from(digest.to_string()),
            )
        })
    }

    /// Writes the blob link (if the index does not have it) and records it. Caller holds the
    /// digest lock and has made the bytes durable at `loc`, so the link can go through
    /// [`Driver::put_ordered`] (the filesystem driver's journal: one append and sync instead of
    /// a temp file's sync and a directory's).
    ///
    /// [`Driver::put_ordered`]: crate::Driver::put_ordered
    async fn link_locked(
        &self,
        repo: &RepoName,
        digest: &Digest,
        loc: DataLoc,
        size: u64,
    ) -> Result<()> {
        if let Some(link) = self.missing_link(repo, digest) {
            self.inner.driver.put_ordered(vec![vec![link]]).await?;
        }
        self.record_link(repo, digest, loc, size);
        Ok(())
    }

    /// Records a written link in the quota facts and the index.
    fn record_link(&self, repo: &RepoName, digest: &Digest, loc: DataLoc, size: u64) {
        let name = repo.as_str();
        self.inner
            .quota
            .facts
            .write()
            .record(name, digest, loc, size);
        self.inner.index.write(name, |r| {
            r.blobs.insert(digest.clone(), Some(size));
            if loc == DataLoc::Local {
                r.local.insert(digest.clone());
            } else {
                r.local.remove(digest);
            }
        });
        self.inner.in_use.touch(name, digest);
    }

    /// Where new bytes for a repository are written.
    pub(crate) fn write_loc(&self) -> DataLoc {
        if self.inner.opts.dedupe {
            DataLoc::Shared
        } else {
            DataLoc::Local
        }
    }

    /// The blob's known size and data location, or `BLOB_UNKNOWN` (over shared storage, the
    /// link is looked up there on an index miss: another replica may have written it).
    async fn linked_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<(Option<u64>, DataLoc)> {
        let known = || {
            self.inner
                .index
                .read(repo.as_str(), |r| {
                    r.blobs.get(digest).map(|size| (*size, r.loc(digest)))
                })
                .flatten()
        };
        if let Some(found) = known() {
            return Ok(found);
        }
        if self.is_shared() && self.find_blob_link(repo.as_str(), digest).await? {
            if let Some(found) = known() {
                return Ok(found);
            }
        }
        Err(blob_unknown(digest))
    }

    /// Automatic content discovery over shared storage, where this replica's index may not
    /// know the repository that pushed the blob: the deduplicated data object itself (every
    /// repository's copy of a digest is that one object) is the source.
    async fn discover_shared(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<(String, DataLoc)>> {
        match self.inner.driver.stat(&paths::shared_data(digest)).await {
            Ok(_) => Ok(Some((repo.as_str().to_owned(), DataLoc::Shared))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a staging object (scratch: the removal is not synced), ignoring absence.
    pub(crate) async fn remove_staging(&self, staging: &str) {
        if let Err(e) = self.inner.driver.delete_scratch(staging).await {
            if !e.is_not_found() {
                tracing::warn!(key = staging, error = %e, "could not remove staging data");
            }
        }
    }
}

fn blob_unknown(digest: &Digest) -> StoreError {
    StoreError::BlobUnknown {
        digest: digest.clone(),
    }
}

/// A fresh, URL-safe session id (32 lowercase hex characters).
pub(crate) fn new_session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
