//! Manifest semantics: put, get, delete, tag listing, catalog, referrers.
//!
//! Manifests are stored byte-for-byte as content-addressed data (like blobs) and linked into a
//! repository by a revision link; tags and referrer links point at revisions. See
//! [`crate::paths`] for the write order and why a put needs only two rounds of fsyncs.

use std::sync::Arc;

use bytes::Bytes;
use ocireg_oci::{
    parse_manifest, Algorithm, Descriptor, Digest, ParsedManifest, Reference, RepoName, Tag,
};

use crate::error::{Result, StoreError};
use crate::index::{media_type, page, tag_page, Annotations, ManifestMeta, Repo};
use crate::paths::{self, DataLoc};
use crate::quota::RevisionFacts;
use crate::store::{ManifestPut, Store, StoredManifest};

mod delete;

/// The digest a put of `body` under `reference` stores it as: the reference's own digest,
/// which the body must match, or sha256 for a tag.
fn put_digest(reference: &Reference, body: &[u8]) -> Result<Digest> {
    match reference {
        Reference::Digest(expected) => {
            let computed = Digest::compute(expected.algorithm(), body);
            if computed != *expected {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    computed,
                });
            }
            Ok(computed)
        }
        Reference::Tag(_) => Ok(Digest::compute(Algorithm::Sha256, body)),
    }
}

/// The links of a new manifest revision: the revision, and the referrer link of its subject.
fn revision_links(name: &str, digest: &Digest, meta: &ManifestMeta) -> Vec<(String, Bytes)> {
    let revision = paths::revision_content(digest, &meta.media_type);
    let mut links = vec![(paths::revision_link(name, digest), Bytes::from(revision))];
    if let Some(subject) = &meta.subject {
        let key = paths::referrer_link(name, subject, digest);
        links.push((key, Bytes::from(digest.to_string())));
    }
    links
}

/// The index metadata of a parsed manifest of `size` bytes.
pub(crate) fn meta_of(parsed: &ParsedManifest, size: u64) -> ManifestMeta {
    ManifestMeta {
        media_type: media_type(&parsed.media_type),
        size,
        artifact_type: parsed.referrer_artifact_type().map(media_type),
        annotations: Annotations::from(&parsed.annotations),
        subject: parsed.subject.as_ref().map(|s| Box::new(s.digest.clone())),
    }
}

/// True for a foreign (Docker) or non-distributable (OCI) layer with download URLs: its bytes
/// live elsewhere, so the registry does not require them (as CNCF Distribution).
fn is_external_layer(d: &Descriptor) -> bool {
    let urls = d.urls.as_ref().is_some_and(|u| !u.is_empty());
    urls && (d.media_type.contains(".foreign.") || d.media_type.contains(".nondistributable."))
}

/// The first reference of `parsed` that `repo` does not have.
fn first_missing(parsed: &ParsedManifest, repo: Option<&Repo>) -> Option<(&'static str, Digest)> {
    for blob in parsed.blob_refs() {
        if is_external_layer(blob) {
            continue;
        }
        if !repo.is_some_and(|r| r.blobs.contains_key(&blob.digest)) {
            return Some(("blob", blob.digest.clone()));
        }
    }
    for child in parsed.manifest_refs() {
        if !repo.is_some_and(|r| r.manifests.contains_key(&child.digest)) {
            return Some(("manifest", child.digest.clone()));
        }
    }
    None
}

fn manifest_unknown(reference: &impl std::fmt::Display) -> StoreError {
    StoreError::ManifestUnknown {
        reference: reference.to_string(),
    }
}

fn name_unknown(repo: &RepoName) -> StoreError {
    StoreError::NameUnknown {
        name: repo.as_str().to_owned(),
    }
}

/// Resolved state of one manifest in a repository.
struct Resolved {
    digest: Digest,
    meta: Option<Arc<ManifestMeta>>,
    loc: DataLoc,
}

impl Store {
    /// Validates and stores a manifest under a tag or digest (rules in the crate docs).
    pub async fn manifest_put(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<ManifestPut> {
        let parsed = parse_manifest(&body, content_type)?;
        let digest = put_digest(reference, &body)?;
        let name = repo.as_str();
        // Garbage collection keeps what this put references (and the manifest) meanwhile.
        let refs = parsed.blob_refs().chain(parsed.manifest_refs());
        let pinned = refs.map(|d| d.digest.clone()).chain([digest.clone()]);
        let mut in_use = self.inner.in_use.pin(name, pinned);
        crate::gc_shared::reusing_manifest(self, name, &parsed, &digest).await?;
        if let Some((kind, missing)) = self.missing_reference(name, &parsed).await? {
            return Err(StoreError::ManifestBlobUnknown {
                kind,
                digest: missing,
            });
        }
        let meta = Arc::new(meta_of(&parsed, body.len() as u64));

        let _digest_guard = self.inner.digest_locks.lock(&digest).await;
        let existing_loc = self.revision_loc(name, &digest).await?;
        let loc = existing_loc.unwrap_or_else(|| self.write_loc());
        // Quota (artifacts and bytes) of a new revision: refused before anything is written.
        let size = body.len() as u64;
        let stored = RevisionFacts {
            repo: name,
            digest: &digest,
            loc,
            parsed: &parsed,
            size,
        };
        let _quota = match existing_loc {
            None => self.manifest_quota(&stored)?,
            Some(_) => None,
        };
        let mut bytes_group = Vec::new();
        let mut links: Vec<(String, Bytes)> = Vec::new();
        if existing_loc.is_some() && !self.data_present(name, &digest, loc) {
            // Scrub quarantined its bytes: putting the same content again restores them. (A
            // revision another replica stored is not in this replica's facts: storage tells.)
            let target = paths::data(name, &digest, loc);
            if !self.holds(&target, size).await? {
                bytes_group.push((target, body.clone()));
            }
        }
        if existing_loc.is_none() {
            let target = paths::data(name, &digest, loc);
            if self.is_shared() {
                // One create-if-absent instead of a look and a write: the bytes under a
                // digest's key are the same whoever wrote them.
                self.create_data(&target, body.clone()).await?;
            } else if !self.holds(&target, size).await? {
                bytes_group.push((target, body.clone()));
            }
            links.extend(revision_links(name, &digest, &meta));
        }
        let tag = reference.as_tag();
        let _tag_guard = match tag {
            Some(t) => Some(self.inner.tag_locks.lock(&(name, t.as_str())).await),
            None => None,
        };
        self.write_put(name, &digest, tag, bytes_group, links)
            .await?;
        self.note_manifest(&stored);

        self.index_revision(name, &digest, loc, tag, &meta);
        in_use.stored();
        self.inner.cache.insert(&digest, &body);
        Ok(ManifestPut {
            subject: meta.subject.as_deref().cloned(),
            digest,
        })
    }

    /// The first reference of `parsed` that repository `name` does not have (over shared
    /// storage, looked up there on an index miss: another replica may have pushed it).
    async fn missing_reference(
        &self,
        name: &str,
        parsed: &ParsedManifest,
    ) -> Result<Option<(&'static str, Digest)>> {
        // Each lookup that finds a reference records it, so every round gets further.
        let rounds = parsed.blob_refs().count() + parsed.manifest_refs().count() + 1;
        for _ in 0..rounds {
            let missing = self
                .inner
                .index
                .read_opt(name, |r| first_missing(parsed, r));
            let Some((kind, digest)) = missing else {
                return Ok(None);
            };
            let found = match (self.is_shared(), kind) {
                (false, _) => false,
                (true, "blob") => self.find_blob_link(name, &digest).await?,
                (true, _) => self.find_revision(name, &digest).await?,
            };
            if !found {
                return Ok(Some((kind, digest)));
            }
        }
        Ok(self
            .inner
            .index
            .read_opt(name, |r| first_missing(parsed, r)))
    }

    /// Where the bytes of the repository's revision `digest` are, when it has that revision
    /// (over shared storage, looked up there on an index miss).
    async fn revision_loc(&self, name: &str, digest: &Digest) -> Result<Option<DataLoc>> {
        let known = || {
            self.inner
                .index
                .read(name, |r| {
                    r.manifests.contains_key(digest).then(|| r.loc(digest))
                })
                .flatten()
        };
        match known() {
            Some(loc) => Ok(Some(loc)),
            None if self.is_shared() && self.find_revision(name, digest).await? => Ok(known()),
            None => Ok(None),
        }
    }

    /// Writes a put's objects: the bytes durable before any link names them, the links
    /// together (the filesystem driver syncs all temp files at once, then renames group by
    /// group). Over shared storage the tag goes last, by compare-and-swap
    /// ([`Store::write_tag`]): a replica that reads the tag then finds the revision.
    async fn write_put(
        &self,
        name: &str,
        digest: &Digest,
        tag: Option<&Tag>,
        bytes_group: Vec<(String, Bytes)>,
        mut links: Vec<(String, Bytes)>,
    ) -> Result<()> {
        let shared = self.is_shared();
        // A tag already naming the digest is not written again.
        let moves = |t: &Tag| {
            self.inner
                .index
                .read(name, |r| r.tags.get(t.as_str()) != Some(digest))
                .unwrap_or(true)
        };
        if let Some(t) = tag.filter(|t| !shared && moves(t)) {
            let key = paths::tag_link(name, t.as_str());
            links.push((key, Bytes::from(digest.to_string())));
        }
        let groups: Vec<Vec<(String, Bytes)>> = [bytes_group, links]
            .into_iter()
            .filter(|g| !g.is_empty())
            .collect();
        if !groups.is_empty() {
            self.inner.driver.put_ordered(groups).await?;
        }
        match tag {
            Some(t) if shared => self.write_tag(name, t.as_str(), digest).await,
            _ => Ok(()),
        }
    }

    /// Records a stored revision in the index: the manifest, where its bytes are, the tag it
    /// was put under and its referrer entry.
    fn index_revision(
        &self,
        name: &str,
        digest: &Digest,
        loc: DataLoc,
        tag: Option<&Tag>,
        meta: &Arc<ManifestMeta>,
    ) {
        self.inner.index.write(name, |r| {
            r.manifests.insert(digest.clone(), Some(Arc::clone(meta)));
            if loc == DataLoc::Local {
                r.local.insert(digest.clone());
            }
            if let Some(t) = tag {
                r.tags.insert(t.as_str(), digest.clone());
            }
            if let Some(subject) = &meta.subject {
                r.referrers
                    .entry(Digest::clone(subject))
                    .or_default()
                    .insert(digest.clone());
            }
        });
    }

    /// Writes content-addressed `bytes` under `key` unless they are there already (shared
    /// storage: a conditional create, durable once acknowledged).
    async fn create_data(&self, key: &str, bytes: Bytes) -> Result<()> {
        match self
            .inner
            .driver
            .put_if(key, bytes, crate::driver::Precondition::Absent)
            .await
        {
            Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether storage holds `size` bytes under `key`.
    async fn holds(&self, key: &str, size: u64) -> Result<bool> {
        match self.inner.driver.stat(key).await {
            Ok(m) => Ok(m.size == size),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The manifest under a tag or digest: exact bytes and media type.
    pub async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let resolved = self.resolve(repo, reference).await?;
        if let Reference::Digest(d) = reference {
            // A client may reference it next (an index child): GC keeps it for the grace period.
            self.inner.in_use.touch(repo.as_str(), d);
        }
        let (meta, body) = self.load(repo, &resolved).await?;
        Ok(StoredManifest {
            digest: resolved.digest,
            media_type: meta.media_type.to_string(),
            body,
        })
    }

    /// Tags of a repository, sorted, after `last`, at most `n`; `NAME_UNKNOWN` for an unknown
    /// repository.
    pub async fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Vec<String>> {
        if self.is_shared() {
            // Another replica may have tagged or untagged: listed from storage.
            return match self.listed_tags(repo).await? {
                Some(names) => Ok(page(&names, last, n)),
                None => Err(name_unknown(repo)),
            };
        }
        self.inner
            .index
            .read(repo.as_str(), |r| tag_page(r, last, n))
            .ok_or_else(|| name_unknown(repo))
    }

    /// Repository names, sorted, after `last`, at most `n`.
    pub async fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Vec<String>> {
        if self.is_shared() {
            return Ok(page(&self.listed_catalog().await?, last, n));
        }
        Ok(self.inner.index.catalog(last, n))
    }

    /// Manifests in `repo` whose subject is `subject`, optionally only those with the given
    /// artifact type, as descriptors (mediaType, digest, size, artifactType, annotations),
    /// sorted by digest. An unknown repository or subject gives an empty list (the spec asks
    /// for an empty index, never 404).
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        if self.is_shared() {
            self.refresh_referrers(repo.as_str(), subject).await?;
        }
        let entries: Vec<Resolved> = self
            .inner
            .index
            .read(repo.as_str(), |r| {
                r.referrers.get(subject).map(|set| {
                    set.iter()
                        .map(|d| Resolved {
                            digest: d.clone(),
                            meta: r.manifests.get(d).cloned().flatten(),
                            loc: r.loc(d),
                        })
                        .collect()
                })
            })
            .flatten()
            .unwrap_or_default();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let meta = match &entry.meta {
                Some(meta) => Arc::clone(meta),
                None => match self.load(repo, &entry).await {
                    Ok((meta, _)) => meta,
                    // Deleted since we looked: skip it.
                    Err(StoreError::ManifestUnknown { .. }) => continue,
                    Err(e) => return Err(e),
                },
            };
            if artifact_type.is_some_and(|want| meta.artifact_type.as_deref() != Some(want)) {
                continue;
            }
            let mut descriptor =
                Descriptor::new(meta.media_type.to_string(), entry.digest, meta.size);
            descriptor.artifact_type = meta.artifact_type.as_deref().map(str::to_owned);
            if !meta.annotations.is_empty() {
                descriptor.annotations = Some(meta.annotations.to_map());
            }
            out.push(descriptor);
        }
        Ok(out)
    }

    /// Finds the digest a reference names in `repo`, with what the index knows about it (over
    /// shared storage, after revalidating the tag and looking up a revision the index lacks).
    async fn resolve(&self, repo: &RepoName, reference: &Reference) -> Result<Resolved> {
        if self.is_shared() {
            self.refresh_reference(repo, reference).await?;
        }
        let found = self.inner.index.read(repo.as_str(), |r| {
            let digest = match reference {
                Reference::Tag(t) => r.tags.get(t.as_str())?.clone(),
                Reference::Digest(d) => d.clone(),
            };
            let meta = r.manifests.get(&digest)?.clone();
            let loc = r.loc(&digest);
            Some(Resolved { digest, meta, loc })
        });
        match found {
            None if self.is_shared() && self.repo_exists(repo).await? => {
                Err(manifest_unknown(reference))
            }
            None => Err(name_unknown(repo)),
            Some(None) => Err(manifest_unknown(reference)),
            Some(Some(resolved)) => Ok(resolved),
        }
    }

    /// Metadata and bytes of a resolved manifest, from the cache or storage (verified), and
    /// fills the index's metadata when it was not known yet.
    async fn load(
        &self,
        repo: &RepoName,
        resolved: &Resolved,
    ) -> Result<(Arc<ManifestMeta>, Bytes)> {
        let digest = &resolved.digest;
        let cached = self.inner.cache.get(digest);
        if let (Some(meta), Some(body)) = (&resolved.meta, &cached) {
            return Ok((Arc::clone(meta), body.clone()));
        }
        let name = repo.as_str();
        let driver = self.inner.driver.as_ref();
        let body = match cached {
            Some(body) => body,
            None => {
                let key = paths::data(name, digest, resolved.loc);
                let body = match driver.get_content(&key).await {
                    Ok(body) => body,
                    Err(e) if e.is_not_found() => {
                        tracing::warn!(repo = name, %digest, "manifest revision without bytes");
                        return Err(manifest_unknown(digest));
                    }
                    Err(e) => return Err(e),
                };
                if Digest::compute(digest.algorithm(), &body) != *digest {
                    return Err(StoreError::Internal(format!(
                        "stored bytes of manifest {digest} in {name} are corrupt"
                    )));
                }
                self.inner.cache.insert(digest, &body);
                body
            }
        };
        if let Some(meta) = &resolved.meta {
            return Ok((Arc::clone(meta), body));
        }
        let recorded = match driver
            .get_content(&paths::revision_link(name, digest))
            .await
        {
            Ok(content) => paths::parse_revision_content(&content).map(|(_, mt)| mt),
            Err(e) if e.is_not_found() => return Err(manifest_unknown(digest)),
            Err(e) => return Err(e),
        }
        .filter(|mt| !mt.is_empty());
        let parsed = parse_manifest(&body, recorded.as_deref()).map_err(|e| {
            StoreError::Internal(format!(
                "stored manifest {digest} in {name} no longer parses: {e}"
            ))
        })?;
        let mut meta = meta_of(&parsed, body.len() as u64);
        if let Some(mt) = recorded {
            meta.media_type = media_type(&mt);
        }
        let meta = Arc::new(meta);
        self.inner.index.write(name, |r| {
            if let Some(slot) = r.manifests.get_mut(digest) {
                *slot = Some(Arc::clone(&meta));
            }
        });
        Ok((meta, body))
    }
}
