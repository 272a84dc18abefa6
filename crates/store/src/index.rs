//! The in-memory repository index: repositories → tags, manifest revisions, blob links,
//! referrers. Built from storage at open ([`crate::rebuild`]) and updated after every durable
//! write, so tag listings, the catalog and link checks never touch storage.
//!
//! One `parking_lot::RwLock` guards everything; it is only taken for short, synchronous
//! sections and never across an `.await`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use ocireg_oci::Digest;
use parking_lot::RwLock;

use crate::paths::DataLoc;

/// What the index knows about a stored manifest, derived from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestMeta {
    /// Media type recorded at put.
    pub media_type: String,
    /// Size of the manifest bytes.
    pub size: u64,
    /// The artifact type a referrers listing shows (`artifactType`, else config media type).
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: Annotations,
    /// The subject digest, if any.
    pub subject: Option<Digest>,
}

/// A manifest's annotations as the index keeps them: one exact-size allocation of key/value
/// pairs sorted by key. The index holds one per stored manifest and manifests carry few
/// annotations, so a `BTreeMap` (whose every node has room for eleven pairs) would cost many
/// times the strings' size per manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Annotations(Box<[(Box<str>, Box<str>)]>);

impl Annotations {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v.as_ref())
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The annotations as a map (for responses).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect()
    }
}

impl From<&BTreeMap<String, String>> for Annotations {
    /// A map iterates in key order, so the pairs come out sorted.
    fn from(map: &BTreeMap<String, String>) -> Annotations {
        Annotations(
            map.iter()
                .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str())))
                .collect(),
        )
    }
}

/// One repository's entries.
#[derive(Debug, Default, Clone)]
pub(crate) struct Repo {
    pub tags: BTreeMap<String, Digest>,
    /// Revisions; the metadata is filled lazily (on put, or on first read after open).
    pub manifests: HashMap<Digest, Option<Arc<ManifestMeta>>>,
    /// Blob links, with the data size once known.
    pub blobs: HashMap<Digest, Option<u64>>,
    /// Digests whose bytes this repository holds itself (`_blobs/`).
    pub local: HashSet<Digest>,
    /// Subject → referring manifests.
    pub referrers: HashMap<Digest, BTreeSet<Digest>>,
}

impl Repo {
    /// True when nothing would make the repository visible.
    fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.manifests.is_empty()
            && self.blobs.is_empty()
            && self.referrers.is_empty()
    }

    /// Where this repository reads `digest`'s bytes from.
    pub fn loc(&self, digest: &Digest) -> DataLoc {
        if self.local.contains(digest) {
            DataLoc::Local
        } else {
            DataLoc::Shared
        }
    }
}

/// A read-only copy of one repository's index entries (for tests, GC and diagnostics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoSnapshot {
    /// Tag → manifest digest.
    pub tags: BTreeMap<String, Digest>,
    /// Manifest revisions.
    pub manifests: BTreeSet<Digest>,
    /// Linked blobs.
    pub blobs: BTreeSet<Digest>,
    /// Digests whose bytes the repository holds itself (dedupe off).
    pub local_data: BTreeSet<Digest>,
    /// Subject → referring manifests.
    pub referrers: BTreeMap<Digest, BTreeSet<Digest>>,
}

/// All repositories, sorted by name.
#[derive(Debug, Default)]
pub(crate) struct Index {
    repos: RwLock<BTreeMap<String, Repo>>,
}

impl Index {
    /// An index over the given repositories (empty ones are dropped).
    pub fn from_repos(mut repos: BTreeMap<String, Repo>) -> Index {
        repos.retain(|_, r| !r.is_empty());
        Index {
            repos: RwLock::new(repos),
        }
    }

    /// Runs `f` on the repository, if it exists.
    pub fn read<T>(&self, repo: &str, f: impl FnOnce(&Repo) -> T) -> Option<T> {
        self.repos.read().get(repo).map(f)
    }

    /// Runs `f` on the repository or on `None` when it does not exist.
    pub fn read_opt<T>(&self, repo: &str, f: impl FnOnce(Option<&Repo>) -> T) -> T {
        f(self.repos.read().get(repo))
    }

    /// Runs `f` on the repository, creating it if needed; drops it again if left empty.
    pub fn write<T>(&self, repo: &str, f: impl FnOnce(&mut Repo) -> T) -> T {
        let mut repos = self.repos.write();
        let entry = repos.entry(repo.to_owned()).or_default();
        let out = f(entry);
        if entry.is_empty() {
            repos.remove(repo);
        }
        out
    }

    /// Runs `f` over all repositories (read-only).
    pub fn read_all<T>(&self, f: impl FnOnce(&BTreeMap<String, Repo>) -> T) -> T {
        f(&self.repos.read())
    }

    /// Repository names after `last`, at most `n`.
    pub fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Vec<String> {
        let repos = self.repos.read();
        let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
        repos
            .range::<str, _>((lower, Bound::Unbounded))
            .take(n.unwrap_or(usize::MAX))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A copy of every repository's entries.
    pub fn snapshot(&self) -> BTreeMap<String, RepoSnapshot> {
        self.repos
            .read()
            .iter()
            .map(|(name, r)| {
                let snap = RepoSnapshot {
                    tags: r.tags.clone(),
                    manifests: r.manifests.keys().cloned().collect(),
                    blobs: r.blobs.keys().cloned().collect(),
                    local_data: r.local.iter().cloned().collect(),
                    referrers: r
                        .referrers
                        .iter()
                        .map(|(s, set)| (s.clone(), set.clone()))
                        .collect(),
                };
                (name.clone(), snap)
            })
            .collect()
    }
}

/// Tags of `repo` after `last`, at most `n`.
pub(crate) fn tag_page(repo: &Repo, last: Option<&str>, n: Option<usize>) -> Vec<String> {
    let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
    repo.tags
        .range::<str, _>((lower, Bound::Unbounded))
        .take(n.unwrap_or(usize::MAX))
        .map(|(t, _)| t.clone())
        .collect()
}
