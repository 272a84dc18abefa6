//! Garbage collection on shared storage: several replicas on one bucket
//! ([`crate::Driver::shared`]), where no replica's index, locks or in-use table reach the others.
//!
//! A run:
//! 1. takes the lease ([`crate::gc_lease`]); a replica that finds it held skips its run (the
//!    report names the holder). Tombstones a dead runner left are removed first.
//! 2. lists storage and marks from it ([`crate::gc_plan`]): tags, revisions, referrer links and
//!    blob links as the bucket holds them; the candidates are what the in-process sweep would
//!    remove, older than the grace period.
//! 3. writes a tombstone per candidate digest (`pending`), then waits
//!    [`crate::GcOptions::tombstone_wait`], renewing the lease.
//! 4. lists and marks again; a candidate still unreferenced is claimed by a compare-and-swap of
//!    its tombstone from `pending` (of this run) to `deleting`. Revisions that could not be
//!    claimed become roots, and what they reach stays. Then revisions (with their referrer
//!    links), blob links, and data are removed, in that order, and the run's tombstones.
//!
//! A request that reuses a digest (blob `HEAD`/`GET`, mount, upload completion of existing
//! bytes, a manifest put referencing it) calls [`reusing`] before it looks at the digest. While
//! the lease shows no run (a look trusted for a short while, see `gc_may_be_running`) there is
//! no tombstone to meet; otherwise a
//! `pending` tombstone is turned into `cancelled` by a compare-and-swap (the claim then fails,
//! so nothing of that digest is removed), and a `deleting` one is waited out: the request goes
//! on once the run removed the digest and its tombstone, and finds the digest gone (after
//! [`REMOVAL_WAIT`] it fails with [`StoreError::Unavailable`], 503 with `Retry-After`). Then
//! this replica's index entries of the digest are checked against storage, so a link another
//! replica's run removed is not trusted.
//!
//! Why nothing acknowledged loses a digest it references: let a request reuse digest `X` at
//! time `r` and write its reference (link or revision) at `e`, with `e - r` below the wait.
//! If `e` is before the second listing, the second mark sees the reference and keeps `X`.
//! Otherwise `r > second listing - wait >= tombstone write`, so the request met the tombstone:
//! it cancelled it before the claim (then nothing of `X` goes), or met `deleting` and waited
//! for the removals to end (or failed), or found it already removed after the removals, and
//! then the index check sends it to storage, which no longer has `X`. Skipping the tombstone
//! reads while the lease shows no run keeps this: see `gc_may_be_running`.
//!
//! One tombstone object per digest, not one list per run: cancelling is then one conditional
//! write on a small object no other request contends for, where a shared list would make every
//! reusing request of every replica rewrite (and retry on) the same object, and would have to be
//! read whole by each of them.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use ocireg_oci::{Digest, ParsedManifest};
use serde::{Deserialize, Serialize};

use crate::driver::{Driver, Precondition};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// The default of [`crate::GcOptions::tombstone_wait`]. A reuse's window (from [`reusing`] to its last
/// write) is storage work only: the request's body has been received by then, so client stalls
/// (the server's read and write timeouts) do not count. It is a manifest put's writes, a
/// commit's link, or with dedupe off a mount's copy of the blob: ten minutes leave room for a
/// bucket that throttles and retries, and for copying several GB.
pub const DEFAULT_TOMBSTONE_WAIT: Duration = Duration::from_secs(600);

/// Storage requests a run makes concurrently.
pub(crate) const PARALLELISM: usize = 32;
/// Conditional writes a reusing request retries when the tombstone changed in between.
const ATTEMPTS: usize = 4;
/// The `Retry-After` of a request that met a digest being removed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a reusing request waits for a removal under way to end before it answers 503.
const REMOVAL_WAIT: Duration = Duration::from_secs(30);
/// How often it looks again meanwhile.
const REMOVAL_POLL: Duration = Duration::from_millis(100);

/// Where a tombstone's removal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// Written by the first phase; the second may claim it.
    Pending,
    /// A request reused the digest: the run keeps it.
    Cancelled,
    /// Claimed by the second phase: the digest's objects are being removed.
    Deleting,
}

/// A tombstone object's content. The run id makes every run's contents distinct, so a
/// compare-and-swap on a content-versioned driver never mistakes one run's for another's.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tombstone {
    run: String,
    state: State,
}

fn encode(run: &str, state: State) -> Bytes {
    let t = Tombstone {
        run: run.to_owned(),
        state,
    };
    Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
}

fn being_removed(digest: &Digest) -> StoreError {
    StoreError::Unavailable {
        message: format!("{digest} is being removed by garbage collection; retry the request"),
        retry_after: RETRY_AFTER,
    }
}

/// Called by every request that reuses `digests` in `repo`, before it checks them: cancels a
/// pending removal, fails while one is under way, and drops this replica's index entries that
/// storage no longer backs. Does nothing on unshared storage.
pub(crate) async fn reusing(store: &Store, repo: &str, digests: &[Digest]) -> Result<()> {
    if !store.inner.driver.shared() {
        return Ok(());
    }
    let running = gc_may_be_running(store).await?;
    let checks = digests.iter().map(|d| async move {
        if running {
            cancel(store.inner.driver.as_ref(), d).await?;
        }
        // Only after the cancel: a link seen before it could still be claimed and removed.
        revalidate(store, repo, d).await
    });
    futures_util::future::try_join_all(checks).await?;
    Ok(())
}

/// Whether a run may have tombstones out: the lease as last seen, a look that found no run
/// trusted for [`crate::StoreOptions::no_gc_seen_ttl`]. Safe because a run that takes the lease
/// after that look (at `L`) writes its tombstones later and looks again `tombstone_wait` (`W`)
/// after them: a request reusing a digest at `r <= L + ttl` whose last write is at `e < r + D`
/// is seen by that second look when `W > ttl + D` (the module's argument, with the reuse moved
/// back to `L`). The look is stamped with the time it started, never later.
async fn gc_may_be_running(store: &Store) -> Result<bool> {
    let ttl = store.options().no_gc_seen_ttl;
    let seen = &store.inner.replica.no_gc_seen;
    if seen.lock().is_some_and(|at| at.elapsed() < ttl) {
        return Ok(false);
    }
    let started = std::time::Instant::now();
    let running = crate::gc_lease::may_be_running(store.inner.driver.as_ref()).await?;
    if !running {
        *seen.lock() = Some(started);
    }
    Ok(running)
}

/// [`reusing`] for a manifest put: what it references and the manifest itself.
pub(crate) async fn reusing_manifest(
    store: &Store,
    repo: &str,
    parsed: &ParsedManifest,
    digest: &Digest,
) -> Result<()> {
    if !store.inner.driver.shared() {
        return Ok(());
    }
    let refs = parsed.blob_refs().chain(parsed.manifest_refs());
    let mut digests: Vec<Digest> = refs.map(|d| d.digest.clone()).collect();
    digests.push(digest.clone());
    digests.sort();
    digests.dedup();
    reusing(store, repo, &digests).await
}

/// Turns a pending tombstone of `digest` into a cancelled one. A tombstone being removed
/// (`deleting`) is waited out, up to [`REMOVAL_WAIT`]: once the run has removed the digest's
/// objects and its tombstones, the request goes on against what storage holds — nothing of the
/// digest — so a `HEAD` answers 404 and a finished upload stores its bytes anew, instead of
/// failing a request the registry can serve.
async fn cancel(driver: &dyn Driver, digest: &Digest) -> Result<()> {
    let key = crate::paths::gc_tombstone(digest);
    let started = std::time::Instant::now();
    let mut lost_races = 0;
    loop {
        let (content, version) = match driver.get_versioned(&key).await {
            Ok(found) => found,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let stone = serde_json::from_slice::<Tombstone>(&content).ok();
        let run = match &stone {
            Some(t) if t.state == State::Cancelled => return Ok(()),
            Some(t) if t.state == State::Deleting => {
                if started.elapsed() >= REMOVAL_WAIT {
                    return Err(being_removed(digest));
                }
                tokio::time::sleep(REMOVAL_POLL).await;
                continue;
            }
            Some(t) => t.run.clone(),
            None => String::new(),
        };
        let cancelled = encode(&run, State::Cancelled);
        match driver
            .put_if(&key, cancelled, Precondition::Matches(version))
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::PreconditionFailed { .. }) if lost_races + 1 < ATTEMPTS => {
                lost_races += 1;
            }
            Err(StoreError::PreconditionFailed { .. }) => return Err(being_removed(digest)),
            Err(e) => return Err(e),
        }
    }
}

async fn exists(driver: &dyn Driver, key: &str) -> Result<bool> {
    match driver.stat(key).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Drops this replica's index entries of `digest` in `repo` that storage no longer holds.
async fn revalidate(store: &Store, repo: &str, digest: &Digest) -> Result<()> {
    let inner = &store.inner;
    let driver = inner.driver.as_ref();
    let (blob, manifest) = inner
        .index
        .read(repo, |r| {
            (
                r.blobs.contains_key(digest),
                r.manifests.contains_key(digest),
            )
        })
        .unwrap_or((false, false));
    let blob_gone = blob && !exists(driver, &crate::paths::layer_link(repo, digest)).await?;
    let manifest_gone =
        manifest && !exists(driver, &crate::paths::revision_link(repo, digest)).await?;
    if blob_gone || manifest_gone {
        tracing::debug!(repo, %digest, blob_gone, manifest_gone, "index entry removed by another replica");
        inner.index.write(repo, |r| {
            if blob_gone {
                r.blobs.remove(digest);
            }
            if manifest_gone {
                forget_revision(r, digest);
            }
            if !r.blobs.contains_key(digest) && !r.manifests.contains_key(digest) {
                r.local.remove(digest);
            }
        });
    }
    Ok(())
}

/// Removes a revision and its referrer entries from a repository's index.
pub(crate) fn forget_revision(r: &mut crate::index::Repo, digest: &Digest) {
    r.manifests.remove(digest);
    r.referrers.retain(|_, set| {
        set.remove(digest);
        !set.is_empty()
    });
}

impl Store {
    /// Removes every tombstone in storage (those of a runner that died; the lease is held).
    pub(crate) async fn clear_stale_tombstones(&self) -> Result<()> {
        let driver = self.inner.driver.as_ref();
        let stale = driver.walk(&crate::paths::gc_tombstones()).await?;
        let digests: BTreeSet<Digest> = stale
            .iter()
            .filter_map(|o| crate::paths::parse_gc_tombstone(&o.key))
            .collect();
        if !stale.is_empty() {
            tracing::info!(
                tombstones = stale.len(),
                "removing tombstones a previous garbage collection left"
            );
        }
        self.remove_tombstones(&digests).await;
        Ok(())
    }

    pub(crate) async fn write_tombstones(
        &self,
        run: &str,
        digests: &BTreeSet<Digest>,
    ) -> Result<()> {
        let driver = self.inner.driver.as_ref();
        let content = encode(run, State::Pending);
        // Owned items: a stream over borrowed ones would make the run's future not `Send`.
        let keys: Vec<String> = digests.iter().map(crate::paths::gc_tombstone).collect();
        let written: Vec<Result<()>> = stream::iter(keys)
            .map(|key| {
                let content = content.clone();
                async move { driver.put_content(&key, content).await }
            })
            .buffer_unordered(PARALLELISM)
            .collect()
            .await;
        written.into_iter().collect()
    }

    pub(crate) async fn remove_tombstones(&self, digests: &BTreeSet<Digest>) {
        let driver = self.inner.driver.as_ref();
        let keys: Vec<String> = digests.iter().map(crate::paths::gc_tombstone).collect();
        stream::iter(keys)
            .for_each_concurrent(PARALLELISM, |key| async move {
                match driver.delete(&key).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => tracing::warn!(key, error = %e, "could not remove a tombstone"),
                }
            })
            .await;
    }

    /// Claims the tombstones of `digests` for removal; returns those claimed.
    pub(crate) async fn claim_all(&self, run: &str, digests: &BTreeSet<Digest>) -> HashSet<Digest> {
        let driver = self.inner.driver.as_ref();
        stream::iter(digests.iter().cloned().collect::<Vec<_>>())
            .map(|d| async move { claim(driver, run, &d).await.then_some(d) })
            .buffer_unordered(PARALLELISM)
            .filter_map(|d| async move { d })
            .collect()
            .await
    }
}

/// Claims `digest`'s tombstone if it is still this run's and pending.
async fn claim(driver: &dyn Driver, run: &str, digest: &Digest) -> bool {
    let key = crate::paths::gc_tombstone(digest);
    let (content, version) = match driver.get_versioned(&key).await {
        Ok(found) => found,
        Err(e) => {
            if !e.is_not_found() {
                tracing::warn!(key, error = %e, "could not read a tombstone; keeping its digest");
            }
            return false;
        }
    };
    let ours = serde_json::from_slice::<Tombstone>(&content)
        .is_ok_and(|t| t.run == run && t.state == State::Pending);
    if !ours {
        return false;
    }
    let deleting = encode(run, State::Deleting);
    driver
        .put_if(&key, deleting, Precondition::Matches(version))
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::MemoryDriver;
    use crate::paths::tests::d;

    async fn pending(driver: &MemoryDriver, run: &str, digest: &Digest) {
        let key = crate::paths::gc_tombstone(digest);
        driver
            .put_content(&key, encode(run, State::Pending))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_cancel_beats_a_later_claim_and_a_claim_refuses_a_later_reuse() {
        let driver = MemoryDriver::shared_by_replicas();
        let (a, b, c) = (d('a'), d('b'), d('c'));
        pending(&driver, "run 1", &a).await;
        pending(&driver, "run 1", &b).await;
        cancel(&driver, &a).await.unwrap();
        assert!(!claim(&driver, "run 1", &a).await);

        assert!(claim(&driver, "run 1", &b).await);
        let refused = cancel(&driver, &b).await.unwrap_err();
        assert!(refused.retry_after().is_some(), "{refused:?}");

        // No tombstone: nothing to cancel; another run's pending one is not ours to claim.
        cancel(&driver, &c).await.unwrap();
        pending(&driver, "run 2", &c).await;
        assert!(!claim(&driver, "run 1", &c).await);
        assert!(claim(&driver, "run 2", &c).await);
    }
}
