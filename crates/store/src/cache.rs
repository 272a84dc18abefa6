//! A bounded cache of manifest bytes keyed by digest.
//!
//! Content-addressed bytes never change, so an entry is never stale; repository membership is
//! always checked in the index before the cache is consulted. Eviction is first-in first-out
//! by total size, which is enough for small, hot manifests.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use ocireg_oci::Digest;
use parking_lot::Mutex;

/// Digest → bytes, at most `capacity` bytes in total.
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
            inner.bytes -= b.len();
            inner.order.retain(|d| d != digest);
        }
    }

    /// Caches `body` (bodies larger than a quarter of the capacity are not cached).
    pub(crate) fn insert(&self, digest: &Digest, body: &Bytes) {
        if body.len() > self.capacity / 4 {
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
        inner.bytes += body.len();
        while inner.bytes > self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.map.remove(&old) {
                inner.bytes -= b.len();
            }
        }
    }
}
