//! Replicas on one storage ([`crate::Driver::shared`]): the index becomes a cache.
//!
//! Other processes write the same storage, so what this process holds in memory is not the
//! truth. Content-addressed facts (a manifest revision, a blob link, where a digest's bytes
//! are) never change once written: on an index miss they are looked up in storage and kept.
//! Tags move, so a tag is revalidated against storage on every read (a conditional read of
//! one small object against the version last seen) and written with a compare-and-swap.
//! Tag lists, the catalog and referrers come from storage listings.
//!
//! Nothing here runs for an unshared driver: there the index stays the truth and is never
//! checked against storage.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use ocireg_oci::{Digest, Reference, RepoName};
use parking_lot::Mutex;

use crate::driver::{Precondition, Version};
use crate::error::{Result, StoreError};
use crate::paths::{self, RepoKey};
use crate::store::Store;

/// How long a tag list or the catalog listed from storage is reused. Pages are cut by name
/// (after `last`), so any listing gives correct pages; the reuse is for cost: a listing is one
/// request per thousand keys on an object store (the catalog one per directory level), and a
/// client walking a long list page by page would otherwise list it again for every page. The
/// second bounds how late a push through another replica shows in lists (reads by tag and
/// digest see it at once); this replica's own tag writes drop the affected listings at once.
pub(crate) const LISTING_TTL: Duration = Duration::from_secs(1);

/// How often a tag write retries its compare-and-swap after another writer got in between.
/// Each round at least one of the racing writers succeeds, so this bounds the number of
/// concurrent writers of one tag that are served without an error.
const TAG_WRITE_ATTEMPTS: u32 = 64;

/// How long the client is asked to wait when a tag write kept losing its races.
const TAG_CONTENDED_RETRY: Duration = Duration::from_secs(1);

/// How many directories (catalog) or tag files (delete by digest) are read concurrently.
const LIST_PARALLELISM: usize = 16;

/// Subdirectories whose presence makes a directory under `repositories/` a repository (the
/// same content that keeps a repository in the index: tags, revisions, blob links, referrers).
const REPO_MARKERS: [&str; 3] = ["_layers", "_manifests", "_referrers"];

/// A listing and when it was read.
#[derive(Debug)]
struct Listing {
    at: Instant,
    names: Arc<Vec<String>>,
}

impl Listing {
    fn fresh(&self) -> bool {
        self.at.elapsed() < LISTING_TTL
    }
}

/// What a replica remembers of shared storage beyond the index.
#[derive(Debug, Default)]
pub(crate) struct ReplicaCache {
    /// Tag key → the digest and object version last read or written, kept together under one
    /// lock so a revalidation never pairs a version with another version's digest.
    tags: Mutex<HashMap<String, (Digest, Version)>>,
    /// Repository → its tag list.
    tag_lists: Mutex<HashMap<String, Listing>>,
    /// The repository names.
    catalog: Mutex<Option<Listing>>,
    /// When a look at the garbage collection lease last found no run (see
    /// `gc_shared::gc_may_be_running`).
    pub(crate) no_gc_seen: Mutex<Option<Instant>>,
}

impl ReplicaCache {
    fn known_tag(&self, key: &str) -> Option<(Digest, Version)> {
        self.tags.lock().get(key).cloned()
    }

    fn remember_tag(&self, key: &str, digest: &Digest, version: Version) {
        self.tags
            .lock()
            .insert(key.to_owned(), (digest.clone(), version));
    }

    fn forget_tag(&self, key: &str) {
        self.tags.lock().remove(key);
    }

    /// Drops the listings a tag write or delete in `repo` changes.
    pub(crate) fn invalidate(&self, repo: &str) {
        self.tag_lists.lock().remove(repo);
        *self.catalog.lock() = None;
    }

    fn cached_tags(&self, repo: &str) -> Option<Arc<Vec<String>>> {
        let lists = self.tag_lists.lock();
        lists
            .get(repo)
            .filter(|l| l.fresh())
            .map(|l| Arc::clone(&l.names))
    }

    fn store_tags(&self, repo: &str, names: Arc<Vec<String>>) {
        let mut lists = self.tag_lists.lock();
        // Expired listings go first, so the map holds only what was listed in the last TTL.
        lists.retain(|_, l| l.fresh());
        let at = Instant::now();
        lists.insert(repo.to_owned(), Listing { at, names });
    }

    fn cached_catalog(&self) -> Option<Arc<Vec<String>>> {
        let catalog = self.catalog.lock();
        catalog
            .as_ref()
            .filter(|l| l.fresh())
            .map(|l| Arc::clone(&l.names))
    }

    fn store_catalog(&self, names: Arc<Vec<String>>) {
        let at = Instant::now();
        *self.catalog.lock() = Some(Listing { at, names });
    }
}

/// The names of a sorted listing after `last`, at most `n`.
pub(crate) fn page(names: &[String], last: Option<&str>, n: Option<usize>) -> Vec<String> {
    let start = last.map_or(0, |l| names.partition_point(|name| name.as_str() <= l));
    names
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take(n.unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

/// The last component of a key.
fn leaf(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

impl Store {
    /// Whether other processes write the same storage (the index is then a cache).
    pub(crate) fn is_shared(&self) -> bool {
        self.inner.driver.shared()
    }

    /// The digest `tag` names in storage now (`None`: no such tag), recorded in the index.
    /// A conditional read against the version last seen: unchanged tags cost no body.
    pub(crate) async fn revalidate_tag(&self, name: &str, tag: &str) -> Result<Option<Digest>> {
        let key = paths::tag_link(name, tag);
        let cache = &self.inner.replica;
        let driver = self.inner.driver.as_ref();
        let read = match cache.known_tag(&key) {
            Some((digest, version)) => match driver.get_if_changed(&key, &version).await {
                Ok(None) => Ok(Some((digest, version))),
                Ok(Some((content, version))) => {
                    parse_tag(&key, &content).map(|d| Some((d, version)))
                }
                Err(e) => Err(e),
            },
            None => match driver.get_versioned(&key).await {
                Ok((content, version)) => parse_tag(&key, &content).map(|d| Some((d, version))),
                Err(e) => Err(e),
            },
        };
        let current = match read {
            Ok(current) => current,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        match current {
            Some((digest, version)) => {
                cache.remember_tag(&key, &digest, version);
                self.inner.index.write(name, |r| {
                    if r.tags.get(tag) != Some(&digest) {
                        r.tags.insert(tag, digest.clone());
                    }
                });
                Ok(Some(digest))
            }
            None => {
                cache.forget_tag(&key);
                self.inner.index.write(name, |r| {
                    r.tags.remove(tag);
                });
                Ok(None)
            }
        }
    }

    /// Over shared storage: brings the index up to date for `reference` (a tag revalidated,
    /// a revision the index lacks looked up).
    pub(crate) async fn refresh_reference(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<()> {
        let name = repo.as_str();
        let digest = match reference {
            Reference::Tag(t) => match self.revalidate_tag(name, t.as_str()).await? {
                Some(d) => d,
                None => return Ok(()),
            },
            Reference::Digest(d) => d.clone(),
        };
        let known = self
            .inner
            .index
            .read(name, |r| r.manifests.contains_key(&digest))
            .unwrap_or(false);
        if !known {
            self.find_revision(name, &digest).await?;
        } else if matches!(reference, Reference::Digest(_))
            && !self.exists(&paths::revision_link(name, &digest)).await?
        {
            // Deleted through another replica: the bytes never change, but whether the
            // repository still has them does (a tag read above already answered that).
            self.inner.index.write(name, |r| {
                r.manifests.remove(&digest);
            });
        }
        Ok(())
    }

    /// Points `tag` at `digest` in storage with a compare-and-swap: created if absent, else
    /// replaced at the version just read, again from a fresh read whenever another writer got
    /// in between, so every write replaces one whole, current value and none is torn. Nothing
    /// is written when the tag already names the digest. The caller holds the tag's lock and
    /// records the tag in the index.
    pub(crate) async fn write_tag(&self, name: &str, tag: &str, digest: &Digest) -> Result<()> {
        let key = paths::tag_link(name, tag);
        let content = Bytes::from(digest.to_string());
        let driver = self.inner.driver.as_ref();
        // First without a read: create the tag when this replica knows none, swap against the
        // version it last saw otherwise. Either is a compare-and-swap, so a wrong guess only
        // costs its refusal, and the rounds below read what is there.
        let guess = match self.inner.replica.known_tag(&key) {
            Some((_, version)) => Precondition::Matches(version),
            None => Precondition::Absent,
        };
        match driver.put_if(&key, content.clone(), guess).await {
            Ok(version) => {
                self.inner.replica.remember_tag(&key, digest, version);
                self.inner.replica.invalidate(name);
                return Ok(());
            }
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
        for attempt in 0..TAG_WRITE_ATTEMPTS {
            let condition = match driver.get_versioned(&key).await {
                Ok((current, version)) => {
                    if paths::parse_digest_content(&current).as_ref() == Some(digest) {
                        self.inner.replica.remember_tag(&key, digest, version);
                        return Ok(());
                    }
                    Precondition::Matches(version)
                }
                Err(e) if e.is_not_found() => Precondition::Absent,
                Err(e) => return Err(e),
            };
            match driver.put_if(&key, content.clone(), condition).await {
                Ok(version) => {
                    self.inner.replica.remember_tag(&key, digest, version);
                    self.inner.replica.invalidate(name);
                    return Ok(());
                }
                Err(StoreError::PreconditionFailed { .. }) => {
                    // Another writer won this round; back off a little more each time.
                    let pause = Duration::from_millis(u64::from(attempt.min(20)));
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable {
            message: format!("tag {tag} of {name} is being written by many writers at once"),
            retry_after: TAG_CONTENDED_RETRY,
        })
    }

    /// Forgets a tag this replica deleted from storage.
    pub(crate) fn forget_tag(&self, name: &str, tag: &str) {
        let cache = &self.inner.replica;
        cache.forget_tag(&paths::tag_link(name, tag));
        cache.invalidate(name);
    }

    /// On an index miss: whether storage has the manifest revision, recorded in the index if
    /// so (its metadata is filled on first use). A revision never changes, so a hit is kept.
    pub(crate) async fn find_revision(&self, name: &str, digest: &Digest) -> Result<bool> {
        let key = paths::revision_link(name, digest);
        if !self.exists(&key).await? {
            return Ok(false);
        }
        let local = self.exists(&paths::local_data(name, digest)).await?;
        self.inner.index.write(name, |r| {
            r.manifests.entry(digest.clone()).or_insert(None);
            if local {
                r.local.insert(digest.clone());
            }
        });
        Ok(true)
    }

    /// On an index miss: whether storage has the blob link, recorded in the index if so.
    pub(crate) async fn find_blob_link(&self, name: &str, digest: &Digest) -> Result<bool> {
        if !self.exists(&paths::layer_link(name, digest)).await? {
            return Ok(false);
        }
        let local = self.exists(&paths::local_data(name, digest)).await?;
        self.inner.index.write(name, |r| {
            r.blobs.entry(digest.clone()).or_insert(None);
            if local {
                r.local.insert(digest.clone());
            }
        });
        Ok(true)
    }

    /// Whether an object exists under `key`.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.inner.driver.stat(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the repository exists: in the index, or in storage.
    pub(crate) async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        if self.inner.index.read(repo.as_str(), |_| ()).is_some() {
            return Ok(true);
        }
        let children = self
            .inner
            .driver
            .list(&paths::repo_root(repo.as_str()))
            .await?;
        Ok(children.iter().any(|c| REPO_MARKERS.contains(&leaf(c))))
    }

    /// The repository's tags as listed in storage (reused for [`LISTING_TTL`]); `None` when
    /// the repository does not exist.
    pub(crate) async fn listed_tags(&self, repo: &RepoName) -> Result<Option<Arc<Vec<String>>>> {
        let name = repo.as_str();
        if let Some(names) = self.inner.replica.cached_tags(name) {
            return Ok(Some(names));
        }
        let keys = self.inner.driver.list(&paths::tag_dir(name)).await?;
        if keys.is_empty() && !self.repo_exists(repo).await? {
            return Ok(None);
        }
        // Keys are sorted, and a tag is the last component of its key.
        let names: Arc<Vec<String>> = Arc::new(keys.iter().map(|k| leaf(k).to_owned()).collect());
        self.inner.replica.store_tags(name, Arc::clone(&names));
        Ok(Some(names))
    }

    /// The repository names as listed in storage (reused for [`LISTING_TTL`]), sorted.
    pub(crate) async fn listed_catalog(&self) -> Result<Arc<Vec<String>>> {
        if let Some(names) = self.inner.replica.cached_catalog() {
            return Ok(names);
        }
        let names = Arc::new(self.list_repositories().await?);
        self.inner.replica.store_catalog(Arc::clone(&names));
        Ok(names)
    }

    /// Walks the directories under `repositories/` level by level: a directory holding one of
    /// [`REPO_MARKERS`] is a repository; the others (name components, which never start with
    /// `_`) are walked further. Repository data (`_...`) is never listed.
    async fn list_repositories(&self) -> Result<Vec<String>> {
        let driver = &self.inner.driver;
        let prefix = format!("{}/", paths::REPOSITORIES);
        let mut names = Vec::new();
        let mut level = vec![paths::REPOSITORIES.to_owned()];
        while !level.is_empty() {
            let listed: Vec<(String, Vec<String>)> = stream::iter(level)
                .map(|dir| async move { driver.list(&dir).await.map(|c| (dir, c)) })
                .buffer_unordered(LIST_PARALLELISM)
                .try_collect()
                .await?;
            let mut next = Vec::new();
            for (dir, children) in listed {
                let (marked, deeper): (Vec<String>, Vec<String>) =
                    children.into_iter().partition(|c| leaf(c).starts_with('_'));
                let is_repo = marked.iter().any(|c| REPO_MARKERS.contains(&leaf(c)));
                if let (true, Some(name)) = (is_repo, dir.strip_prefix(&prefix)) {
                    names.push(name.to_owned());
                }
                next.extend(deeper);
            }
            level = next;
        }
        names.sort();
        Ok(names)
    }

    /// Replaces the index's referrers of `subject` in the repository with those listed in
    /// storage whose revision exists (a referrer link is written before its revision's put
    /// is acknowledged, and one whose revision was deleted is skipped).
    pub(crate) async fn refresh_referrers(&self, name: &str, subject: &Digest) -> Result<()> {
        let objects = self
            .inner
            .driver
            .walk(&paths::referrers_of(name, subject))
            .await?;
        let mut found = BTreeSet::new();
        for object in objects {
            let Some(RepoKey::Referrer { referrer, .. }) = paths::parse_repo_key(&object.key)
            else {
                continue;
            };
            let known = self
                .inner
                .index
                .read(name, |r| r.manifests.contains_key(&referrer))
                .unwrap_or(false);
            if known || self.find_revision(name, &referrer).await? {
                found.insert(referrer);
            }
        }
        self.inner.index.write(name, |r| {
            if found.is_empty() {
                r.referrers.remove(subject);
            } else {
                r.referrers.insert(subject.clone(), found);
            }
        });
        Ok(())
    }

    /// The tags in storage that name `digest` (read concurrently; for a delete by digest).
    pub(crate) async fn stored_tags_naming(
        &self,
        name: &str,
        digest: &Digest,
    ) -> Result<Vec<String>> {
        let driver = &self.inner.driver;
        let keys = driver.list(&paths::tag_dir(name)).await?;
        stream::iter(keys)
            .map(|key| async move {
                match driver.get_content(&key).await {
                    Ok(content) => Ok((paths::parse_digest_content(&content).as_ref()
                        == Some(digest))
                    .then(|| leaf(&key).to_owned())),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(LIST_PARALLELISM)
            .try_filter_map(|tag| async move { Ok(tag) })
            .try_collect()
            .await
    }
}

/// A tag object's digest; unreadable content is an error (tags are only written whole).
fn parse_tag(key: &str, content: &[u8]) -> Result<Digest> {
    paths::parse_digest_content(content)
        .ok_or_else(|| StoreError::Internal(format!("tag object {key} does not hold a digest")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_start_after_the_last_name() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(page(&names, None, Some(2)), vec!["a", "b"]);
        assert_eq!(page(&names, Some("b"), None), vec!["c", "d"]);
        assert_eq!(page(&names, Some("bb"), Some(1)), vec!["c"]);
        assert!(page(&names, Some("d"), None).is_empty());
    }

    #[test]
    fn the_leaf_is_the_last_component() {
        assert_eq!(leaf("repositories/a/b/_manifests/tags/v1"), "v1");
        assert_eq!(leaf("v1"), "v1");
    }
}
