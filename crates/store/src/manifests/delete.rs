//! Manifest deletes: a tag, or a revision with every tag on it and its referrer entry.

use ocireg_oci::{Digest, Reference, RepoName, Tag};

use crate::error::Result;
use crate::paths;
use crate::store::Store;

use super::{manifest_unknown, name_unknown};

impl Store {
    /// Deletes by digest (the revision, every tag on it and its referrer entry) or by tag (just
    /// the tag). The bytes stay until garbage collection.
    pub async fn manifest_delete(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        match reference {
            Reference::Tag(tag) => self.delete_tag(repo, tag).await,
            Reference::Digest(digest) => self.delete_revision(repo, reference, digest).await,
        }
    }

    /// Deletes a tag (the manifest stays).
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let name = repo.as_str();
        let _guard = self.inner.tag_locks.lock(&(name, tag.as_str())).await;
        let known = if self.is_shared() {
            match self.revalidate_tag(name, tag.as_str()).await? {
                Some(_) => Some(true),
                None => self.repo_exists(repo).await?.then_some(false),
            }
        } else {
            self.inner
                .index
                .read(name, |r| r.tags.contains_key(tag.as_str()))
        };
        match known {
            None => return Err(name_unknown(repo)),
            Some(false) => return Err(manifest_unknown(tag)),
            Some(true) => {}
        }
        self.remove_tag(name, tag.as_str()).await
    }

    /// Removes a tag from storage and the index; the caller holds the tag's lock.
    async fn remove_tag(&self, name: &str, tag: &str) -> Result<()> {
        delete_link(self.inner.driver.as_ref(), &paths::tag_link(name, tag)).await?;
        self.inner.index.write(name, |r| {
            r.tags.remove(tag);
        });
        if self.is_shared() {
            self.forget_tag(name, tag);
        }
        Ok(())
    }

    /// Deletes a revision: every tag naming it, then the revision, then the referrer link.
    async fn delete_revision(
        &self,
        repo: &RepoName,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<()> {
        let name = repo.as_str();
        let index = &self.inner.index;
        let driver = self.inner.driver.as_ref();
        let _guard = self.inner.digest_locks.lock(digest).await;
        let resolved = self.resolve(repo, reference).await?;
        // Tags first, then the revision, then the referrer link (see `paths`).
        let tags: Vec<String> = if self.is_shared() {
            self.stored_tags_naming(name, digest).await?
        } else {
            index
                .read(name, |r| {
                    r.tags
                        .iter()
                        .filter(|(_, d)| **d == *digest)
                        .map(|(t, _)| t.to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        for tag in tags {
            let _tag_guard = self.inner.tag_locks.lock(&(name, tag.as_str())).await;
            let still = if self.is_shared() {
                self.revalidate_tag(name, &tag).await?.as_ref() == Some(digest)
            } else {
                index
                    .read(name, |r| r.tags.get(&tag) == Some(digest))
                    .unwrap_or(false)
            };
            if still {
                self.remove_tag(name, &tag).await?;
            }
        }
        let subject = match &resolved.meta {
            Some(meta) => meta.subject.as_deref().cloned(),
            None => self
                .load(repo, &resolved)
                .await?
                .0
                .subject
                .as_deref()
                .cloned(),
        };
        delete_link(driver, &paths::revision_link(name, digest)).await?;
        index.write(name, |r| {
            r.manifests.remove(digest);
        });
        if let Some(subject) = subject {
            delete_link(driver, &paths::referrer_link(name, &subject, digest)).await?;
            index.write(name, |r| {
                if let Some(set) = r.referrers.get_mut(&subject) {
                    set.remove(digest);
                    if set.is_empty() {
                        r.referrers.remove(&subject);
                    }
                }
            });
        }
        Ok(())
    }
}

/// Deletes a link, treating an already-missing one as deleted.
async fn delete_link(driver: &dyn crate::driver::Driver, key: &str) -> Result<()> {
    match driver.delete(key).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
