//! Registry storage: a small driver trait (filesystem, in-memory) and registry semantics over
//! it: blobs, uploads, manifests, tags, referrers.
//!
//! - [`driver`]: the ~10-method object interface, the filesystem and in-memory drivers, and
//!   the shared conformance suite.
//! - [`paths`]: the one module that owns the storage layout (and documents crash safety).
//! - [`Store`]: registry semantics (every blob hashed while it streams in and verified before
//!   it becomes visible; manifests validated and stored byte-for-byte; tags, referrers) over
//!   an in-memory index rebuilt from storage at open.

mod blobs;
mod cache;
pub mod driver;
pub mod error;
mod index;
mod ingest;
pub mod locks;
mod manifests;
pub mod paths;
mod rebuild;
mod store;
mod uploads;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

pub use driver::{Driver, FileWriter, FsDriver, MemoryDriver, ObjectMeta};
pub use error::StoreError;
pub use index::{ManifestMeta, RepoSnapshot};
pub use locks::KeyLocks;
pub use store::{BlobRead, ManifestPut, Store, StoreOptions, StoredManifest};

/// A stream of body bytes (request bodies in, blob contents out).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
