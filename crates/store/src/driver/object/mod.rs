//! A driver on an object store: Amazon S3 (or any S3-compatible store) and Azure Blob
//! Storage, through the `object_store` crate. Several registry processes may share one bucket
//! ([`Driver::shared`] is `true`).
//!
//! Plain objects map one to one onto the store's objects under the configured prefix.
//! `put_if` is a conditional PUT against the object's ETag (`If-None-Match: *` to create,
//! `If-Match` to swap); `move_object` is a server-side copy then a delete, so it is not atomic
//! for a concurrent reader of the source, but the destination only ever holds whole objects.
//! A single copy is one request up to [`COPY_LIMIT`] (S3's CopyObject maximum, 5 GiB); a
//! larger object is copied by streaming it through this process into a multipart upload. On
//! Azure the limit is [`AZURE_COPY_LIMIT`]: Copy Blob may finish asynchronously for large
//! blobs and `object_store` does not wait for it, so larger blobs are streamed too (deleting
//! the source of a pending copy would fail the copy).
//!
//! # Upload sessions ([`Driver::writer`])
//!
//! A writer's bytes live in the bucket, so another process can continue a session after a
//! writer closed: the session object itself stays empty while the bytes are described by a
//! state object beside it (see `paths.rs` for the private layout, `state.rs` for the state):
//! completed segment objects, then the parts of a multipart upload, then a tail object.
//!
//! - `write` uploads every full 8 MiB part at once (S3 wants parts of at least 5 MiB except
//!   the last); the rest stays in memory. Before uploading a part, the writer claims its
//!   number through a compare-and-swap of the state, so two writers never upload different
//!   bytes under one number.
//! - `close` and `commit` store the buffered rest as a new tail object and record the
//!   writer's parts, the tail and the size with one compare-and-swap of the state: of two
//!   writers that opened the same state, at most one records anything; the other gets
//!   [`StoreError::PreconditionFailed`] and its parts and tail are never part of the object.
//!   Parts and objects are durable once the store acknowledged them, so `commit` needs nothing
//!   more than `close`.
//! - Reading a session (`stat`, `get_content`, `reader`, `walk`) gives exactly the recorded
//!   bytes. Parts are unreadable until their upload completes, so a read of a session with
//!   recorded parts first completes the upload: it seals it in the state (no writer may add to
//!   it any more; a writer that opened before fails its next state change), uploads the tail
//!   as its last part, completes it into a segment and records the segment. A later writer
//!   starts a new upload. A process that dies half-way leaves a sealed upload, which the next
//!   reader or writer completes.
//! - `move_object` of a session completes it the same way; one segment (the usual case) is
//!   then copied server-side, several segments (a session read back part-way) are
//!   concatenated by streaming them through this process. `cancel` and `delete` abort the
//!   upload and remove the private objects.
//!
//! Limits: 10 000 parts of 8 MiB per upload (78 GiB before a read starts a new segment);
//! Azure's abort is a no-op (uncommitted blocks expire after a week). Faults: see `errors.rs`.

mod errors;
mod paths;
mod session;
mod state;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutMode, PutOptions, UpdateVersion};

use super::{
    key_prefix, range_end, validate_key, Driver, FileWriter, ObjectMeta, Precondition, Version,
};
use crate::error::{Result, StoreError};
use crate::ByteStream;
use errors::Reporter;
use state::State;

/// The largest object one server-side copy request moves (S3's CopyObject limit).
pub const COPY_LIMIT: u64 = 5 << 30;

/// The largest blob copied server-side on Azure: a conservative bound, the limit of Azure's
/// synchronous copy (Copy Blob From URL); larger blobs are streamed.
pub const AZURE_COPY_LIMIT: u64 = 256 << 20;

/// Which object store, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBackend {
    /// Amazon S3 or an S3-compatible store.
    S3(S3Options),
    /// Azure Blob Storage.
    Azure(AzureOptions),
}

/// An S3 bucket. Credentials come from the standard `AWS_*` environment variables; these
/// fields override the location ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The region (`AWS_DEFAULT_REGION`/`AWS_REGION` or `us-east-1` when `None`).
    pub region: Option<String>,
    /// The endpoint URL of an S3-compatible store (AWS when `None`).
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket (empty: the bucket's root).
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones.
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: bool,
}

/// An Azure Blob Storage container. Credentials come from the standard `AZURE_STORAGE_*`
/// environment variables; these fields override the location ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureOptions {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// The account's endpoint URL (`https://ACCOUNT.blob.core.windows.net` when `None`); a
    /// plain-HTTP URL (Azurite) is allowed as given.
    pub endpoint: Option<String>,
    /// Key prefix inside the container (empty: the container's root).
    pub prefix: String,
}

/// What the driver and its writers share.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) multipart: Arc<dyn MultipartStore>,
    /// The key prefix, without a trailing `/` (empty: the root).
    root: String,
    pub(crate) report: Reporter,
    /// Objects larger than this are copied by streaming (see [`COPY_LIMIT`]).
    pub(crate) copy_limit: u64,
    name: &'static str,
}

impl Inner {
    /// The store path of `key` (a driver-relative key, private ones included).
    pub(crate) fn path(&self, key: &str) -> Path {
        if self.root.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.root))
        }
    }

    /// The driver-relative key of a store path.
    fn key_of(&self, path: &Path) -> Option<String> {
        let full = path.as_ref();
        if self.root.is_empty() {
            return Some(full.to_owned());
        }
        full.strip_prefix(&self.root)?
            .strip_prefix('/')
            .map(str::to_owned)
    }

    /// The path to list below `prefix` (`None`: the whole bucket).
    fn dir_path(&self, prefix: &str) -> Option<Path> {
        let trimmed = prefix.trim_end_matches('/');
        match (self.root.is_empty(), trimmed.is_empty()) {
            (true, true) => None,
            (false, true) => Some(Path::from(self.root.as_str())),
            _ => Some(self.path(trimmed)),
        }
    }

    pub(crate) fn err(&self, op: &'static str, key: &str, e: object_store::Error) -> StoreError {
        self.report.error(op, key, e)
    }
}

/// The object-store driver (see the module docs).
#[derive(Clone)]
pub struct ObjectDriver {
    inner: Arc<Inner>,
}

impl fmt::Debug for ObjectDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectDriver")
            .field("store", &self.inner.report.store)
            .field("prefix", &self.inner.root)
            .finish()
    }
}

impl fmt::Display for ObjectDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.report.store)
    }
}

/// Values of credential-like environment variables, to keep out of messages.
fn env_secrets() -> Vec<String> {
    std::env::vars()
        .filter(|(k, _)| {
            (k.starts_with("AWS_") || k.starts_with("AZURE_"))
                && ["SECRET", "KEY", "TOKEN", "PASSWORD", "SAS"]
                    .iter()
                    .any(|w| k.contains(w))
        })
        .map(|(_, v)| v)
        .filter(|v| v.len() >= 8)
        .collect()
}

impl ObjectDriver {
    /// Opens the bucket or container and checks that it answers (one listing request).
    pub async fn open(backend: &ObjectBackend) -> Result<ObjectDriver> {
        let (store, multipart, label, prefix, name) = session::build(backend)?;
        let driver = ObjectDriver::with_store(
            store,
            multipart,
            Reporter {
                store: label,
                secrets: env_secrets(),
            },
            prefix,
            name,
        );
        let inner = &driver.inner;
        let probe = inner.dir_path("");
        if let Err(e) = inner.store.list_with_delimiter(probe.as_ref()).await {
            let e = match e {
                object_store::Error::NotFound { .. } => StoreError::Io {
                    op: "open",
                    key: inner.root.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{} does not exist", inner.report.store),
                    ),
                },
                other => inner.err("open", &format!("/{}", inner.root), other),
            };
            return Err(e);
        }
        Ok(driver)
    }

    /// A driver on any store (tests use `object_store`'s in-memory one).
    pub(crate) fn with_store(
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        report: Reporter,
        prefix: String,
        name: &'static str,
    ) -> ObjectDriver {
        ObjectDriver {
            inner: Arc::new(Inner {
                store,
                multipart,
                root: prefix.trim_matches('/').to_owned(),
                report,
                copy_limit: if name == "azure" {
                    AZURE_COPY_LIMIT
                } else {
                    COPY_LIMIT
                },
                name,
            }),
        }
    }

    /// The same driver with another streaming-copy threshold (tests).
    #[cfg(test)]
    pub(crate) fn with_copy_limit(self, limit: u64) -> ObjectDriver {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            panic!("with_copy_limit on a shared driver");
        };
        inner.copy_limit = limit;
        ObjectDriver {
            inner: Arc::new(inner),
        }
    }
}

/// A plain object, or a session described by its state.
enum Found {
    Plain(object_store::ObjectMeta),
    Session(State, SystemTime),
}

impl ObjectDriver {
    async fn find(&self, op: &'static str, key: &str) -> Result<Found> {
        let inner = &self.inner;
        let meta = inner
            .store
            .head(&inner.path(key))
            .await
            .map_err(|e| inner.err(op, key, e))?;
        if meta.size == 0 {
            if let Some((state, _, modified)) = session::load_state(inner, key).await? {
                return Ok(Found::Session(state, modified));
            }
        }
        Ok(Found::Plain(meta))
    }
}

/// The whole object `key` and its ETag.
async fn get_whole(inner: &Inner, key: &str) -> Result<(Bytes, Option<String>)> {
    let got = inner
        .store
        .get(&inner.path(key))
        .await
        .map_err(|e| inner.err("get", key, e))?;
    let e_tag = got.meta.e_tag.clone();
    let data = got.bytes().await.map_err(|e| inner.err("get", key, e))?;
    Ok((data, e_tag))
}

fn version_of(key: &str, e_tag: Option<String>) -> Result<Version> {
    e_tag.map(Version).ok_or_else(|| {
        StoreError::Internal(format!(
            "the store gave no ETag for {key}: conditional writes need one"
        ))
    })
}

#[async_trait]
impl Driver for ObjectDriver {
    fn name(&self) -> &'static str {
        self.inner.name
    }

    fn shared(&self) -> bool {
        true
    }

    async fn get_content(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let inner = &self.inner;
        let (data, _) = get_whole(inner, key).await?;
        if !data.is_empty() {
            return Ok(data);
        }
        match session::load_state(inner, key).await? {
            Some(_) => {
                let (state, _) = session::complete(inner, key).await?;
                let stream = session::read_pieces(inner, &state.pieces(), 0, state.size);
                let chunks: Vec<Bytes> = stream
                    .try_collect()
                    .await
                    .map_err(|e| StoreError::io("read", key, e))?;
                Ok(chunks.concat().into())
            }
            None => Ok(data),
        }
    }

    async fn put_content(&self, key: &str, content: Bytes) -> Result<()> {
        validate_key(key)?;
        let inner = &self.inner;
        inner
            .store
            .put(&inner.path(key), content.into())
            .await
            .map_err(|e| inner.err("put", key, e))?;
        Ok(())
    }

    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version)> {
        validate_key(key)?;
        let (data, e_tag) = get_whole(&self.inner, key).await?;
        Ok((data, version_of(key, e_tag)?))
    }

    async fn put_if(&self, key: &str, content: Bytes, condition: Precondition) -> Result<Version> {
        validate_key(key)?;
        session::put_if(&self.inner, key, content, &condition).await
    }

    async fn reader(&self, key: &str, offset: u64, len: Option<u64>) -> Result<(u64, ByteStream)> {
        validate_key(key)?;
        let inner = &self.inner;
        match self.find("read", key).await? {
            Found::Plain(meta) => {
                let end = range_end(key, meta.size, offset, len)?;
                if offset == end {
                    let empty: ByteStream = Box::pin(futures_util::stream::empty());
                    return Ok((meta.size, empty));
                }
                let options = GetOptions {
                    range: Some(GetRange::Bounded(offset..end)),
                    ..GetOptions::default()
                };
                let got = inner
                    .store
                    .get_opts(&inner.path(key), options)
                    .await
                    .map_err(|e| inner.err("read", key, e))?;
                let report = inner.report.clone();
                let stream: ByteStream = Box::pin(
                    got.into_stream()
                        .map_err(move |e| std::io::Error::other(report.redact(&e.to_string()))),
                );
                Ok((meta.size, stream))
            }
            Found::Session(..) => {
                let (state, _) = session::complete(inner, key).await?;
                let end = range_end(key, state.size, offset, len)?;
                let stream = session::read_pieces(inner, &state.pieces(), offset, end);
                Ok((state.size, stream))
            }
        }
    }

    async fn writer(&self, key: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        validate_key(key)?;
        let writer = writer::ObjectWriter::open(Arc::clone(&self.inner), key, append).await?;
        Ok(Box::new(writer))
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        Ok(match self.find("stat", key).await? {
            Found::Plain(meta) => ObjectMeta {
                key: key.to_owned(),
                size: meta.size,
                modified: SystemTime::from(meta.last_modified),
            },
            Found::Session(state, modified) => ObjectMeta {
                key: key.to_owned(),
                size: state.size,
                modified,
            },
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        crate::driver::check_prefix(prefix)?;
        let inner = &self.inner;
        let listed = inner
            .store
            .list_with_delimiter(inner.dir_path(prefix).as_ref())
            .await
            .map_err(|e| inner.err("list", prefix, e))?;
        let dir = key_prefix(prefix);
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|m| &m.location))
            .filter_map(|p| inner.key_of(p))
            .filter(|k| k.starts_with(&dir) && !paths::is_private(&k[dir.len()..]))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        crate::driver::check_prefix(prefix)?;
        session::walk(&self.inner, prefix).await
    }

    async fn move_object(&self, from: &str, to: &str) -> Result<()> {
        validate_key(from)?;
        validate_key(to)?;
        match self.find("move", from).await? {
            Found::Plain(meta) => {
                session::copy_object(&self.inner, from, to, meta.size).await?;
                let inner = &self.inner;
                inner
                    .store
                    .delete(&inner.path(from))
                    .await
                    .map_err(|e| inner.err("delete", from, e))
            }
            Found::Session(..) => session::move_session(&self.inner, from, to).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        session::delete_all(&self.inner, key).await
    }
}

/// A conditional PUT of `content` at `path` (a driver-relative `key`).
pub(crate) async fn conditional_put(
    inner: &Inner,
    key: &str,
    content: Bytes,
    condition: &Precondition,
) -> Result<Version> {
    let mode = match condition {
        Precondition::Absent => PutMode::Create,
        Precondition::Matches(Version(e_tag)) => PutMode::Update(UpdateVersion {
            e_tag: Some(e_tag.clone()),
            version: None,
        }),
    };
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    let put = inner
        .store
        .put_opts(&inner.path(key), content.into(), options)
        .await
        .map_err(|e| match inner.err("put", key, e) {
            // Swapping an absent object: nothing matches.
            StoreError::NotFound { key } => StoreError::PreconditionFailed { key },
            other => other,
        })?;
    version_of(key, put.e_tag)
}
