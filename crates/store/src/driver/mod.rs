//! The storage driver: a small key/value object interface every backend implements.
//!
//! Keys are `/`-separated relative names (`blobs/sha256/ab/ab12…`). Components are non-empty,
//! never `.`/`..`, never start with `.` (drivers keep private state such as temp files under
//! dot-names, which are therefore unreachable and never listed) and never contain `\` or NUL.
//! "Directories" are implied by key prefixes, as in an object store: nothing in this trait
//! assumes local paths or an atomic rename, so an S3/Azure driver can implement it with
//! put/get/list/copy/delete and multipart uploads.
//!
//! Contract (checked for every driver by [`conformance`]):
//! - [`Driver::put_content`] is atomic (a reader sees the old object or the new one, never a
//!   torn one) and durable when it returns.
//! - [`Driver::move_object`] makes the source's committed bytes visible under the destination
//!   atomically (filesystem: rename; object store: server-side copy, then delete).
//! - [`Driver::publish`] is `move_object` then `put_ordered` of the blob's links, with the
//!   bytes' sync passed in so a journaling driver can overlap them (see its docs).
//! - A [`FileWriter`] is for large, resumable scratch objects (upload sessions): bytes are
//!   appended across requests, `commit` makes the bytes written durable, `close` only
//!   flushes. A writer's object itself need not survive a crash (its directory entry is not
//!   synced): it becomes durably visible by a [`Driver::move_object`] after `commit`.
//! - [`Driver::put_if`] is a compare-and-swap: of concurrent conditional writes on one key
//!   made against the same version (or absence), at most one succeeds, whichever process makes
//!   it, when [`Driver::shared`] says other processes write the storage too.

pub mod conformance;
pub mod fs;
pub mod memory;
pub mod object;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use ocireg_oci::Digest;

use crate::error::{Result, StoreError};
use crate::ByteStream;

pub use fs::FsDriver;
pub use memory::MemoryDriver;
pub use object::{AzureOptions, ObjectBackend, ObjectDriver, S3Options};

/// Size and modification time of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: SystemTime,
}

/// An object's version, for compare-and-swap with [`Driver::put_if`]: an ETag on an object
/// store, a digest of the content on local drivers. Opaque; equal only for the same version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub String);

impl Version {
    /// The version local drivers give `content`: its SHA-256 (the same bytes are the same
    /// version, which is all a compare-and-swap on a value needs).
    pub fn of_content(content: &[u8]) -> Version {
        Version(
            Digest::compute(ocireg_oci::Algorithm::Sha256, content)
                .hex()
                .to_string(),
        )
    }
}

/// The condition of a [`Driver::put_if`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No object exists under the key (create-if-absent).
    Absent,
    /// The object exists at this version (compare-and-swap).
    Matches(Version),
}

/// A key/value object store with just enough operations for a registry.
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs (`"filesystem"`, `"memory"`).
    fn name(&self) -> &'static str;

    /// Size and free space of the storage, when the driver can tell (a filesystem can; an
    /// object store has no such thing).
    async fn space(&self) -> Result<Option<ocireg_sys::Space>> {
        Ok(None)
    }

    /// Reads a whole (small) object.
    async fn get_content(&self, key: &str) -> Result<Bytes>;

    /// Stores a whole (small) object, replacing any previous one atomically and durably.
    async fn put_content(&self, key: &str, content: Bytes) -> Result<()>;

    /// Reads a whole (small) object and its current version.
    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version)>;

    /// Stores a whole (small) object like [`Driver::put_content`], but only if `condition`
    /// holds at the moment of the write; returns the new version. Otherwise nothing changes
    /// and the error is [`StoreError::PreconditionFailed`].
    async fn put_if(&self, key: &str, content: Bytes, condition: Precondition) -> Result<Version>;

    /// Reads a whole (small) object unless it is still at version `known`: `Ok(None)` when
    /// unchanged, else its content and current version (an object store answers a conditional
    /// GET with `If-None-Match` as 304 without a body, which is what makes revalidating a
    /// cached tag on every read cheap). Default: [`Driver::get_versioned`] and a comparison.
    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Option<(Bytes, Version)>> {
        let (content, version) = self.get_versioned(key).await?;
        Ok((version != *known).then_some((content, version)))
    }

    /// Whether other processes may read and write the same storage at the same time (replicas
    /// on one bucket): the store then treats what it holds in memory as a cache to revalidate,
    /// never as the truth. Local drivers are owned by one process (`false`).
    fn shared(&self) -> bool {
        false
    }

    /// Stores a small object that need not survive a crash (an upload session's marker): no
    /// syncs, and a crash may leave it torn or absent. Default: [`Driver::put_content`].
    async fn put_scratch(&self, key: &str, content: Bytes) -> Result<()> {
        self.put_content(key, content).await
    }

    /// Stores small objects in ordered groups. Each object is replaced atomically; all are
    /// durable when this returns (a journaling driver may instead guarantee that opening it
    /// after a crash restores them all); no object of a group becomes visible before every
    /// object of the earlier groups is durably visible (or, journaled, restorable). Drivers override it to overlap the syncs of
    /// independent writes (the default writes group by group, each group concurrently).
    async fn put_ordered(&self, groups: Vec<Vec<(String, Bytes)>>) -> Result<()> {
        for group in groups {
            futures_util::future::try_join_all(
                group
                    .into_iter()
                    .map(|(key, content)| async move { self.put_content(&key, content).await }),
            )
            .await?;
        }
        Ok(())
    }

    /// Streams `len` bytes (all remaining when `None`) from `offset`; returns the object's
    /// total size and the stream. An offset past the end, or a length reaching past it, is
    /// [`StoreError::RangeInvalid`].
    async fn reader(&self, key: &str, offset: u64, len: Option<u64>) -> Result<(u64, ByteStream)>;

    /// The object as an open local file (its size is the object's), for drivers that keep
    /// objects in files: the caller may then let the kernel move the bytes (`sendfile` to a
    /// socket) instead of streaming them through [`Driver::reader`]. `Ok(None)` (the default)
    /// for drivers without local files; for those with them, an absent object is
    /// [`StoreError::NotFound`].
    async fn open_file(&self, key: &str) -> Result<Option<std::fs::File>> {
        validate_key(key)?;
        Ok(None)
    }

    /// Opens a writer on `key`: with `append` it continues after the existing bytes (an absent
    /// object counts as empty), without it the object is truncated.
    async fn writer(&self, key: &str, append: bool) -> Result<Box<dyn FileWriter>>;

    /// Size and modification time of an object (never of a "directory").
    async fn stat(&self, key: &str) -> Result<ObjectMeta>;

    /// Direct children of `prefix` (objects and "directories"), as full keys, sorted.
    /// An absent prefix gives an empty list.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Every object below `prefix` (recursively), sorted by key. Absent prefix: empty.
    async fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Moves an object to a new key (replacing what is there), atomically and durably.
    async fn move_object(&self, from: &str, to: &str) -> Result<()>;

    /// Makes a writer's scratch object visible under its final key and then stores its links
    /// as one [`Driver::put_ordered`] group, once its `ready` succeeded (see [`Publication`]);
    /// if `ready` fails, nothing becomes visible and its error is returned. When this returns
    /// `Ok`, the object and its links are durable, or (journaled) restored by opening the
    /// driver after a crash. The default waits for `ready`, then moves, then puts; the
    /// filesystem driver journals the move with the links while `ready` runs, and replay moves
    /// the object only if its bytes hash to the digest (see `fs/journal.rs`).
    async fn publish(&self, publication: Publication<'_>) -> Result<()> {
        publish_in_order(self, publication).await
    }

    /// Makes everything written so far durable on its own, with nothing left for a reopen to
    /// restore (filesystem: a journal checkpoint), for a graceful stop. Default: nothing.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Deletes an object, or everything below a prefix; [`StoreError::NotFound`] if neither exists.
    async fn delete(&self, key: &str) -> Result<()>;

    /// [`Driver::delete`] for scratch data (upload sessions, staging): the removal need not
    /// survive a crash, so the filesystem driver skips the directory sync. Default: `delete`.
    async fn delete_scratch(&self, key: &str) -> Result<()> {
        self.delete(key).await
    }
}

/// An open writer on one object (see [`Driver::writer`]).
#[async_trait]
pub trait FileWriter: Send {
    /// Appends the chunks, in order (vectored: no concatenation copy needed).
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()>;

    /// Total size of the object so far, including bytes written before this writer opened.
    fn size(&self) -> u64;

    /// Flushes everything and makes the bytes durable (so that a later [`Driver::move_object`]
    /// publishes them durably); returns the total size.
    async fn commit(self: Box<Self>) -> Result<u64>;

    /// Flushes what was written (not necessarily durable) so a later writer can append;
    /// returns the total size.
    async fn close(self: Box<Self>) -> Result<u64>;

    /// Abandons the writer and deletes the object.
    async fn cancel(self: Box<Self>) -> Result<()>;
}

/// What [`Driver::publish`] makes visible.
pub struct Publication<'a> {
    /// The writer's scratch object.
    pub from: &'a str,
    /// Its final key.
    pub to: &'a str,
    /// The digest its bytes must hash to.
    pub digest: &'a Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Commits the writer (its bytes are durable when it succeeds) and checks that they hash
    /// to `digest`.
    pub ready: BoxFuture<'a, Result<()>>,
    /// The links stored once the object is in place: (key, content).
    pub links: Vec<(String, Bytes)>,
}

impl fmt::Debug for Publication<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publication")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

/// [`Driver::publish`] without overlap: waits for `ready`, then moves, then puts the links.
pub(crate) async fn publish_in_order<D: Driver + ?Sized>(
    driver: &D,
    p: Publication<'_>,
) -> Result<()> {
    p.ready.await?;
    driver.move_object(p.from, p.to).await?;
    if p.links.is_empty() {
        return Ok(());
    }
    driver.put_ordered(vec![p.links]).await
}

/// Checks that `key` is a valid storage key (see the module docs).
/// A listing prefix: empty (the root) or a valid key, with or without a trailing `/`.
pub(crate) fn check_prefix(prefix: &str) -> Result<()> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        Ok(())
    } else {
        validate_key(trimmed)
    }
}

pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason| {
        Err(StoreError::InvalidKey {
            key: key.chars().take(300).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty key");
    }
    for component in key.split('/') {
        if component.is_empty() {
            return bad("empty component");
        }
        if component.starts_with('.') {
            return bad("component starts with '.'");
        }
        if component.contains(['\\', '\0']) {
            return bad("component contains '\\' or NUL");
        }
    }
    Ok(())
}

/// `prefix` as a key prefix ending in `/` (empty for the root): what the keys below it start with.
pub(crate) fn key_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// Validates a `(offset, len)` request against an object of `size` bytes and returns the
/// exclusive end offset.
pub(crate) fn range_end(key: &str, size: u64, offset: u64, len: Option<u64>) -> Result<u64> {
    let end = match len {
        Some(len) => offset.checked_add(len),
        None => Some(size),
    };
    match end {
        Some(end) if offset <= size && end <= size && offset <= end => Ok(end),
        _ => Err(StoreError::RangeInvalid {
            message: format!(
                "range offset {offset} length {len:?} outside {key} of {size} bytes",
                len = len
            ),
        }),
    }
}
