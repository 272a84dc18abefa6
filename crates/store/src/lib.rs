//! Registry storage: a small driver trait (filesystem, in-memory) and registry semantics over
//! it: blobs, uploads, manifests, tags, referrers.
//!
//! - [`driver`]: the ~10-method object interface, the filesystem and in-memory drivers, and
//!   the shared conformance suite.
//! - [`paths`]: the one module that owns the storage layout (and documents crash safety).
//! - [`Store`]: registry semantics over an in-memory index rebuilt from storage at open.
//!
//! Semantics (OCI Distribution Spec v1.1, as CNCF Distribution):
//! - Blobs are hashed with their digest's algorithm (sha256 or sha512) while they stream in
//!   and verified before they become visible; a mismatch is `DIGEST_INVALID` and leaves
//!   nothing. A repository sees a blob only once it is linked there (push, mount). With dedupe
//!   there is one copy of each digest's bytes; committing bytes that already exist drops the
//!   upload. Commits of one digest serialize on a per-digest lock, which garbage collection
//!   takes too.
//! - Upload sessions are resumable across requests and restarts; a chunk must start at the
//!   current offset (`RANGE_INVALID`, 416). [`UploadWatch`]ers are told when sessions open
//!   and end.
//! - `manifest_put` validates with `ocireg_oci::parse_manifest`; every config/layer blob must be
//!   linked in the repository (foreign/non-distributable layers with URLs excepted) and every
//!   index child manifest must exist there, else `MANIFEST_BLOB_UNKNOWN` with the digest in the
//!   detail. A put by digest must match the body under that digest's algorithm
//!   (`DIGEST_INVALID`); a tag put is addressed by sha256. Bytes are stored as received and
//!   returned byte-for-byte with the recorded media type. A `subject` registers the manifest
//!   as a referrer of that digest (the subject need not exist).
//! - Tag moves are atomic; deleting a manifest by digest removes its tags and referrer entry.
//! - Durability: see [`paths`] (write order, fsyncs, repairs at open).
//!
//! One process per storage root: opening the filesystem driver clears its temp directory.

mod blobs;
mod cache;
pub mod driver;
pub mod error;
mod gc;
mod gc_lease;
mod gc_mark;
mod gc_plan;
mod gc_shared;
mod gc_shared_run;
mod gc_sweep;
mod index;
mod ingest;
mod inuse;
pub mod locks;
mod manifests;
pub mod paths;
mod quota;
mod rebuild;
mod scrub;
mod search;
mod space;
pub mod stats;
mod store;
mod uploads;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

pub use driver::{Driver, FileWriter, FsDriver, MemoryDriver, ObjectMeta, Publication};
pub use error::StoreError;
pub use gc::{GcOptions, GcReport, RemovedBlob, RemovedLink, RemovedManifest, RemovedUpload};
pub use index::RepoSnapshot;
pub use locks::KeyLocks;
pub use ocireg_sys::Space;
pub use quota::{namespace_of, NamespaceLimit, NamespaceUsage, QuotaOptions, Usage};
pub use scrub::{ScrubFinding, ScrubOptions, ScrubReport};
pub use search::{SearchHit, SearchPage, SearchQuery};
pub use space::{SpaceReport, SpaceReserve};
pub use stats::StoreStats;
pub use store::{BlobRead, ManifestPut, Store, StoreOptions, StoredManifest};
pub use uploads::{Chunk, UploadWatch};

/// A stream of body bytes (request bodies in, blob contents out).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
