//! Counters of the store's background operations (GC, scrub), read by the metrics endpoint.
//! Plain atomics: the operations increment them, readers take a consistent-enough snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since the store was opened.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Completed GC runs.
    pub gc_runs: AtomicU64,
    /// Blobs (data objects) GC removed.
    pub gc_blobs_removed: AtomicU64,
    /// Manifests GC removed (untagged removal).
    pub gc_manifests_removed: AtomicU64,
    /// Stale upload sessions GC removed.
    pub gc_uploads_removed: AtomicU64,
    /// Bytes GC freed.
    pub gc_bytes_freed: AtomicU64,
    /// Completed scrub runs.
    pub scrub_runs: AtomicU64,
    /// Objects scrub re-hashed.
    pub scrub_objects_checked: AtomicU64,
    /// Bytes scrub re-hashed.
    pub scrub_bytes_checked: AtomicU64,
    /// Objects whose bytes did not match their digest (quarantined).
    pub scrub_mismatches: AtomicU64,
}

impl StoreStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
