//! The sweep phase of garbage collection (see [`crate::gc`] for the whole run).
//!
//! Every removal of a digest takes the digest's lock and re-checks the live index under it; a
//! link leaves the index inside [`crate::inuse::InUse::remove_if_unused`] before its object is
//! deleted. A dry run takes the same decisions and records what it would remove, so data
//! objects whose last link would go are reported too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Instant, SystemTime};

use futures_util::stream::{self, StreamExt};
use ocireg_oci::Digest;

use crate::driver::Driver;
use crate::gc::{
    GcOptions, GcReport, Listing, RemovedBlob, RemovedLink, RemovedManifest, RemovedUpload,
};
use crate::gc_mark::{Marks, Refs};
use crate::paths::{self, DataLoc};
use crate::store::Store;

/// Removals run concurrently (each under its own digest lock).
const SWEEP_PARALLELISM: usize = 32;

/// The outcome of one attempted removal.
enum Outcome {
    /// Removed (or would be, in a dry run).
    Removed,
    /// Still needed or in use: kept.
    Kept,
    /// The removal failed.
    Failed(String),
}

/// State of one run's sweep.
pub(crate) struct Run<'a> {
    store: &'a Store,
    opts: &'a GcOptions,
    cutoff: SystemTime,
    since: Option<Instant>,
    /// Live sets per repository (grown when a candidate turns out to be kept).
    pub marks: Marks,
    /// The report being built.
    pub report: GcReport,
    /// Links removed in this run (a dry run only pretends).
    gone_links: HashSet<(String, Digest)>,
    /// Revisions removed in this run.
    gone_manifests: HashSet<(String, Digest)>,
}

async fn delete_object(driver: &dyn Driver, key: &str) -> std::result::Result<(), String> {
    match driver.delete(key).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

impl<'a> Run<'a> {
    /// A sweep over the given marks.
    pub(crate) fn new(
        store: &'a Store,
        opts: &'a GcOptions,
        cutoff: SystemTime,
        since: Option<Instant>,
        marks: Marks,
    ) -> Run<'a> {
        Run {
            store,
            opts,
            cutoff,
            since,
            marks,
            report: GcReport::default(),
            gone_links: HashSet::new(),
            gone_manifests: HashSet::new(),
        }
    }

    /// Removes manifests the mark did not reach, parents before children (a kept parent keeps
    /// its children, a kept subject its referrers).
    pub(crate) async fn sweep_manifests(&mut self, listing: &Listing) {
        let mut candidates: Vec<(String, Digest, Refs)> = Vec::new();
        let names: Vec<String> = self.marks.keys().cloned().collect();
        for name in names {
            let Some(rm) = self.marks.get(&name) else {
                continue;
            };
            if !rm.complete {
                continue;
            }
            let dead: Vec<_> = rm
                .view
                .manifests
                .iter()
                .filter(|(d, _)| !rm.manifests.contains(*d))
                .filter(|(d, _)| {
                    listing
                        .revisions
                        .contains_key(&(name.clone(), (*d).clone()))
                })
                .map(|(d, (mt, loc))| (d.clone(), mt.clone(), *loc))
                .collect();
            for (d, mt, loc) in dead {
                match self.store.manifest_refs(&name, &d, mt, loc).await {
                    Ok(refs) => candidates.push((name.clone(), d, refs)),
                    Err(e) => {
                        tracing::warn!(repo = %name, digest = %d, error = %e, "GC cannot read an unreachable manifest; not sweeping this repository");
                        if let Some(rm) = self.marks.get_mut(&name) {
                            rm.complete = false;
                        }
                    }
                }
            }
        }
        candidates.retain(|(name, _, _)| self.marks.get(name).is_some_and(|rm| rm.complete));
        for (name, digest, refs) in parents_first(candidates) {
            let live = self
                .marks
                .get(&name)
                .is_none_or(|rm| rm.manifests.contains(&digest));
            if live {
                continue;
            }
            match self.remove_manifest(&name, &digest, &refs).await {
                Outcome::Removed => {
                    self.report.manifests.push(RemovedManifest {
                        repo: name.clone(),
                        digest: digest.to_string(),
                    });
                    self.gone_manifests.insert((name, digest));
                }
                Outcome::Kept => {
                    self.report.kept_young += 1;
                    let store = self.store;
                    if let Some(rm) = self.marks.get_mut(&name) {
                        store.mark_from(&name, rm, vec![digest]).await;
                    }
                }
                Outcome::Failed(e) => self.report.errors.push(e),
            }
        }
    }

    async fn remove_manifest(&self, repo: &str, digest: &Digest, refs: &Refs) -> Outcome {
        let inner = &self.store.inner;
        let subject_live = refs.subject.as_ref().is_some_and(|s| {
            self.marks
                .get(repo)
                .is_some_and(|rm| rm.manifests.contains(s))
        });
        if subject_live {
            return Outcome::Kept;
        }
        let _guard = inner.digest_locks.lock(digest).await;
        let dry = self.opts.dry_run;
        let subject = refs.subject.clone();
        let removed = inner
            .in_use
            .remove_if_unused(repo, digest, self.since, || {
                let check = |r: &crate::index::Repo| {
                    let tagged = |d: &Digest| r.tags.values().any(|t| t == d);
                    r.manifests.contains_key(digest)
                        && !tagged(digest)
                        && !subject.as_ref().is_some_and(tagged)
                };
                if dry {
                    return inner.index.read(repo, check).unwrap_or(false).then_some(());
                }
                inner.index.write(repo, |r| {
                    if !check(r) {
                        return None;
                    }
                    r.manifests.remove(digest);
                    if let Some(s) = &subject {
                        if let Some(set) = r.referrers.get_mut(s) {
                            set.remove(digest);
                            if set.is_empty() {
                                r.referrers.remove(s);
                            }
                        }
                    }
                    Some(())
                })
            })
            .is_some();
        if !removed {
            return Outcome::Kept;
        }
        if dry {
            return Outcome::Removed;
        }
        let driver = inner.driver.as_ref();
        // The revision first, then the referrer link (a crash in between leaves a dangling
        // referrer link, which open removes).
        let mut keys = vec![paths::revision_link(repo, digest)];
        if let Some(s) = &subject {
            keys.push(paths::referrer_link(repo, s, digest));
        }
        for key in keys {
            if let Err(e) = delete_object(driver, &key).await {
                return Outcome::Failed(format!("removing {key}: {e}"));
            }
        }
        Outcome::Removed
    }

    /// Removes blob links that no live manifest of their repository references.
    pub(crate) async fn sweep_links(&mut self, listing: &Listing) {
        let mut candidates = Vec::new();
        for (repo, digest, mtime) in &listing.links {
            if let Some(rm) = self.marks.get(repo) {
                if !rm.complete || rm.blobs.contains(digest) {
                    continue;
                }
            }
            if *mtime > self.cutoff {
                self.report.kept_young += 1;
                continue;
            }
            candidates.push((repo.clone(), digest.clone()));
        }
        let this = &*self;
        let outcomes: Vec<(String, Digest, Outcome)> = stream::iter(candidates)
            .map(|(repo, digest)| async move {
                let outcome = this.remove_link(&repo, &digest).await;
                (repo, digest, outcome)
            })
            .buffer_unordered(SWEEP_PARALLELISM)
            .collect()
            .await;
        for (repo, digest, outcome) in outcomes {
            match outcome {
                Outcome::Removed => {
                    self.report.links.push(RemovedLink {
                        repo: repo.clone(),
                        digest: digest.to_string(),
                    });
                    self.gone_links.insert((repo, digest));
                }
                Outcome::Kept => self.report.kept_young += 1,
                Outcome::Failed(e) => self.report.errors.push(e),
            }
        }
    }

    async fn remove_link(&self, repo: &str, digest: &Digest) -> Outcome {
        let inner = &self.store.inner;
        let _guard = inner.digest_locks.lock(digest).await;
        let dry = self.opts.dry_run;
        // `Some(true)`: removed from the index; `Some(false)`: a link file the index does not
        // know (a failed earlier removal), safe to delete under the lock.
        let removed = inner.in_use.remove_if_unused(repo, digest, self.since, || {
            if dry {
                let known = inner
                    .index
                    .read(repo, |r| r.blobs.contains_key(digest))
                    .unwrap_or(false);
                return Some(known);
            }
            let known = inner
                .index
                .read(repo, |r| r.blobs.contains_key(digest))
                .unwrap_or(false);
            if known {
                inner.index.write(repo, |r| r.blobs.remove(digest));
            }
            Some(known)
        });
        let Some(known) = removed else {
            return Outcome::Kept;
        };
        if dry {
            return Outcome::Removed;
        }
        let key = paths::layer_link(repo, digest);
        match delete_object(inner.driver.as_ref(), &key).await {
            Ok(()) => Outcome::Removed,
            Err(e) => {
                if known {
                    inner
                        .index
                        .write(repo, |r| r.blobs.insert(digest.clone(), None));
                }
                Outcome::Failed(format!("removing {key}: {e}"))
            }
        }
    }

    /// True when `repo` (in the index, minus this run's removals) still names `digest`.
    fn repo_needs(&self, r: &crate::index::Repo, repo: &str, digest: &Digest) -> bool {
        let key = (repo.to_owned(), digest.clone());
        (r.blobs.contains_key(digest) && !self.gone_links.contains(&key))
            || (r.manifests.contains_key(digest) && !self.gone_manifests.contains(&key))
    }

    /// Removes repositories' own data copies that none of their links or revisions names.
    pub(crate) async fn sweep_local_data(&mut self, listing: &Listing) {
        let mut candidates = Vec::new();
        for (repo, digest, size, mtime) in &listing.local {
            let needed = self
                .store
                .inner
                .index
                .read(repo, |r| self.repo_needs(r, repo, digest))
                .unwrap_or(false);
            if needed {
                continue;
            }
            if *mtime > self.cutoff {
                self.report.kept_young += 1;
                self.report.kept_young_bytes += size;
                continue;
            }
            candidates.push((repo.clone(), digest.clone(), *size));
        }
        let this = &*self;
        let outcomes: Vec<(String, Digest, u64, Outcome)> = stream::iter(candidates)
            .map(|(repo, digest, size)| async move {
                let inner = &this.store.inner;
                let _guard = inner.digest_locks.lock(&digest).await;
                let needed = inner
                    .index
                    .read(&repo, |r| this.repo_needs(r, &repo, &digest))
                    .unwrap_or(false);
                let outcome = if needed {
                    Outcome::Kept
                } else if this.opts.dry_run {
                    Outcome::Removed
                } else {
                    let key = paths::local_data(&repo, &digest);
                    match delete_object(inner.driver.as_ref(), &key).await {
                        Ok(()) => {
                            inner.index.write(&repo, |r| r.local.remove(&digest));
                            inner
                                .quota
                                .facts
                                .write()
                                .forget(&repo, &digest, DataLoc::Local);
                            Outcome::Removed
                        }
                        Err(e) => Outcome::Failed(format!("removing {key}: {e}")),
                    }
                };
                (repo, digest, size, outcome)
            })
            .buffer_unordered(SWEEP_PARALLELISM)
            .collect()
            .await;
        for (repo, digest, bytes, outcome) in outcomes {
            self.record_blob(outcome, digest, repo, bytes);
        }
    }

    /// Removes shared data objects that no repository reads.
    pub(crate) async fn sweep_shared_data(&mut self, listing: &Listing) {
        let needed: HashSet<Digest> = self.store.inner.index.read_all(|repos| {
            let mut set = HashSet::new();
            for (name, r) in repos {
                for d in r.blobs.keys().chain(r.manifests.keys()) {
                    if !r.local.contains(d) && self.repo_needs(r, name, d) {
                        set.insert(d.clone());
                    }
                }
            }
            set
        });
        let mut candidates = Vec::new();
        for (digest, size, mtime) in &listing.shared {
            if needed.contains(digest) {
                continue;
            }
            if *mtime > self.cutoff {
                self.report.kept_young += 1;
                self.report.kept_young_bytes += size;
                continue;
            }
            candidates.push((digest.clone(), *size));
        }
        let this = &*self;
        let outcomes: Vec<(Digest, u64, Outcome)> = stream::iter(candidates)
            .map(|(digest, size)| async move {
                let inner = &this.store.inner;
                let _guard = inner.digest_locks.lock(&digest).await;
                let needed = inner.index.read_all(|repos| {
                    repos.iter().any(|(name, r)| {
                        !r.local.contains(&digest) && this.repo_needs(r, name, &digest)
                    })
                });
                let outcome = if needed {
                    Outcome::Kept
                } else if this.opts.dry_run {
                    Outcome::Removed
                } else {
                    let key = paths::shared_data(&digest);
                    match delete_object(inner.driver.as_ref(), &key).await {
                        Ok(()) => {
                            inner
                                .quota
                                .facts
                                .write()
                                .forget("", &digest, DataLoc::Shared);
                            Outcome::Removed
                        }
                        Err(e) => Outcome::Failed(format!("removing {key}: {e}")),
                    }
                };
                (digest, size, outcome)
            })
            .buffer_unordered(SWEEP_PARALLELISM)
            .collect()
            .await;
        for (digest, bytes, outcome) in outcomes {
            self.record_blob(outcome, digest, "shared".to_owned(), bytes);
        }
    }

    fn record_blob(&mut self, outcome: Outcome, digest: Digest, repo: String, bytes: u64) {
        match outcome {
            Outcome::Removed => self.report.blobs.push(RemovedBlob {
                digest: digest.to_string(),
                repo,
                bytes,
            }),
            Outcome::Kept => {
                self.report.kept_young += 1;
                self.report.kept_young_bytes += bytes;
            }
            Outcome::Failed(e) => self.report.errors.push(e),
        }
    }

    /// Removes upload sessions nothing was written to since `stale_before`.
    pub(crate) async fn sweep_uploads(&mut self, listing: &Listing, stale_before: SystemTime) {
        for ((repo, id), (bytes, latest)) in &listing.uploads {
            if *latest > stale_before {
                continue;
            }
            let removed = if self.opts.dry_run {
                Ok(Some(*bytes))
            } else {
                self.store.purge_stale_upload(repo, id, stale_before).await
            };
            match removed {
                Ok(Some(bytes)) => self.report.uploads.push(RemovedUpload {
                    repo: repo.clone(),
                    id: id.clone(),
                    bytes,
                }),
                Ok(None) => {}
                Err(e) => self
                    .report
                    .errors
                    .push(format!("removing upload {repo}/{id}: {e}")),
            }
        }
    }
}

/// Orders candidates so that a manifest comes before the index children and referrers it
/// would keep (Kahn's algorithm over edges within the candidate set).
fn parents_first(candidates: Vec<(String, Digest, Refs)>) -> Vec<(String, Digest, Refs)> {
    let at: HashMap<(String, Digest), usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, (r, d, _))| ((r.clone(), d.clone()), i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
    let mut incoming = vec![0usize; candidates.len()];
    for (i, (repo, _, refs)) in candidates.iter().enumerate() {
        for child in &refs.children {
            if let Some(&j) = at.get(&(repo.clone(), child.clone())) {
                edges[i].push(j);
                incoming[j] += 1;
            }
        }
        if let Some(subject) = &refs.subject {
            if let Some(&j) = at.get(&(repo.clone(), subject.clone())) {
                edges[j].push(i);
                incoming[i] += 1;
            }
        }
    }
    let mut queue: VecDeque<usize> = (0..candidates.len())
        .filter(|i| incoming[*i] == 0)
        .collect();
    let mut order = Vec::with_capacity(candidates.len());
    let mut placed = vec![false; candidates.len()];
    while let Some(i) = queue.pop_front() {
        placed[i] = true;
        order.push(i);
        for &j in &edges[i] {
            incoming[j] -= 1;
            if incoming[j] == 0 {
                queue.push_back(j);
            }
        }
    }
    // Content addressing makes cycles impossible; keep anything left over anyway.
    order.extend((0..candidates.len()).filter(|i| !placed[*i]));
    let mut slots: Vec<Option<(String, Digest, Refs)>> = candidates.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}
