//! Online garbage collection: mark from tags, sweep what nothing references.
//!
//! A run:
//! 1. lists storage once (`repositories/` and `blobs/`, with sizes and modification times);
//!    anything created later is not a candidate;
//! 2. marks, per repository ([`crate::gc_mark`]): tagged manifests (and, unless
//!    `delete_untagged`, every manifest) → index children → referrers of live manifests →
//!    config and layer blobs;
//! 3. sweeps ([`crate::gc_sweep`]): unreachable manifests (only with `delete_untagged`), blob
//!    links no live manifest of their repository references, then data objects (shared
//!    `blobs/` and repositories' own `_blobs/` copies) that no remaining link or revision
//!    names, then upload sessions untouched for the upload TTL.
//!
//! Nothing younger than the grace period (by modification time, or by use: see
//! [`crate::inuse`]) is removed. Every removal of a digest happens under that digest's lock
//! (the one commits take) after re-checking the live index, so a push that links a digest and
//! a sweep that removes it never interleave. Upload sessions are removed under their own lock.
//! One run at a time per store.
//!
//! On shared storage (replicas on one bucket, [`Driver::shared`]) none of the in-process
//! protections reach the other replicas; there a run goes through [`crate::gc_shared`] instead:
//! a lease for one runner across replicas, marks from storage and a two-phase sweep.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ocireg_oci::{Algorithm, Digest};
use serde::{Deserialize, Serialize};

use crate::driver::Driver;
use crate::error::Result;
use crate::gc_sweep::Run;
use crate::paths::{self, RepoKey};
use crate::stats::StoreStats;
use crate::store::Store;

/// What a GC run may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Unreferenced objects (and untagged manifests) younger than this are kept.
    pub grace_period: Duration,
    /// Also remove manifests no tag reaches and no live manifest refers to.
    pub delete_untagged: bool,
    /// Upload sessions not written for this long are removed.
    pub upload_ttl: Duration,
    /// Shared storage only: how long the digests a run means to remove stay marked (tombstoned)
    /// before they are checked again and removed. Must be longer than the longest time a
    /// request spends between its reuse check and its last write (see [`crate::gc_shared`]).
    pub tombstone_wait: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            grace_period: Duration::from_secs(3600),
            delete_untagged: false,
            upload_ttl: Duration::from_secs(86_400),
            tombstone_wait: crate::gc_shared::DEFAULT_TOMBSTONE_WAIT,
        }
    }
}

/// A data object removed (or that would be, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedBlob {
    /// The digest of its bytes.
    pub digest: String,
    /// The repository whose own copy it was, or `"shared"` for the deduplicated `blobs/` tree.
    pub repo: String,
    /// Its size.
    pub bytes: u64,
}

/// A repository's blob link removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedLink {
    /// Repository.
    pub repo: String,
    /// Linked digest.
    pub digest: String,
}

/// A manifest revision removed (`delete_untagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedManifest {
    /// Repository.
    pub repo: String,
    /// Manifest digest.
    pub digest: String,
}

/// A stale upload session removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedUpload {
    /// Repository.
    pub repo: String,
    /// Session id.
    pub id: String,
    /// Bytes the session held.
    pub bytes: u64,
}

/// What a GC run found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// True when nothing was removed (the lists say what would have been).
    pub dry_run: bool,
    /// Manifests found live (reachable from tags, or kept untagged).
    pub live_manifests: u64,
    /// Blob links found live.
    pub live_links: u64,
    /// Data objects removed.
    pub blobs: Vec<RemovedBlob>,
    /// Blob links removed.
    pub links: Vec<RemovedLink>,
    /// Manifests removed.
    pub manifests: Vec<RemovedManifest>,
    /// Upload sessions removed.
    pub uploads: Vec<RemovedUpload>,
    /// Bytes freed: removed data objects (each copy) and upload sessions.
    pub bytes_freed: u64,
    /// Unreferenced objects kept because they are younger than the grace period or in use.
    pub kept_young: u64,
    /// Bytes of the data objects among them (links and manifests hold no bytes of their own).
    #[serde(default)]
    pub kept_young_bytes: u64,
    /// Upload sessions found (removed or left open), and the bytes they held.
    #[serde(default)]
    pub upload_sessions: u64,
    /// Bytes of the upload sessions found.
    #[serde(default)]
    pub upload_session_bytes: u64,
    /// Sessions idle at least this long were removed (seconds).
    #[serde(default)]
    pub upload_ttl_secs: u64,
    /// Removals that failed (the objects stay; the next run retries).
    pub errors: Vec<String>,
    /// Wall time of the run, milliseconds.
    pub duration_ms: u64,
    /// Shared storage: the run was skipped because this replica holds the garbage collection
    /// lease (another replica is running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_lease_held_by: Option<String>,
    /// Shared storage: digests marked for removal in the first phase.
    #[serde(default)]
    pub tombstoned: u64,
    /// Shared storage: marked digests a request reused before the second phase (kept).
    #[serde(default)]
    pub reused: u64,
}

impl Store {
    /// Runs garbage collection (one run at a time; a second caller waits for the first).
    pub async fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _one_run = self.inner.gc_lock.lock().await;
        let started = Instant::now();
        if self.inner.driver.shared() {
            let mut report = self.gc_shared(opts).await?;
            self.finish_gc(opts, started, &mut report);
            return Ok(report);
        }
        let now = SystemTime::now();
        let cutoff = now.checked_sub(opts.grace_period).unwrap_or(UNIX_EPOCH);
        let listing = Listing::read(self.inner.driver.as_ref()).await?;
        let since = started.checked_sub(opts.grace_period);
        let marks = self.gc_mark(opts, &listing, cutoff, since).await;
        let mut run = Run::new(self, opts, cutoff, since, marks);
        run.report.live_manifests = run.marks.values().map(|m| m.manifests.len() as u64).sum();
        run.report.live_links = run.marks.values().map(|m| m.blobs.len() as u64).sum();
        if opts.delete_untagged {
            run.sweep_manifests(&listing).await;
        }
        run.sweep_links(&listing).await;
        run.sweep_local_data(&listing).await;
        run.sweep_shared_data(&listing).await;
        run.sweep_uploads(&listing, stale_before(opts, now)).await;
        let mut report = run.report;
        report.count_uploads(&listing);
        self.finish_gc(opts, started, &mut report);
        Ok(report)
    }

    /// Totals, counters and the log line of a finished run.
    fn finish_gc(&self, opts: &GcOptions, started: Instant, report: &mut GcReport) {
        report.dry_run = opts.dry_run;
        report.upload_ttl_secs = opts.upload_ttl.as_secs();
        report.bytes_freed = report.blobs.iter().map(|b| b.bytes).sum::<u64>()
            + report.uploads.iter().map(|u| u.bytes).sum::<u64>();
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Uses older than the grace period no longer protect anything.
        self.inner.in_use.prune(opts.grace_period);
        if !opts.dry_run && report.skipped_lease_held_by.is_none() {
            let st = &self.inner.stats;
            StoreStats::add(&st.gc_runs, 1);
            StoreStats::add(&st.gc_blobs_removed, report.blobs.len() as u64);
            StoreStats::add(&st.gc_manifests_removed, report.manifests.len() as u64);
            StoreStats::add(&st.gc_uploads_removed, report.uploads.len() as u64);
            StoreStats::add(&st.gc_bytes_freed, report.bytes_freed);
        }
        tracing::info!(
            dry_run = opts.dry_run,
            blobs = report.blobs.len(),
            links = report.links.len(),
            manifests = report.manifests.len(),
            uploads = report.uploads.len(),
            bytes_freed = report.bytes_freed,
            kept_young = report.kept_young,
            errors = report.errors.len(),
            duration_ms = report.duration_ms,
            tombstoned = report.tombstoned,
            reused = report.reused,
            skipped_lease_held_by = report.skipped_lease_held_by.as_deref(),
            "garbage collection finished"
        );
    }
}

/// Upload sessions last written before this are stale.
pub(crate) fn stale_before(opts: &GcOptions, now: SystemTime) -> SystemTime {
    now.checked_sub(opts.upload_ttl).unwrap_or(UNIX_EPOCH)
}

impl GcReport {
    /// Counts the upload sessions the listing found.
    pub(crate) fn count_uploads(&mut self, listing: &Listing) {
        self.upload_sessions = listing.uploads.len() as u64;
        self.upload_session_bytes = listing.uploads.values().map(|(b, _)| b).sum();
    }
}

/// What storage held when the run started.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Blob links: repository, digest, modification time.
    pub links: Vec<(String, Digest, SystemTime)>,
    /// Manifest revisions → modification time.
    pub revisions: HashMap<(String, Digest), SystemTime>,
    /// Repositories' own data copies: repository, digest, size, modification time.
    pub local: Vec<(String, Digest, u64, SystemTime)>,
    /// Shared data objects: digest, size, modification time.
    pub shared: Vec<(Digest, u64, SystemTime)>,
    /// Upload sessions (repository, id) → total size and latest modification.
    pub uploads: BTreeMap<(String, String), (u64, SystemTime)>,
    /// Tags: repository, tag name (shared storage only).
    pub tags: Vec<(String, String)>,
    /// Referrer links: repository, subject, referring manifest (shared storage only).
    pub referrers: Vec<(String, Digest, Digest)>,
}

/// Parses `blobs/<alg>/<fan>/<hex>`.
fn shared_digest(key: &str) -> Option<Digest> {
    let mut parts = key.split('/');
    let (Some(paths::BLOBS), Some(alg), Some(_fan), Some(hex), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let alg: Algorithm = alg.parse().ok()?;
    let digest = Digest::from_parts(alg, hex).ok()?;
    (paths::shared_data(&digest) == key).then_some(digest)
}

impl Listing {
    /// Lists `repositories/` and `blobs/`. Tags and referrer links are kept only on shared storage, where the mark reads them from
    /// here (in-process runs take them from the index).
    pub(crate) async fn read(driver: &dyn Driver) -> Result<Listing> {
        let from_storage = driver.shared();
        let mut out = Listing::default();
        for object in driver.walk(paths::REPOSITORIES).await? {
            match paths::parse_repo_key(&object.key) {
                Some(RepoKey::Layer { repo, digest }) => {
                    out.links.push((repo, digest, object.modified));
                }
                Some(RepoKey::Revision { repo, digest }) => {
                    out.revisions.insert((repo, digest), object.modified);
                }
                Some(RepoKey::LocalData { repo, digest }) => {
                    out.local.push((repo, digest, object.size, object.modified));
                }
                Some(RepoKey::Upload { repo, id }) => {
                    out.uploads
                        .insert((repo, id), (object.size, object.modified));
                }
                Some(RepoKey::Tag { repo, tag }) if from_storage => out.tags.push((repo, tag)),
                Some(RepoKey::Referrer {
                    repo,
                    subject,
                    referrer,
                }) if from_storage => out.referrers.push((repo, subject, referrer)),
                Some(RepoKey::Tag { .. } | RepoKey::Referrer { .. }) => {}
                None => {}
            }
        }
        for object in driver.walk(paths::BLOBS).await? {
            if let Some(digest) = shared_digest(&object.key) {
                out.shared.push((digest, object.size, object.modified));
            }
        }
        Ok(out)
    }
}
