//! Sharded async locks keyed by any hashable value (digests, tags).
//!
//! The store holds the digest lock of a blob or manifest while it makes the bytes visible and
//! links them; garbage collection takes the same lock before deleting a digest's bytes, so a
//! dedupe link and a sweep never interleave. Keys hash onto a fixed set of shards: two keys
//! may share a shard (harmless, only less parallel), and code never holds two locks from one
//! table at once, so shards cannot deadlock.

use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// A fixed table of async mutexes indexed by key hash.
#[derive(Debug)]
pub struct KeyLocks {
    shards: Box<[Mutex<()>]>,
}

impl KeyLocks {
    /// A table with `shards` mutexes (at least one).
    pub fn new(shards: usize) -> KeyLocks {
        KeyLocks {
            shards: (0..shards.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for and takes the lock of `key`'s shard.
    pub async fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let len = self.shards.len() as u64;
        let at = usize::try_from(hasher.finish() % len).unwrap_or(0);
        match self.shards.get(at) {
            Some(m) => m.lock().await,
            None => self.shards[0].lock().await,
        }
    }
}
