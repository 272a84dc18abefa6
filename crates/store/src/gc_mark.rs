//! The mark phase of garbage collection: what each repository still needs.
//!
//! Roots are the tagged manifests; without `delete_untagged` every manifest revision is a root,
//! and with it, untagged manifests younger than the grace period (or in use) still are. From
//! the roots the marker follows index children and referrers (a manifest whose subject is live
//! stays live) and collects every config and layer digest. A manifest that cannot be read makes
//! the repository's marks incomplete: nothing of that repository is swept in this run.

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime};

use futures_util::stream::{self, StreamExt};
use ocireg_oci::{parse_manifest, Digest};

use crate::error::{Result, StoreError};
use crate::gc::GcOptions;
use crate::gc::Listing;
use crate::paths::{self, DataLoc};
use crate::store::Store;

/// Manifests read concurrently while marking.
const LOAD_PARALLELISM: usize = 16;

/// One repository's manifests as the index (or, on shared storage, the storage listing) knew
/// them when marking started.
#[derive(Debug, Default, Clone)]
pub(crate) struct RepoView {
    /// Tagged manifest digests.
    pub tags: Vec<Digest>,
    /// Revisions: recorded media type (when known) and where the bytes are.
    pub manifests: HashMap<Digest, (Option<String>, DataLoc)>,
    /// Subject → referring manifests.
    pub referrers: HashMap<Digest, Vec<Digest>>,
}

/// Live manifests and blobs of one repository.
#[derive(Debug, Default)]
pub(crate) struct RepoMarks {
    /// Live manifest digests.
    pub manifests: HashSet<Digest>,
    /// Blob digests live manifests reference.
    pub blobs: HashSet<Digest>,
    /// False when a live manifest could not be read: the repository is not swept.
    pub complete: bool,
    /// The index entries the marks were computed from.
    pub view: RepoView,
}

/// Marks by repository name.
pub(crate) type Marks = HashMap<String, RepoMarks>;

/// What makes a manifest revision a root of the mark (with `delete_untagged`; without it
/// every revision is one).
pub(crate) struct Roots<'a> {
    /// The run's options.
    pub opts: &'a GcOptions,
    /// What storage held: revisions modified after `cutoff` are roots.
    pub listing: &'a Listing,
    /// The grace period's start.
    pub cutoff: SystemTime,
    /// Revisions this process used after `since` are roots.
    pub since: Option<Instant>,
    /// When set, only these revisions may be unreachable: every other one is a root (a second
    /// look at storage keeps what was not a candidate at the first).
    pub candidates: Option<&'a HashSet<(String, Digest)>>,
}

/// The digests one manifest references.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refs {
    /// Config and layer blobs.
    pub blobs: Vec<Digest>,
    /// Index children.
    pub children: Vec<Digest>,
    /// The subject, if any.
    pub subject: Option<Digest>,
}

impl Store {
    /// Computes the live sets of every repository from the index.
    pub(crate) async fn gc_mark(
        &self,
        opts: &GcOptions,
        listing: &Listing,
        cutoff: SystemTime,
        since: Option<Instant>,
    ) -> Marks {
        let views = self.index_views();
        let roots = Roots {
            opts,
            listing,
            cutoff,
            since,
            candidates: None,
        };
        self.mark_views(&roots, views).await
    }

    /// Every repository's view as the index knows it.
    fn index_views(&self) -> Vec<(String, RepoView)> {
        self.inner.index.read_all(|repos| {
            repos
                .iter()
                .map(|(name, r)| {
                    let view = RepoView {
                        tags: r.tags.values().cloned().collect(),
                        manifests: r
                            .manifests
                            .iter()
                            .map(|(d, meta)| {
                                let mt = meta.as_ref().map(|m| m.media_type.to_string());
                                (d.clone(), (mt, r.loc(d)))
                            })
                            .collect(),
                        referrers: r
                            .referrers
                            .iter()
                            .map(|(s, set)| (s.clone(), set.iter().cloned().collect()))
                            .collect(),
                    };
                    (name.clone(), view)
                })
                .collect()
        })
    }

    /// Computes the live sets of the given repositories.
    pub(crate) async fn mark_views(
        &self,
        roots: &Roots<'_>,
        views: Vec<(String, RepoView)>,
    ) -> Marks {
        let mut marks = Marks::with_capacity(views.len());
        for (name, view) in views {
            let roots: Vec<Digest> = if roots.opts.delete_untagged {
                let keep = |d: &Digest| {
                    let key = (name.clone(), d.clone());
                    roots
                        .listing
                        .revisions
                        .get(&key)
                        .is_none_or(|mtime| *mtime > roots.cutoff)
                        || roots.candidates.is_some_and(|c| !c.contains(&key))
                        || self.inner.in_use.in_use(&name, d, roots.since)
                };
                let mut roots = view.tags.clone();
                roots.extend(view.manifests.keys().filter(|d| keep(d)).cloned());
                roots
            } else {
                view.manifests.keys().cloned().collect()
            };
            let mut rm = RepoMarks {
                complete: true,
                view,
                ..RepoMarks::default()
            };
            self.mark_from(&name, &mut rm, roots).await;
            marks.insert(name, rm);
        }
        marks
    }

    /// Marks `roots` and everything they reach live in `rm`.
    pub(crate) async fn mark_from(&self, repo: &str, rm: &mut RepoMarks, roots: Vec<Digest>) {
        let mut frontier = roots;
        while !frontier.is_empty() {
            let mut todo = Vec::new();
            for d in frontier.drain(..) {
                if let Some((mt, loc)) = rm.view.manifests.get(&d) {
                    if rm.manifests.insert(d.clone()) {
                        todo.push((d, mt.clone(), *loc));
                    }
                }
            }
            let loaded: Vec<(Digest, Result<Refs>)> = stream::iter(todo)
                .map(|(d, mt, loc)| async move {
                    let refs = self.manifest_refs(repo, &d, mt, loc).await;
                    (d, refs)
                })
                .buffer_unordered(LOAD_PARALLELISM)
                .collect()
                .await;
            for (d, refs) in loaded {
                match refs {
                    Ok(refs) => {
                        rm.blobs.extend(refs.blobs);
                        frontier.extend(refs.children);
                    }
                    Err(e) => {
                        tracing::warn!(repo, digest = %d, error = %e, "GC cannot read a live manifest; not sweeping this repository");
                        rm.complete = false;
                    }
                }
                if let Some(referrers) = rm.view.referrers.get(&d) {
                    frontier.extend(referrers.iter().cloned());
                }
            }
        }
    }

    /// Reads a manifest of `repo` and returns what it references.
    pub(crate) async fn manifest_refs(
        &self,
        repo: &str,
        digest: &Digest,
        media_type: Option<String>,
        loc: DataLoc,
    ) -> Result<Refs> {
        let driver = self.inner.driver.as_ref();
        let body = match self.inner.cache.get(digest) {
            Some(body) => body,
            None => {
                let body = driver.get_content(&paths::data(repo, digest, loc)).await?;
                if Digest::compute(digest.algorithm(), &body) != *digest {
                    return Err(StoreError::Internal(format!(
                        "stored bytes of manifest {digest} in {repo} are corrupt"
                    )));
                }
                body
            }
        };
        let media_type = match media_type {
            Some(mt) => Some(mt),
            None => {
                let link = driver
                    .get_content(&paths::revision_link(repo, digest))
                    .await?;
                paths::parse_revision_content(&link).map(|(_, mt)| mt)
            }
        }
        .filter(|mt| !mt.is_empty());
        let parsed = parse_manifest(&body, media_type.as_deref()).map_err(|e| {
            StoreError::Internal(format!("manifest {digest} in {repo} does not parse: {e}"))
        })?;
        Ok(Refs {
            blobs: parsed.blob_refs().map(|d| d.digest.clone()).collect(),
            children: parsed.manifest_refs().map(|d| d.digest.clone()).collect(),
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
        })
    }
}
