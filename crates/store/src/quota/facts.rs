//! What usage accounting needs beyond the index: the physical size of every stored data
//! object (shared and per-repository copies) and the children of image indexes.
//!
//! Content-addressed facts never change for a digest, so the table only grows with writes
//! and shrinks when scrub quarantines an object. It is filled once at open (one walk of
//! `blobs/`, a stat per per-repository copy, one read per manifest) and then kept up to date
//! by every write path, so [`crate::Store::usage`] never touches storage.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use ocireg_oci::Digest;

use crate::driver::Driver;
use crate::error::Result;
use crate::index::Repo;
use crate::paths::{self, DataLoc};

/// How many objects are stat'ed or read concurrently at open.
const SCAN_PARALLELISM: usize = 32;

/// Physical sizes and index children, by digest.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Size of `blobs/…/<digest>` when it exists.
    shared: HashMap<Digest, u64>,
    /// Size of `repositories/<repo>/_blobs/…/<digest>` when it exists, by repository.
    local: HashMap<String, HashMap<Digest, u64>>,
    /// Child manifests of image indexes (only manifests with children are recorded).
    children: HashMap<Digest, Box<[Digest]>>,
}

impl Facts {
    /// Records that `digest`'s bytes of `size` are stored at `loc` for `repo`.
    pub(crate) fn record(&mut self, repo: &str, digest: &Digest, loc: DataLoc, size: u64) {
        match loc {
            DataLoc::Shared => {
                self.shared.insert(digest.clone(), size);
            }
            DataLoc::Local => {
                self.local
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(digest.clone(), size);
            }
        }
    }

    /// Forgets the data object of `digest` at `loc` (it was moved away or deleted).
    pub(crate) fn forget(&mut self, repo: &str, digest: &Digest, loc: DataLoc) {
        match loc {
            DataLoc::Shared => {
                self.shared.remove(digest);
            }
            DataLoc::Local => {
                if let Some(map) = self.local.get_mut(repo) {
                    map.remove(digest);
                    if map.is_empty() {
                        self.local.remove(repo);
                    }
                }
            }
        }
    }

    /// Records an image index's child manifests.
    pub(crate) fn record_children(&mut self, digest: &Digest, children: Vec<Digest>) {
        if !children.is_empty() {
            self.children
                .insert(digest.clone(), children.into_boxed_slice());
        }
    }

    /// Size of the data object of `digest` at `loc` for `repo`, if it is stored.
    pub(crate) fn physical(&self, repo: &str, digest: &Digest, loc: DataLoc) -> Option<u64> {
        match loc {
            DataLoc::Shared => self.shared.get(digest).copied(),
            DataLoc::Local => self.local.get(repo)?.get(digest).copied(),
        }
    }

    /// Child manifests of `digest` (empty unless it is an image index).
    pub(crate) fn children(&self, digest: &Digest) -> &[Digest] {
        self.children.get(digest).map_or(&[], |c| c)
    }
}

/// The child manifest digests of a manifest body (`manifests[].digest`); empty for anything
/// that is not an image index or does not parse.
pub(crate) fn children_of(body: &[u8]) -> Vec<Digest> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    value
        .get("manifests")
        .and_then(|m| m.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|d| d.get("digest")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the facts for the repositories just rebuilt from storage.
pub(crate) async fn scan(
    driver: &Arc<dyn Driver>,
    repos: &BTreeMap<String, Repo>,
) -> Result<Facts> {
    let mut facts = Facts::default();
    for object in driver.walk(paths::BLOBS).await? {
        if let Some(digest) = paths::parse_shared_data(&object.key) {
            facts.shared.insert(digest, object.size);
        }
    }

    let locals: Vec<(String, Digest)> = repos
        .iter()
        .flat_map(|(name, r)| r.local.iter().map(move |d| (name.clone(), d.clone())))
        .collect();
    let sizes = fetch_present(locals, |(repo, digest)| async move {
        let meta = driver.stat(&paths::local_data(&repo, &digest)).await?;
        Ok((repo, digest, meta.size))
    })
    .await?;
    for (repo, digest, size) in sizes {
        facts.record(&repo, &digest, DataLoc::Local, size);
    }

    // One read per distinct manifest digest, from wherever a repository reads it.
    let mut seen = HashSet::new();
    let mut manifests = Vec::new();
    for (name, r) in repos {
        for digest in r.manifests.keys() {
            if seen.insert(digest.clone()) {
                manifests.push((digest.clone(), paths::data(name, digest, r.loc(digest))));
            }
        }
    }
    let found = fetch_present(manifests, |(digest, key)| async move {
        let body = driver.get_content(&key).await?;
        Ok((digest, children_of(&body)))
    })
    .await?;
    for (digest, children) in found {
        facts.record_children(&digest, children);
    }
    Ok(facts)
}

/// Runs `fetch` over `items`, [`SCAN_PARALLELISM`] at a time, in any order; an item whose
/// object is not found (removed since it was listed) is left out.
async fn fetch_present<I, T, F, Fut>(items: Vec<I>, fetch: F) -> Result<Vec<T>>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let found: Vec<Option<T>> = stream::iter(items)
        .map(|item| {
            let fetched = fetch(item);
            async move {
                match fetched.await {
                    Ok(t) => Ok(Some(t)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(SCAN_PARALLELISM)
        .collect::<Vec<Result<_>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    Ok(found.into_iter().flatten().collect())
}
