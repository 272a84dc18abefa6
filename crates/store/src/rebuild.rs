//! Building the repository index from storage at open, with crash repairs.
//!
//! Lists every key under `repositories/` once (links encode their digests in their keys) and
//! reads only the tag files. Then repairs what an interrupted manifest put or delete can leave
//! (see [`crate::paths`]): a tag whose revision link is missing gets the revision restored from
//! the durable bytes (or is dropped if the bytes are gone), and a referrer link whose revision
//! is gone is removed.
//!
//! Over storage replicas share ([`Driver::shared`]) nothing is removed: another replica's put
//! in flight writes its referrer link before its revision link, so a referrer without its
//! revision is not known to be dangling (readers skip it instead), and a tag that cannot be
//! used is left out of this replica's index but left in storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use ocireg_oci::{parse_manifest, Digest};

use crate::driver::Driver;
use crate::error::Result;
use crate::index::{ManifestMeta, Repo};
use crate::paths::{self, RepoKey};

/// How many tag files are read concurrently.
const READ_PARALLELISM: usize = 32;

/// Reads the layout under `repositories/` into per-repository index entries.
pub(crate) async fn rebuild(driver: &Arc<dyn Driver>) -> Result<BTreeMap<String, Repo>> {
    let objects = driver.walk(paths::REPOSITORIES).await?;
    let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
    let mut tag_keys = Vec::new();
    for object in objects {
        let Some(parsed) = paths::parse_repo_key(&object.key) else {
            tracing::debug!(key = %object.key, "ignoring unknown key");
            continue;
        };
        match parsed {
            RepoKey::Layer { repo, digest } => {
                repos.entry(repo).or_default().blobs.insert(digest, None);
            }
            RepoKey::LocalData { repo, digest } => {
                repos.entry(repo).or_default().local.insert(digest);
            }
            RepoKey::Revision { repo, digest } => {
                repos
                    .entry(repo)
                    .or_default()
                    .manifests
                    .insert(digest, None);
            }
            RepoKey::Tag { repo, tag } => tag_keys.push((repo, tag, object.key)),
            RepoKey::Referrer {
                repo,
                subject,
                referrer,
            } => {
                let entry = repos.entry(repo).or_default();
                entry.referrers.entry(subject).or_default().insert(referrer);
            }
            RepoKey::Upload { .. } => {}
        }
    }

    let tags = read_tags(driver, tag_keys).await?;
    for (repo, tag, key, content) in tags {
        let Some(digest) = paths::parse_digest_content(&content) else {
            tracing::warn!(%key, "dropping tag with unreadable content");
            remove_unless_shared(driver, &key).await;
            continue;
        };
        let entry = repos.entry(repo.clone()).or_default();
        if !entry.manifests.contains_key(&digest) {
            let loc = entry.loc(&digest);
            match restore_revision(driver, &repo, &digest, loc).await? {
                Some(meta) => {
                    let entry = repos.entry(repo.clone()).or_default();
                    if let Some(subject) = &meta.subject {
                        entry
                            .referrers
                            .entry(Digest::clone(subject))
                            .or_default()
                            .insert(digest.clone());
                    }
                    entry.manifests.insert(digest.clone(), Some(Arc::new(meta)));
                }
                None => {
                    tracing::warn!(%key, %digest, "dropping tag whose manifest bytes are gone");
                    remove_unless_shared(driver, &key).await;
                    continue;
                }
            }
        }
        repos.entry(repo).or_default().tags.insert(tag, digest);
    }

    if !driver.shared() {
        drop_dangling_referrers(driver, &mut repos).await;
    }
    Ok(repos)
}

/// Reads the tag files `(repo, tag, key)` concurrently; a tag gone meanwhile is skipped.
async fn read_tags(
    driver: &Arc<dyn Driver>,
    tag_keys: Vec<(String, String, String)>,
) -> Result<Vec<(String, String, String, Bytes)>> {
    stream::iter(tag_keys)
        .map(|(repo, tag, key)| {
            let driver = Arc::clone(driver);
            async move {
                match driver.get_content(&key).await {
                    Ok(content) => Ok(Some((repo, tag, key, content))),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(READ_PARALLELISM)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await
}

/// Removes referrer links whose referring manifest is gone (from the index and storage).
async fn drop_dangling_referrers(driver: &Arc<dyn Driver>, repos: &mut BTreeMap<String, Repo>) {
    for (name, repo) in repos.iter_mut() {
        let mut dangling = Vec::new();
        for (subject, set) in repo.referrers.iter_mut() {
            set.retain(|referrer| {
                let keep = repo.manifests.contains_key(referrer);
                if !keep {
                    dangling.push(paths::referrer_link(name, subject, referrer));
                }
                keep
            });
        }
        repo.referrers.retain(|_, set| !set.is_empty());
        for key in dangling {
            tracing::warn!(%key, "removing referrer link of a deleted manifest");
            remove_quietly(driver, &key).await;
        }
    }
}

/// Recreates the revision (and referrer) link of a tagged manifest whose put was interrupted.
async fn restore_revision(
    driver: &Arc<dyn Driver>,
    repo: &str,
    digest: &Digest,
    loc: paths::DataLoc,
) -> Result<Option<ManifestMeta>> {
    let body = match driver.get_content(&paths::data(repo, digest, loc)).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    if Digest::compute(digest.algorithm(), &body) != *digest {
        return Ok(None);
    }
    let Ok(parsed) = parse_manifest(&body, None) else {
        return Ok(None);
    };
    let meta = crate::manifests::meta_of(&parsed, body.len() as u64);
    let content = paths::revision_content(digest, &meta.media_type);
    driver
        .put_content(&paths::revision_link(repo, digest), Bytes::from(content))
        .await?;
    if let Some(subject) = &meta.subject {
        let link = paths::referrer_link(repo, subject, digest);
        driver
            .put_content(&link, Bytes::from(digest.to_string()))
            .await?;
    }
    tracing::warn!(repo, %digest, "restored the revision link of an interrupted manifest put");
    Ok(Some(meta))
}

/// Removes a stale link, unless other processes share the storage (see the module docs).
async fn remove_unless_shared(driver: &Arc<dyn Driver>, key: &str) {
    if !driver.shared() {
        remove_quietly(driver, key).await;
    }
}

async fn remove_quietly(driver: &Arc<dyn Driver>, key: &str) {
    if let Err(e) = driver.delete(key).await {
        if !e.is_not_found() {
            tracing::warn!(key, error = %e, "could not remove stale link");
        }
    }
}
