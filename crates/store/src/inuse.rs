//! What garbage collection must not take away right now: digests a repository just used (a
//! blob committed, mounted or checked with `HEAD`, a manifest put or fetched by digest) and
//! digests an in-flight manifest put references.
//!
//! A client that learns a blob exists (its own push, or a `HEAD`) and then puts a manifest
//! referencing it must not see the blob collected in between, even when its link is older
//! than the grace period. So the commit and read paths [`InUse::touch`] what they use, and GC
//! treats anything touched within the grace period (or after the run started) as young.
//!
//! A manifest put [`InUse::pin`]s its references before it checks that the repository has them
//! and keeps the pin until the manifest is in the index. GC removes a link from the index only
//! inside [`InUse::remove_if_unused`], under the same mutex as pinning: either the put pins
//! first and GC keeps the link, or GC removes it first and the put sees it missing.
//!
//! A (repository, digest) pair is recorded as a 64-bit keyed hash, not as its name and digest:
//! the table gets an entry per blob and manifest pushed until the next GC prunes it, so its
//! entries are kept small. Two pairs sharing a hash can only make GC keep one of them longer
//! (a false "in use"), never remove anything early, and the hash key is random per process.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use ocireg_oci::Digest;
use parking_lot::Mutex;

/// The hash of a (repository, digest) pair.
type Key = u64;

#[derive(Debug, Default)]
struct State {
    /// Last use of (repository, digest).
    touched: HashMap<Key, Instant>,
    /// In-flight manifest puts referencing (repository, digest), counted.
    pinned: HashMap<Key, usize>,
}

/// Recently used and pinned (repository, digest) pairs.
#[derive(Debug, Default)]
pub(crate) struct InUse {
    state: Mutex<State>,
    keys: RandomState,
}

/// Keeps references pinned until dropped; after [`Pin::stored`] they then count as just used
/// (a GC run that marked before the manifest was indexed must still keep them). A failed put
/// leaves no trace, so bogus references cannot grow the table.
pub(crate) struct Pin<'a> {
    owner: &'a InUse,
    keys: Vec<Key>,
    stored: bool,
}

impl Pin<'_> {
    /// The manifest is in the index: its references count as used when the pin is dropped.
    pub(crate) fn stored(&mut self) {
        self.stored = true;
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut st = self.owner.state.lock();
        for key in self.keys.drain(..) {
            if let Some(n) = st.pinned.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    st.pinned.remove(&key);
                }
            }
            if self.stored {
                st.touched.insert(key, now);
            }
        }
    }
}

impl InUse {
    /// The table key of (repo, digest).
    fn key(&self, repo: &str, digest: &Digest) -> Key {
        self.keys.hash_one((repo, digest))
    }

    /// Records that `repo` just used `digest`.
    pub(crate) fn touch(&self, repo: &str, digest: &Digest) {
        let key = self.key(repo, digest);
        self.state.lock().touched.insert(key, Instant::now());
    }

    /// Pins `digests` of `repo` until the returned guard is dropped.
    pub(crate) fn pin<'a>(&'a self, repo: &str, digests: impl Iterator<Item = Digest>) -> Pin<'a> {
        let keys: Vec<Key> = digests.map(|d| self.key(repo, &d)).collect();
        let mut st = self.state.lock();
        for key in &keys {
            *st.pinned.entry(*key).or_insert(0) += 1;
        }
        drop(st);
        Pin {
            owner: self,
            keys,
            stored: false,
        }
    }

    /// True when (repo, digest) is pinned or was used after `since` (`None`: ever).
    fn busy(st: &State, key: &Key, since: Option<Instant>) -> bool {
        st.pinned.contains_key(key)
            || st
                .touched
                .get(key)
                .is_some_and(|at| since.is_none_or(|s| *at > s))
    }

    /// True when (repo, digest) is pinned or was used after `since` (`None`: ever).
    pub(crate) fn in_use(&self, repo: &str, digest: &Digest, since: Option<Instant>) -> bool {
        let key = self.key(repo, digest);
        Self::busy(&self.state.lock(), &key, since)
    }

    /// Runs `remove` (which takes the entry out of the index) unless (repo, digest) is in use
    /// since `since`; returns whether it ran. Pins wait for it, so no put slips in between.
    pub(crate) fn remove_if_unused<T>(
        &self,
        repo: &str,
        digest: &Digest,
        since: Option<Instant>,
        remove: impl FnOnce() -> Option<T>,
    ) -> Option<T> {
        let key = self.key(repo, digest);
        let st = self.state.lock();
        if Self::busy(&st, &key, since) {
            return None;
        }
        remove()
    }

    /// Forgets uses older than `max_age` (GC calls it once per run).
    pub(crate) fn prune(&self, max_age: Duration) {
        let now = Instant::now();
        self.state
            .lock()
            .touched
            .retain(|_, at| now.saturating_duration_since(*at) <= max_age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocireg_oci::Algorithm;

    fn digest(data: &[u8]) -> Digest {
        Digest::compute(Algorithm::Sha256, data)
    }

    #[test]
    fn uses_are_per_repository_and_digest() {
        let in_use = InUse::default();
        let (a, b) = (digest(b"a"), digest(b"b"));
        let before = Instant::now();
        in_use.touch("app", &a);
        assert!(in_use.in_use("app", &a, None));
        assert!(in_use.in_use("app", &a, Some(before)));
        assert!(!in_use.in_use("app", &b, None));
        assert!(!in_use.in_use("other", &a, None));
        assert!(!in_use.in_use("app", &a, Some(Instant::now())));
        std::thread::sleep(Duration::from_millis(2));
        in_use.prune(Duration::ZERO);
        assert!(!in_use.in_use("app", &a, None));
    }

    #[test]
    fn a_pin_holds_until_dropped_and_a_stored_one_leaves_a_use() {
        let in_use = InUse::default();
        let (a, b) = (digest(b"a"), digest(b"b"));
        let pin = in_use.pin("app", [a.clone()].into_iter());
        assert!(in_use.in_use("app", &a, Some(Instant::now())));
        assert_eq!(in_use.remove_if_unused("app", &a, None, || Some(())), None);
        drop(pin);
        assert!(!in_use.in_use("app", &a, None));
        assert_eq!(
            in_use.remove_if_unused("app", &a, None, || Some(())),
            Some(())
        );

        let mut pin = in_use.pin("app", [b.clone()].into_iter());
        pin.stored();
        drop(pin);
        assert!(in_use.in_use("app", &b, None));
        assert!(!in_use.in_use("app", &a, None));
    }
}
