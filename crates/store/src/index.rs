//! The in-memory repository index: repositories → tags, manifest revisions, blob links,
//! referrers. Built from storage at open ([`crate::rebuild`]) and updated after every durable
//! write. Over storage this process alone writes, it is the truth: tag listings, the catalog
//! and link checks never touch storage. Over storage replicas share ([`crate::Driver::shared`])
//! it is a cache that [`replica`] fills on misses and revalidates.
//!
//! One `parking_lot::RwLock` guards everything; it is only taken for short, synchronous
//! sections and never across an `.await`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use ocireg_oci::{media_types, Digest};
use parking_lot::RwLock;

use crate::paths::DataLoc;

mod replica;
mod tags;

pub(crate) use replica::{page, ReplicaCache};
pub(crate) use tags::Tags;

/// A media type as the index keeps it. The index holds one or two per stored manifest and
/// nearly all of them are a few well-known values, which are kept as static strings; any other
/// is copied once at its exact size.
pub(crate) type MediaType = Cow<'static, str>;

/// Media types manifests and artifacts commonly carry (manifest kinds and config types).
const WELL_KNOWN: [&str; 7] = [
    media_types::OCI_MANIFEST,
    media_types::OCI_INDEX,
    media_types::OCI_CONFIG,
    media_types::OCI_EMPTY,
    media_types::DOCKER_MANIFEST,
    media_types::DOCKER_MANIFEST_LIST,
    media_types::DOCKER_CONFIG,
];

/// `text` as the index keeps a media type.
pub(crate) fn media_type(text: &str) -> MediaType {
    match WELL_KNOWN.iter().find(|known| **known == text) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(text.to_owned()),
    }
}

/// What the index knows about a stored manifest, derived from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestMeta {
    /// Media type recorded at put.
    pub media_type: MediaType,
    /// Size of the manifest bytes.
    pub size: u64,
    /// The artifact type a referrers listing shows (`artifactType`, else config media type).
    pub artifact_type: Option<MediaType>,
    /// Top-level annotations.
    pub annotations: Annotations,
    /// The subject digest, if any (boxed: few manifests have one, and every manifest's
    /// metadata would otherwise carry room for it).
    pub subject: Option<Box<Digest>>,
}

/// A manifest's annotations as the index keeps them: one exact-size allocation holding, for
/// each pair in key order, the key's and the value's length (`u32`, little endian) followed by
/// the key's and the value's bytes. The index holds one per stored manifest and manifests
/// carry few annotations, so a map (or a string allocation per key and value) would cost many
/// times the text's size per manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Annotations(Box<[u8]>);

impl Annotations {
    /// The pairs, in key order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (k, v, tail) = split_pair(rest)?;
            rest = tail;
            Some((k, v))
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The annotations as a map (for responses).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.pairs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// The first pair encoded in `bytes` and what follows it; `None` at the end.
fn split_pair(bytes: &[u8]) -> Option<(&str, &str, &[u8])> {
    let len_at = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let (klen, vlen) = (len_at(0)?, len_at(4)?);
    let body = bytes.get(8..)?;
    let key = std::str::from_utf8(body.get(..klen)?).ok()?;
    let value = std::str::from_utf8(body.get(klen..klen + vlen)?).ok()?;
    Some((key, value, body.get(klen + vlen..)?))
}

impl From<&BTreeMap<String, String>> for Annotations {
    /// A map iterates in key order, so the pairs come out sorted. A key or value longer than
    /// 4 GiB (which no manifest within the body limit can carry) is left out.
    fn from(map: &BTreeMap<String, String>) -> Annotations {
        let mut bytes = Vec::new();
        for (k, v) in map {
            let (Ok(klen), Ok(vlen)) = (u32::try_from(k.len()), u32::try_from(v.len())) else {
                continue;
            };
            bytes.extend_from_slice(&klen.to_le_bytes());
            bytes.extend_from_slice(&vlen.to_le_bytes());
            bytes.extend_from_slice(k.as_bytes());
            bytes.extend_from_slice(v.as_bytes());
        }
        Annotations(bytes.into_boxed_slice())
    }
}

/// One repository's entries.
#[derive(Debug, Default, Clone)]
pub(crate) struct Repo {
    pub tags: Tags,
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
                    tags: r.tags.to_map(),
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
    repo.tags
        .after(last)
        .take(n.unwrap_or(usize::MAX))
        .map(|(t, _)| t.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_keep_every_pair() {
        let map: BTreeMap<String, String> = [("b", "2"), ("a", ""), ("", "empty key"), ("ü", "ß")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let ann = Annotations::from(&map);
        assert_eq!(ann.to_map(), map);
        assert_eq!(ann.get("b"), Some("2"));
        assert_eq!(ann.get("a"), Some(""));
        assert_eq!(ann.get(""), Some("empty key"));
        assert_eq!(ann.get("ü"), Some("ß"));
        assert_eq!(ann.get("c"), None);
        assert!(!ann.is_empty());
        let none = Annotations::from(&BTreeMap::new());
        assert!(none.is_empty());
        assert_eq!(none.get("a"), None);
        assert!(none.to_map().is_empty());
    }

    #[test]
    fn per_manifest_entries_stay_small() {
        // The index holds one of each per stored manifest: a digest with no heap part, and
        // metadata whose rare or variable parts (subject, annotations, uncommon media types)
        // live behind a pointer.
        assert!(std::mem::size_of::<Digest>() <= 40);
        assert!(std::mem::size_of::<ManifestMeta>() <= 80);
        assert!(std::mem::size_of::<Option<Arc<ManifestMeta>>>() <= 8);
    }

    #[test]
    fn media_types_known_and_not() {
        assert!(matches!(
            media_type(media_types::OCI_MANIFEST),
            Cow::Borrowed(_)
        ));
        let other = media_type("application/vnd.example+json");
        assert!(matches!(other, Cow::Owned(_)));
        assert_eq!(other, "application/vnd.example+json");
    }
}
