//! Search over the index: manifests matched by repository name, tag, annotation and artifact
//! type, paginated in a stable order (repository name, then digest).
//!
//! One hit per manifest revision (tagged or not, referrers included) with every tag that points
//! at it. Filters combine with AND. The index fills a manifest's metadata lazily; search loads
//! what is missing from the stored bytes (a few at a time) and records it in the index, so a
//! repeated search never touches storage again.

use std::collections::BTreeMap;
use std::sync::Arc;

use ocireg_oci::{parse_manifest, Digest};

use crate::error::Result;
use crate::index::ManifestMeta;
use crate::manifests::meta_of;
use crate::paths::{self, DataLoc};
use crate::store::Store;

/// Metadata loads run concurrently, this many at a time.
const LOAD_CONCURRENCY: usize = 8;
/// Candidates examined per round (metadata of a round is loaded together).
const ROUND: usize = 64;

/// What to look for. Empty / `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Case-insensitive substring of the repository name.
    pub name: Option<String>,
    /// A tag of the manifest: exact, or a prefix when the value ends with `*`.
    pub tag: Option<String>,
    /// Annotations the manifest must carry: `(key, None)` = has the key, `(key, Some(v))` = the
    /// key with exactly this value. All must match.
    pub annotations: Vec<(String, Option<String>)>,
    /// The artifact type (the manifest's `artifactType`, else its config media type), exactly.
    pub artifact_type: Option<String>,
    /// At most this many hits.
    pub n: usize,
    /// Only hits after this cursor (`repository@digest`, or a bare repository name = from the
    /// start of that repository), as returned in [`SearchPage::next`].
    pub last: Option<String>,
}

/// One manifest that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Repository.
    pub repository: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Every tag pointing at it, sorted (empty for an untagged manifest).
    pub tags: Vec<String>,
    /// Media type recorded at put.
    pub media_type: String,
    /// `artifactType`, else the config media type.
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: BTreeMap<String, String>,
    /// Size of the manifest bytes.
    pub size: u64,
}

impl SearchHit {
    /// This hit's position as a pagination cursor: `repository@digest`.
    pub fn cursor(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// One page of hits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    /// The hits, ordered by repository then digest.
    pub hits: Vec<SearchHit>,
    /// The cursor of the last hit when more hits follow (pass it as `last`).
    pub next: Option<String>,
}

impl SearchQuery {
    fn matches_name(&self, lower_name: &Option<String>, repo: &str) -> bool {
        match lower_name {
            None => true,
            Some(q) if repo.is_ascii() => repo.to_ascii_lowercase().contains(q.as_str()),
            Some(q) => repo.to_lowercase().contains(q.as_str()),
        }
    }

    fn matches_tags(&self, tags: &[String]) -> bool {
        match self.tag.as_deref() {
            None | Some("") => true,
            Some(want) => match want.strip_suffix('*') {
                Some(prefix) => tags.iter().any(|t| t.starts_with(prefix)),
                None => tags.iter().any(|t| t == want),
            },
        }
    }

    fn matches_meta(&self, meta: &ManifestMeta) -> bool {
        if let Some(want) = self.artifact_type.as_deref().filter(|w| !w.is_empty()) {
            if meta.artifact_type.as_deref() != Some(want) {
                return false;
            }
        }
        self.annotations
            .iter()
            .all(|(key, value)| match (meta.annotations.get(key), value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(have), Some(want)) => have == want.as_str(),
            })
    }
}

/// A manifest of one repository not yet filtered by metadata.
struct Candidate {
    digest: Digest,
    key: String,
    tags: Vec<String>,
    meta: Option<Arc<ManifestMeta>>,
    loc: DataLoc,
}

impl Store {
    /// Manifests matching `q` in the repositories `can_read` admits, one page in stable order.
    pub async fn search(
        &self,
        q: &SearchQuery,
        can_read: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<SearchPage> {
        let mut page = SearchPage::default();
        if q.n == 0 {
            return Ok(page);
        }
        let (last_repo, last_digest) = match q.last.as_deref().filter(|l| !l.is_empty()) {
            None => (None, ""),
            Some(l) => match l.split_once('@') {
                Some((repo, digest)) => (Some(repo), digest),
                None => (Some(l), ""),
            },
        };
        let lower_name = q
            .name
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
        let names: Vec<String> = self.inner.index.read_all(|repos| {
            repos
                .keys()
                .filter(|name| last_repo.is_none_or(|l| name.as_str() >= l))
                .filter(|name| q.matches_name(&lower_name, name))
                .cloned()
                .collect()
        });
        for name in names {
            if !can_read(&name) {
                continue;
            }
            let after = match last_repo {
                Some(l) if l == name => last_digest,
                _ => "",
            };
            let candidates = self.candidates(&name, after, q);
            for round in candidates.chunks(ROUND) {
                let metas = self.fill_metas(&name, round).await?;
                for (c, meta) in round.iter().zip(metas) {
                    let Some(meta) = meta else { continue };
                    if !q.matches_meta(&meta) {
                        continue;
                    }
                    if page.hits.len() == q.n {
                        page.next = page.hits.last().map(SearchHit::cursor);
                        return Ok(page);
                    }
                    page.hits.push(SearchHit {
                        repository: name.clone(),
                        digest: c.digest.clone(),
                        tags: c.tags.clone(),
                        media_type: meta.media_type.to_string(),
                        artifact_type: meta.artifact_type.as_deref().map(str::to_owned),
                        annotations: meta.annotations.to_map(),
                        size: meta.size,
                    });
                }
            }
        }
        Ok(page)
    }

    /// The repository's manifests after digest `after` that pass the tag filter, by digest.
    fn candidates(&self, name: &str, after: &str, q: &SearchQuery) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = self
            .inner
            .index
            .read(name, |r| {
                let mut tags_of: BTreeMap<&Digest, Vec<String>> = BTreeMap::new();
                for (tag, digest) in &r.tags {
                    tags_of.entry(digest).or_default().push(tag.to_owned());
                }
                r.manifests
                    .iter()
                    .filter_map(|(digest, meta)| {
                        let key = digest.to_string();
                        if key.as_str() <= after {
                            return None;
                        }
                        let tags = tags_of.remove(digest).unwrap_or_default();
                        if !q.matches_tags(&tags) {
                            return None;
                        }
                        Some(Candidate {
                            digest: digest.clone(),
                            key,
                            tags,
                            meta: meta.clone(),
                            loc: r.loc(digest),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The metadata of each candidate, loading the missing ones; `None` for a manifest deleted
    /// meanwhile or whose stored bytes are unusable (logged, skipped).
    async fn fill_metas(
        &self,
        name: &str,
        round: &[Candidate],
    ) -> Result<Vec<Option<Arc<ManifestMeta>>>> {
        let mut out = Vec::with_capacity(round.len());
        for group in round.chunks(LOAD_CONCURRENCY) {
            let mut loads = Vec::with_capacity(group.len());
            for c in group {
                loads.push(self.meta_or_load(name, c));
            }
            for loaded in futures_util::future::join_all(loads).await {
                out.push(loaded?);
            }
        }
        Ok(out)
    }

    async fn meta_or_load(&self, name: &str, c: &Candidate) -> Result<Option<Arc<ManifestMeta>>> {
        match &c.meta {
            Some(meta) => Ok(Some(Arc::clone(meta))),
            None => self.load_meta(name, &c.digest, c.loc).await,
        }
    }

    /// Derives a manifest's metadata from its stored bytes and records it in the index.
    async fn load_meta(
        &self,
        name: &str,
        digest: &Digest,
        loc: DataLoc,
    ) -> Result<Option<Arc<ManifestMeta>>> {
        let driver = self.inner.driver.as_ref();
        let body = match self.inner.cache.get(digest) {
            Some(body) => body,
            None => match driver.get_content(&paths::data(name, digest, loc)).await {
                Ok(body) => body,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        if Digest::compute(digest.algorithm(), &body) != *digest {
            tracing::warn!(repo = name, %digest, "search: stored manifest bytes are corrupt");
            return Ok(None);
        }
        let recorded = match driver
            .get_content(&paths::revision_link(name, digest))
            .await
        {
            Ok(content) => paths::parse_revision_content(&content).map(|(_, mt)| mt),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        }
        .filter(|mt| !mt.is_empty());
        let parsed = match parse_manifest(&body, recorded.as_deref()) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(repo = name, %digest, error = %e, "search: stored manifest does not parse");
                return Ok(None);
            }
        };
        let mut meta = meta_of(&parsed, body.len() as u64);
        if let Some(mt) = recorded {
            meta.media_type = crate::index::media_type(&mt);
        }
        let meta = Arc::new(meta);
        // Only fills a revision that still exists and has no metadata yet.
        self.inner.index.write(name, |r| {
            if let Some(slot @ None) = r.manifests.get_mut(digest) {
                *slot = Some(Arc::clone(&meta));
            }
        });
        Ok(Some(meta))
    }
}
