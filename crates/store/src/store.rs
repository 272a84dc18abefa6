//! The registry store: semantics over a [`Driver`], plus the in-memory index and caches.
//!
//! Operations are split by resource: [`crate::blobs`], [`crate::uploads`],
//! [`crate::manifests`]; this module holds the shared state and `open`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ocireg_oci::Digest;

use crate::cache::ManifestCache;
use crate::driver::{Driver, FsDriver};
use crate::error::Result;
use crate::index::{Index, ReplicaCache, RepoSnapshot};
use crate::locks::KeyLocks;
use crate::uploads::Sessions;
use crate::ByteStream;

/// Memory for manifests kept in memory for fast GETs (bodies and bookkeeping).
const MANIFEST_CACHE_BYTES: usize = 8 << 20;
/// Shards of the digest and tag lock tables.
const LOCK_SHARDS: usize = 1024;

/// Store behaviour chosen by the caller (from the config's storage section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// One copy of each digest's bytes for the whole registry (`true`), or one per repository.
    pub dedupe: bool,
    /// Storage and artifact limits; `None` = no quota.
    pub quota: Option<crate::quota::QuotaOptions>,
    /// The free space new uploads must leave on the storage.
    pub space_reserve: crate::space::SpaceReserve,
    /// Shared storage only: how long a look that found no garbage collection running is
    /// trusted, sparing reusing requests their tombstone reads meanwhile. Must stay well below
    /// [`crate::GcOptions::tombstone_wait`] minus the longest request (see
    /// [`crate::gc_shared`]); zero looks every time.
    pub no_gc_seen_ttl: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            dedupe: true,
            quota: None,
            space_reserve: crate::space::SpaceReserve::Default,
            no_gc_seen_ttl: std::time::Duration::ZERO,
        }
    }
}

/// A blob being read: total size and the requested bytes.
pub struct BlobRead {
    /// Total size of the blob (not of the range).
    pub size: u64,
    /// The bytes (the whole blob, or the requested range).
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .finish()
    }
}

/// Outcome of a manifest put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPut {
    /// Digest of the stored bytes (the reference's digest, or sha256 for a tag put).
    pub digest: Digest,
    /// The manifest's subject, when it has one (the server answers `OCI-Subject`).
    pub subject: Option<Digest>,
}

/// A manifest as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The exact bytes that were put.
    pub body: Bytes,
}

/// The registry store. Cheap to clone; all clones share state.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub driver: Arc<dyn Driver>,
    pub opts: StoreOptions,
    pub index: Index,
    pub cache: ManifestCache,
    pub digest_locks: KeyLocks,
    pub tag_locks: KeyLocks,
    pub sessions: Sessions,
    pub stats: crate::stats::StoreStats,
    pub quota: crate::quota::QuotaState,
    /// One garbage collection at a time.
    pub gc_lock: tokio::sync::Mutex<()>,
    /// Digests just used or referenced by in-flight puts (GC keeps them).
    pub in_use: crate::inuse::InUse,
    /// The free-space reserve.
    pub space: crate::space::SpaceGuard,
    /// Tag versions and listings when replicas share the storage (unused otherwise).
    pub replica: ReplicaCache,
}

impl Store {
    /// Opens a store over `driver`, building the repository index from storage.
    pub async fn open(driver: Arc<dyn Driver>, opts: StoreOptions) -> Result<Store> {
        let started = std::time::Instant::now();
        let repos = crate::rebuild::rebuild(&driver).await?;
        let facts = crate::quota::scan(&driver, &repos).await?;
        tracing::info!(
            driver = driver.name(),
            repositories = repos.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store index built"
        );
        Ok(Store {
            inner: Arc::new(Inner {
                driver,
                opts,
                index: Index::from_repos(repos),
                cache: ManifestCache::new(MANIFEST_CACHE_BYTES),
                digest_locks: KeyLocks::new(LOCK_SHARDS),
                tag_locks: KeyLocks::new(LOCK_SHARDS),
                sessions: Sessions::default(),
                stats: crate::stats::StoreStats::default(),
                quota: crate::quota::QuotaState::new(facts),
                gc_lock: tokio::sync::Mutex::new(()),
                in_use: crate::inuse::InUse::default(),
                space: crate::space::SpaceGuard::default(),
                replica: ReplicaCache::default(),
            }),
        })
    }

    /// Opens a store on the filesystem driver rooted at `root` (created if missing).
    pub async fn open_filesystem(root: &Path, opts: StoreOptions) -> Result<Store> {
        let driver = FsDriver::open(root).await?;
        Store::open(Arc::new(driver), opts).await
    }

    /// The storage driver.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.inner.driver
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.opts
    }

    /// The per-digest lock table (commits and garbage collection share it).
    pub fn digest_locks(&self) -> &KeyLocks {
        &self.inner.digest_locks
    }

    /// Counters of background operations (GC, scrub).
    pub fn stats(&self) -> &crate::stats::StoreStats {
        &self.inner.stats
    }

    /// A copy of the repository index, by repository name.
    pub fn snapshot(&self) -> BTreeMap<String, RepoSnapshot> {
        self.inner.index.snapshot()
    }

    /// Number of repositories (with at least one tag, manifest or blob link).
    pub fn repository_count(&self) -> usize {
        self.inner.index.read_all(BTreeMap::len)
    }
}
