//! Scrub: re-hashes every stored data object (shared blobs and manifests under `blobs/`, and
//! per-repository copies under `repositories/<name>/_blobs/`) at a bounded read rate, and
//! quarantines the ones whose bytes no longer match their digest.
//!
//! A mismatch (or an object that cannot be read) is checked once more under the digest's lock
//! (commits and garbage collection take the same lock, so a concurrent replacement is not
//! mistaken for corruption), then moved to `quarantine/<unix seconds>/<original key>` (see
//! [`crate::paths::quarantine`]). Its links stay: the repositories that had it now answer
//! `BLOB_UNKNOWN` / `MANIFEST_UNKNOWN` for it (the data is missing, also after a restart,
//! since nothing under `quarantine/` is ever read), and pushing the same content again
//! restores it. Quarantined bytes are not counted in usage.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use ocireg_oci::{Digest, DigestHasher};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::paths::{self, DataLoc, RepoKey};
use crate::stats::StoreStats;
use crate::store::Store;

/// How a scrub runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubOptions {
    /// Read rate bound in bytes per second (0 = unbounded).
    pub rate_bytes_per_sec: u64,
}

impl Default for ScrubOptions {
    fn default() -> Self {
        ScrubOptions {
            rate_bytes_per_sec: 64 << 20,
        }
    }
}

/// One corrupt (or unreadable) object scrub found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubFinding {
    /// The object's storage key before quarantine.
    pub key: String,
    /// The digest the object is stored under (what its bytes should hash to).
    pub expected: Digest,
    /// What its bytes hash to; `None` when they could not be read.
    pub actual: Option<Digest>,
    /// What is wrong, in words.
    pub problem: String,
    /// Repositories that read this object (they now answer unknown for the digest).
    pub repositories: Vec<String>,
    /// Where the object was moved; `None` if moving it failed (see the report's errors).
    pub quarantined_to: Option<String>,
}

/// What a scrub run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    /// Data objects re-hashed.
    pub objects_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Corrupt or unreadable objects, each quarantined.
    pub findings: Vec<ScrubFinding>,
    /// Problems that did not stop the run (an object that could not be moved, ...).
    pub errors: Vec<String>,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
}

/// Keeps a run's reads at or under a byte rate by sleeping.
struct Pacer {
    rate: u64,
    started: Instant,
    done: u64,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            rate,
            started: Instant::now(),
            done: 0,
        }
    }

    async fn consumed(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.done as f64 / self.rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Outcome of hashing one object.
enum Hashed {
    /// Its bytes hash to this digest.
    Digest(Digest, u64),
    /// It is gone (deleted meanwhile): nothing to report.
    Gone,
    /// It could not be read.
    Unreadable(String),
}

/// A data object to check: key, the repository owning a per-repository copy, digest.
struct Target {
    key: String,
    local_repo: Option<String>,
    digest: Digest,
}

impl Store {
    /// Re-hashes every data object at `opts.rate_bytes_per_sec` and quarantines mismatches.
    pub async fn scrub(&self, opts: &ScrubOptions) -> Result<ScrubReport> {
        let started = Instant::now();
        let driver = &self.inner.driver;
        let mut targets = Vec::new();
        for object in driver.walk(paths::BLOBS).await? {
            if let Some(digest) = paths::parse_shared_data(&object.key) {
                targets.push(Target {
                    key: object.key,
                    local_repo: None,
                    digest,
                });
            }
        }
        for object in driver.walk(paths::REPOSITORIES).await? {
            if let Some(RepoKey::LocalData { repo, digest }) = paths::parse_repo_key(&object.key) {
                targets.push(Target {
                    key: object.key,
                    local_repo: Some(repo),
                    digest,
                });
            }
        }

        let mut report = ScrubReport::default();
        let mut pacer = Pacer::new(opts.rate_bytes_per_sec);
        let stats = &self.inner.stats;
        for target in targets {
            let hashed = self.hash(&target, Some(&mut pacer)).await;
            match &hashed {
                Hashed::Gone => continue,
                Hashed::Digest(actual, size) => {
                    report.objects_checked += 1;
                    report.bytes_checked += size;
                    StoreStats::add(&stats.scrub_objects_checked, 1);
                    StoreStats::add(&stats.scrub_bytes_checked, *size);
                    if *actual == target.digest {
                        continue;
                    }
                }
                Hashed::Unreadable(_) => {
                    report.objects_checked += 1;
                    StoreStats::add(&stats.scrub_objects_checked, 1);
                }
            }
            if let Some(finding) = self.confirm_and_quarantine(&target, &mut report).await {
                StoreStats::add(&stats.scrub_mismatches, 1);
                report.findings.push(finding);
            }
        }
        StoreStats::add(&stats.scrub_runs, 1);
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            objects = report.objects_checked,
            bytes = report.bytes_checked,
            findings = report.findings.len(),
            elapsed_ms = report.elapsed_ms,
            "scrub finished"
        );
        Ok(report)
    }

    /// Hashes one object with its digest's algorithm, paced when a pacer is given.
    async fn hash(&self, target: &Target, mut pacer: Option<&mut Pacer>) -> Hashed {
        let (_, mut body) = match self.inner.driver.reader(&target.key, 0, None).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Hashed::Gone,
            Err(e) => return Hashed::Unreadable(e.to_string()),
        };
        let mut hasher = DigestHasher::new(target.digest.algorithm());
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    if let Some(p) = pacer.as_deref_mut() {
                        p.consumed(chunk.len() as u64).await;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Hashed::Gone,
                Err(e) => return Hashed::Unreadable(e.to_string()),
            }
        }
        Hashed::Digest(hasher.finish(), size)
    }

    /// Re-checks a suspect object under its digest lock and quarantines it if still bad.
    async fn confirm_and_quarantine(
        &self,
        target: &Target,
        report: &mut ScrubReport,
    ) -> Option<ScrubFinding> {
        let digest = &target.digest;
        let _guard = self.inner.digest_locks.lock(digest).await;
        let (actual, problem) = match self.hash(target, None).await {
            Hashed::Gone => return None,
            Hashed::Digest(actual, _) if actual == *digest => return None,
            Hashed::Digest(actual, _) => {
                let problem = format!("bytes hash to {actual}");
                (Some(actual), problem)
            }
            Hashed::Unreadable(e) => (None, format!("unreadable: {e}")),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let to = paths::quarantine(&target.key, now);
        let quarantined_to = match self.inner.driver.move_object(&target.key, &to).await {
            Ok(()) => Some(to),
            Err(e) => {
                report
                    .errors
                    .push(format!("quarantining {}: {e}", target.key));
                None
            }
        };
        let repositories = self.forget_data(target, quarantined_to.is_some());
        tracing::warn!(
            key = %target.key,
            expected = %digest,
            actual = actual.as_ref().map(ToString::to_string).unwrap_or_default(),
            repositories = ?repositories,
            quarantined_to = quarantined_to.as_deref().unwrap_or("-"),
            "scrub: stored object does not match its digest"
        );
        Some(ScrubFinding {
            key: target.key.clone(),
            expected: digest.clone(),
            actual,
            problem,
            repositories,
            quarantined_to,
        })
    }

    /// The repositories reading `target`; when `moved`, forgets everything known about its
    /// bytes (sizes, metadata, cached manifest) so the next request finds them missing.
    fn forget_data(&self, target: &Target, moved: bool) -> Vec<String> {
        let digest = &target.digest;
        let (loc, owner) = match &target.local_repo {
            Some(repo) => (DataLoc::Local, repo.as_str()),
            None => (DataLoc::Shared, ""),
        };
        let repositories: Vec<String> = self.inner.index.read_all(|repos| {
            repos
                .iter()
                .filter(|(name, r)| {
                    (r.blobs.contains_key(digest) || r.manifests.contains_key(digest))
                        && r.loc(digest) == loc
                        && (loc == DataLoc::Shared || name.as_str() == owner)
                })
                .map(|(name, _)| name.clone())
                .collect()
        });
        if !moved {
            return repositories;
        }
        self.inner.quota.facts.write().forget(owner, digest, loc);
        for name in &repositories {
            self.inner.index.write(name, |r| {
                if let Some(size) = r.blobs.get_mut(digest) {
                    *size = None;
                }
                if let Some(meta) = r.manifests.get_mut(digest) {
                    *meta = None;
                }
            });
        }
        self.inner.cache.remove(digest);
        repositories
    }

    /// True when the data object of `digest` at `loc` for `repo` is stored (not quarantined).
    pub(crate) fn data_present(&self, repo: &str, digest: &Digest, loc: DataLoc) -> bool {
        self.inner
            .quota
            .facts
            .read()
            .physical(repo, digest, loc)
            .is_some()
    }
}
