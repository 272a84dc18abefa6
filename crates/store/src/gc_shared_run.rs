//! The run of garbage collection on shared storage (the protocol: [`crate::gc_shared`]).

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};
use ocireg_oci::Digest;

use crate::blobs::new_session_id;
use crate::error::{Result, StoreError};
use crate::gc::{stale_before, GcOptions, GcReport, Listing};
use crate::gc_lease::{acquire, Acquired, Lease};
use crate::gc_mark::{Marks, Roots};
use crate::gc_plan::{plan, storage_views, Plan};
use crate::gc_shared::{forget_revision, PARALLELISM};
use crate::gc_sweep::Run;
use crate::store::Store;

/// Removals between two lease renewal checks.
const BATCH: usize = 256;

/// One removal of the second phase.
enum Removal {
    /// A revision and its referrer links (keys).
    Revision(String, Digest, Vec<String>),
    /// A blob link.
    Link(String, Digest),
    /// A repository's own copy, with its size.
    Local(String, Digest, u64),
    /// Shared data, with its size.
    Shared(Digest, u64),
}

impl Store {
    /// A garbage collection run on shared storage (see the module docs).
    pub(crate) async fn gc_shared(&self, opts: &GcOptions) -> Result<GcReport> {
        let driver = self.inner.driver.as_ref();
        let now = SystemTime::now();
        let cutoff = now.checked_sub(opts.grace_period).unwrap_or(UNIX_EPOCH);
        let since = Instant::now().checked_sub(opts.grace_period);
        if opts.dry_run {
            let listing = Listing::read(driver).await?;
            let (marks, first) = self.first_look(opts, &listing, cutoff, since).await?;
            let mut report = report_of(&marks, &first);
            planned_as_removed(&first, &mut report);
            self.sweep_stale_uploads(opts, &listing, now, &mut report)
                .await;
            return Ok(report);
        }
        let run = format!("pid {} run {}", std::process::id(), new_session_id());
        let mut lease = match acquire(driver, &run).await? {
            Acquired::Held(lease) => lease,
            Acquired::Busy { holder, expires_in } => {
                tracing::info!(holder = %holder, expires_in_secs = expires_in.as_secs(), "garbage collection skipped: another replica holds the lease");
                return Ok(GcReport {
                    skipped_lease_held_by: Some(holder),
                    ..GcReport::default()
                });
            }
        };
        let outcome = self
            .run_with_lease(opts, &mut lease, cutoff, since, now)
            .await;
        lease.release().await;
        outcome
    }

    async fn run_with_lease(
        &self,
        opts: &GcOptions,
        lease: &mut Lease<'_>,
        cutoff: SystemTime,
        since: Option<Instant>,
        now: SystemTime,
    ) -> Result<GcReport> {
        let driver = self.inner.driver.as_ref();
        self.clear_stale_tombstones().await?;
        let listing = Listing::read(driver).await?;
        let (marks, first) = self.first_look(opts, &listing, cutoff, since).await?;
        let mut report = report_of(&marks, &first);
        if !first.is_empty() {
            let run = lease.holder().to_owned();
            let tombstoned = first.digests();
            report.tombstoned = tombstoned.len() as u64;
            if let Err(e) = self.write_tombstones(&run, &tombstoned).await {
                self.remove_tombstones(&tombstoned).await;
                return Err(e);
            }
            let held = self
                .second_phase(opts, lease, (cutoff, since), &first, &mut report)
                .await;
            // With the lease lost another runner may own these keys now: leave them (its
            // start clears them), since removing a `deleting` one would let reuses through.
            if held {
                self.remove_tombstones(&tombstoned).await;
            }
        }
        self.sweep_stale_uploads(opts, &listing, now, &mut report)
            .await;
        Ok(report)
    }

    /// Marks from `listing` and plans the removals.
    async fn first_look(
        &self,
        opts: &GcOptions,
        listing: &Listing,
        cutoff: SystemTime,
        since: Option<Instant>,
    ) -> Result<(Marks, Plan)> {
        let views = storage_views(self.inner.driver.as_ref(), listing).await?;
        let roots = Roots {
            opts,
            listing,
            cutoff,
            since,
            candidates: None,
        };
        let marks = self.mark_views(&roots, views).await;
        let first = plan(opts, listing, &marks, cutoff, &|_| true);
        Ok((marks, first))
    }

    /// Waits, looks again, claims and removes. Returns false when the lease was lost.
    async fn second_phase(
        &self,
        opts: &GcOptions,
        lease: &mut Lease<'_>,
        (cutoff, since): (SystemTime, Option<Instant>),
        first: &Plan,
        report: &mut GcReport,
    ) -> bool {
        if let Err(e) = lease.hold_for(opts.tombstone_wait).await {
            report
                .errors
                .push(format!("stopped before removing anything: {e}"));
            return false;
        }
        let driver = self.inner.driver.as_ref();
        let looked = async {
            let listing = Listing::read(driver).await?;
            let views = storage_views(driver, &listing).await?;
            Ok::<_, StoreError>((listing, views))
        };
        let (listing, views) = match looked.await {
            Ok(found) => found,
            Err(e) => {
                report.errors.push(format!("second look at storage: {e}"));
                return true;
            }
        };
        let tombstoned = first.digests();
        let candidates: HashSet<(String, Digest)> = first.revisions.iter().cloned().collect();
        let mut roots = Roots {
            opts,
            listing: &listing,
            cutoff,
            since,
            candidates: Some(&candidates),
        };
        let marks = self.mark_views(&roots, views.clone()).await;
        let second =
            plan(opts, &listing, &marks, cutoff, &|d| tombstoned.contains(d)).within(first);
        if let Err(e) = lease.renew().await {
            report
                .errors
                .push(format!("stopped before removing anything: {e}"));
            return false;
        }
        let wanted = second.digests();
        let claimed = self.claim_all(lease.holder(), &wanted).await;
        report.reused = (tombstoned.len() - claimed.len()) as u64;
        let last = if claimed.len() == wanted.len() {
            second
        } else {
            // Revisions not claimed are roots again: what they reach stays.
            let claimable: HashSet<(String, Digest)> = second
                .revisions
                .iter()
                .filter(|(_, d)| claimed.contains(d))
                .cloned()
                .collect();
            roots.candidates = Some(&claimable);
            let marks = self.mark_views(&roots, views).await;
            plan(opts, &listing, &marks, cutoff, &|d| claimed.contains(d)).within(&second)
        };
        report.live_manifests = marks.values().map(|m| m.manifests.len() as u64).sum();
        report.live_links = marks.values().map(|m| m.blobs.len() as u64).sum();
        self.remove_planned(lease, &listing, &last, report).await
    }

    /// Removes stage by stage, checking the lease between batches. False when it was lost.
    async fn remove_planned(
        &self,
        lease: &mut Lease<'_>,
        listing: &Listing,
        plan: &Plan,
        report: &mut GcReport,
    ) -> bool {
        let mut subjects: HashMap<(&str, &Digest), Vec<&Digest>> = HashMap::new();
        for (repo, subject, referrer) in &listing.referrers {
            subjects
                .entry((repo.as_str(), referrer))
                .or_default()
                .push(subject);
        }
        let revisions = plan.revisions.iter().map(|(repo, d)| {
            let mut keys = vec![crate::paths::revision_link(repo, d)];
            for s in subjects.get(&(repo.as_str(), d)).into_iter().flatten() {
                keys.push(crate::paths::referrer_link(repo, s, d));
            }
            Removal::Revision(repo.clone(), d.clone(), keys)
        });
        let links = plan
            .links
            .iter()
            .map(|(repo, d)| Removal::Link(repo.clone(), d.clone()));
        let local = plan
            .local
            .iter()
            .map(|((repo, d), size)| Removal::Local(repo.clone(), d.clone(), *size));
        let shared = plan
            .shared
            .iter()
            .map(|(d, size)| Removal::Shared(d.clone(), *size));
        // Links before data: a crash in between leaves data nothing names, never a link
        // without its data.
        let stages: [Vec<Removal>; 4] = [
            revisions.collect(),
            links.collect(),
            local.collect(),
            shared.collect(),
        ];
        for mut stage in stages {
            while !stage.is_empty() {
                if let Err(e) = lease.renew_if_due().await {
                    report.errors.push(format!("stopped removing: {e}"));
                    return false;
                }
                let batch: Vec<Removal> = stage.drain(..stage.len().min(BATCH)).collect();
                let done: Vec<(Removal, std::result::Result<(), String>)> = stream::iter(batch)
                    .map(|r| async move {
                        let outcome = self.remove_one(&r).await;
                        (r, outcome)
                    })
                    .buffer_unordered(PARALLELISM)
                    .collect()
                    .await;
                for (removal, outcome) in done {
                    match outcome {
                        Ok(()) => record(report, &removal),
                        Err(e) => report.errors.push(e),
                    }
                }
            }
        }
        true
    }

    /// Deletes one removal's objects, then forgets them in this replica's index and quota.
    async fn remove_one(&self, removal: &Removal) -> std::result::Result<(), String> {
        let inner = &self.inner;
        let keys = match removal {
            Removal::Revision(_, _, keys) => keys.clone(),
            Removal::Link(repo, d) => vec![crate::paths::layer_link(repo, d)],
            Removal::Local(repo, d, _) => vec![crate::paths::local_data(repo, d)],
            Removal::Shared(d, _) => vec![crate::paths::shared_data(d)],
        };
        for key in keys {
            match inner.driver.delete(&key).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(format!("removing {key}: {e}")),
            }
        }
        let facts = &inner.quota.facts;
        match removal {
            Removal::Revision(repo, d, _) => inner.index.write(repo, |r| forget_revision(r, d)),
            Removal::Link(repo, d) => {
                inner.index.write(repo, |r| r.blobs.remove(d));
            }
            Removal::Local(repo, d, _) => {
                inner.index.write(repo, |r| r.local.remove(d));
                facts.write().forget(repo, d, crate::paths::DataLoc::Local);
            }
            Removal::Shared(d, _) => facts.write().forget("", d, crate::paths::DataLoc::Shared),
        }
        Ok(())
    }

    /// Removes upload sessions idle longer than the upload TTL (each under its session lock;
    /// the session's modification time is checked again before it goes).
    async fn sweep_stale_uploads(
        &self,
        opts: &GcOptions,
        listing: &Listing,
        now: SystemTime,
        report: &mut GcReport,
    ) {
        let mut sweep = Run::new(self, opts, UNIX_EPOCH, None, Marks::new());
        sweep.sweep_uploads(listing, stale_before(opts, now)).await;
        report.uploads = sweep.report.uploads;
        report.errors.extend(sweep.report.errors);
        report.count_uploads(listing);
    }
}

/// Lists a plan's removals in the report without making them (a dry run).
fn planned_as_removed(plan: &Plan, report: &mut GcReport) {
    let removals = plan
        .revisions
        .iter()
        .map(|(repo, d)| Removal::Revision(repo.clone(), d.clone(), Vec::new()))
        .chain(
            plan.links
                .iter()
                .map(|(repo, d)| Removal::Link(repo.clone(), d.clone())),
        )
        .chain(
            plan.local
                .iter()
                .map(|((repo, d), size)| Removal::Local(repo.clone(), d.clone(), *size)),
        )
        .chain(
            plan.shared
                .iter()
                .map(|(d, size)| Removal::Shared(d.clone(), *size)),
        );
    for removal in removals {
        record(report, &removal);
    }
}

/// A report with the first look's live counts and kept objects.
fn report_of(marks: &Marks, first: &Plan) -> GcReport {
    GcReport {
        live_manifests: marks.values().map(|m| m.manifests.len() as u64).sum(),
        live_links: marks.values().map(|m| m.blobs.len() as u64).sum(),
        kept_young: first.kept,
        kept_young_bytes: first.kept_bytes,
        ..GcReport::default()
    }
}

/// Adds a made removal to the report.
fn record(report: &mut GcReport, removal: &Removal) {
    use crate::gc::{RemovedBlob, RemovedLink, RemovedManifest};
    match removal {
        Removal::Revision(repo, d, _) => report.manifests.push(RemovedManifest {
            repo: repo.clone(),
            digest: d.to_string(),
        }),
        Removal::Link(repo, d) => report.links.push(RemovedLink {
            repo: repo.clone(),
            digest: d.to_string(),
        }),
        Removal::Local(repo, d, bytes) => report.blobs.push(RemovedBlob {
            digest: d.to_string(),
            repo: repo.clone(),
            bytes: *bytes,
        }),
        Removal::Shared(d, bytes) => report.blobs.push(RemovedBlob {
            digest: d.to_string(),
            repo: "shared".to_owned(),
            bytes: *bytes,
        }),
    }
}
