//! A bounded cache of manifest bytes keyed by digest.
//!
//! Content-addressed bytes never change, so an entry is never stale; repository membership is
//! always checked in the index before the cache is consulted. Eviction is first-in first-out
//! by total size, which is enough for small, hot manifests. The size of an entry counts its
//! bookkeeping too ([`ENTRY_OVERHEAD`]): manifests are small, so the map slot, the queue slot
//! and the buffer's header are a large share of what an entry really costs, and the capacity
//! bounds the memory the cache holds, not just the bytes of the bodies.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use ocireg_oci::Digest;
use parking_lot::Mutex;

/// Memory an entry costs beyond its body: its map slot (digest and buffer handle, at the
/// map's load factor), its queue slot and the buffer's shared header once it was cloned.
const ENTRY_OVERHEAD: usize = 160;

/// What an entry with `body_len` bytes of body counts against the capacity.
fn cost(body_len: usize) -> usize {
    body_len + ENTRY_OVERHEAD
}

/// Digest → bytes, at most `capacity` bytes in total (bookkeeping included).
#[derive(Debug)]
pub(crate) struct ManifestCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Digest, Bytes>,
    order: VecDeque<Digest>,
    bytes: usize,
}

impl ManifestCache {
    /// An empty cache holding at most `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> ManifestCache {
        ManifestCache {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    /// The cached bytes of `digest`.
    pub(crate) fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.lock().map.get(digest).cloned()
    }

    /// Drops the cached bytes of `digest` (scrub found its stored bytes corrupt).
    pub(crate) fn remove(&self, digest: &Digest) {
        let mut inner = self.inner.lock();
        if let Some(b) = inner.map.remove(digest) {
            inner.bytes -= cost(b.len());
            inner.order.retain(|d| d != digest);
        }
    }

    /// Caches `body` (bodies larger than a quarter of the capacity are not cached).
    pub(crate) fn insert(&self, digest: &Digest, body: &Bytes) {
        if cost(body.len()) > self.capacity / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.map.contains_key(digest) {
            return;
        }
        // An exact-size copy: `body` is often a slice of a connection's read buffer, and
        // keeping the slice would pin the whole buffer (tens of KiB per cached manifest).
        inner
            .map
            .insert(digest.clone(), Bytes::copy_from_slice(body));
        inner.order.push_back(digest.clone());
        inner.bytes += cost(body.len());
        while inner.bytes > self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.map.remove(&old) {
                inner.bytes -= cost(b.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocireg_oci::Algorithm;

    fn entry(i: u32, len: usize) -> (Digest, Bytes) {
        let body = Bytes::from(vec![0u8; len]);
        (Digest::compute(Algorithm::Sha256, &i.to_le_bytes()), body)
    }

    #[test]
    fn bookkeeping_counts_against_the_capacity() {
        let cache = ManifestCache::new(10 * cost(100));
        let entries: Vec<_> = (0..20).map(|i| entry(i, 100)).collect();
        for (d, body) in &entries {
            cache.insert(d, body);
        }
        let kept: Vec<bool> = entries
            .iter()
            .map(|(d, _)| cache.get(d).is_some())
            .collect();
        // First in, first out: exactly the last ten fit.
        assert_eq!(kept.iter().filter(|k| **k).count(), 10);
        assert!(kept[10..].iter().all(|k| *k));
        assert_eq!(cache.inner.lock().bytes, 10 * cost(100));
        let (d, _) = &entries[15];
        cache.remove(d);
        assert!(cache.get(d).is_none());
        assert_eq!(cache.inner.lock().bytes, 9 * cost(100));
    }

    #[test]
    fn large_bodies_are_not_cached() {
        let cache = ManifestCache::new(4 * cost(1000));
        let (d, body) = entry(1, 1001);
        cache.insert(&d, &body);
        assert!(cache.get(&d).is_none());
        let (d, body) = entry(2, 1000);
        cache.insert(&d, &body);
        assert_eq!(cache.get(&d), Some(body));
    }
}
