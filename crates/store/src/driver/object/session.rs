//! Building the store, and the operations on sessions' private objects: their state, the
//! completion of their uploads, reading and moving them, deleting prefixes.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};

use super::errors::{client_options, retry_config};
use super::state::{plan_range, Piece, State};
use super::{conditional_put, paths, Inner, ObjectBackend};
use crate::driver::{key_prefix, ObjectMeta, Precondition, Version};
use crate::error::{Result, StoreError};
use crate::ByteStream;

/// What [`ObjectBackend`] opens: the store (as both interfaces), a label naming it, the
/// prefix and the driver's name.
type Built = (
    Arc<dyn ObjectStore>,
    Arc<dyn MultipartStore>,
    String,
    String,
    &'static str,
);

fn config_error(label: &str, e: object_store::Error) -> StoreError {
    StoreError::Io {
        op: "open",
        key: label.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot configure {label}: {e}"),
        ),
    }
}

/// Builds the client of `backend` (credentials from the environment).
pub(crate) fn build(backend: &ObjectBackend) -> Result<Built> {
    match backend {
        ObjectBackend::S3(o) => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&o.bucket)
                .with_virtual_hosted_style_request(!o.path_style)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_retry(retry_config())
                .with_client_options(client_options(o.allow_http));
            if let Some(region) = &o.region {
                builder = builder.with_region(region);
            }
            if let Some(endpoint) = &o.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            let at = o.endpoint.clone().unwrap_or_else(|| "AWS".to_owned());
            let label = format!("s3 bucket {} at {at}", o.bucket);
            let store = Arc::new(builder.build().map_err(|e| config_error(&label, e))?);
            let objects: Arc<dyn ObjectStore> = store.clone();
            let parts: Arc<dyn MultipartStore> = store;
            Ok((objects, parts, label, o.prefix.clone(), "s3"))
        }
        ObjectBackend::Azure(o) => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_account(&o.account)
                .with_container_name(&o.container)
                .with_retry(retry_config());
            let mut allow_http = false;
            if let Some(endpoint) = &o.endpoint {
                allow_http = endpoint.starts_with("http://");
                builder = builder.with_endpoint(endpoint.clone());
            }
            builder = builder.with_client_options(client_options(allow_http));
            let at = o
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", o.account));
            let label = format!(
                "azure container {} of account {} at {at}",
                o.container, o.account
            );
            let store = Arc::new(builder.build().map_err(|e| config_error(&label, e))?);
            let objects: Arc<dyn ObjectStore> = store.clone();
            let parts: Arc<dyn MultipartStore> = store;
            Ok((objects, parts, label, o.prefix.clone(), "azure"))
        }
    }
}

/// The state of the session object `key`, its version and when it last changed; `None`
/// when `key` is no session.
pub(crate) async fn load_state(
    inner: &Inner,
    key: &str,
) -> Result<Option<(State, Version, SystemTime)>> {
    let state_key = paths::state_key(key);
    let got = match inner.store.get(&inner.path(&state_key)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(inner.err("read session state", key, e)),
    };
    let modified = SystemTime::from(got.meta.last_modified);
    let e_tag = got.meta.e_tag.clone();
    let raw = got
        .bytes()
        .await
        .map_err(|e| inner.err("read session state", key, e))?;
    let state = State::decode(&state_key, &raw)?;
    let version = super::version_of(&state_key, e_tag)?;
    Ok(Some((state, version, modified)))
}

/// Stores `state` for `key` if the state object is still at `version` (absent for `None`).
pub(crate) async fn save_state(
    inner: &Inner,
    key: &str,
    state: &State,
    version: Option<&Version>,
) -> Result<Version> {
    let condition = match version {
        Some(v) => Precondition::Matches(v.clone()),
        None => Precondition::Absent,
    };
    let state_key = paths::state_key(key);
    conditional_put(inner, &state_key, state.encode(), &condition)
        .await
        .map_err(|e| match e {
            StoreError::PreconditionFailed { .. } => StoreError::PreconditionFailed {
                key: key.to_owned(),
            },
            other => other,
        })
}

/// [`crate::driver::Driver::put_if`].
pub(crate) async fn put_if(
    inner: &Inner,
    key: &str,
    content: Bytes,
    condition: &Precondition,
) -> Result<Version> {
    conditional_put(inner, key, content, condition).await
}

/// Completes the session's upload if it has recorded parts (see the module docs); returns
/// the state after it (no recorded parts left) and its version.
pub(crate) async fn complete(inner: &Inner, key: &str) -> Result<(State, Version)> {
    loop {
        let Some((mut state, version, _)) = load_state(inner, key).await? else {
            return Err(StoreError::NotFound {
                key: key.to_owned(),
            });
        };
        let Some(upload) = state.upload.clone().filter(|_| state.needs_completion()) else {
            return Ok((state, version));
        };
        let Some(tail_part) = upload.sealed else {
            // Seal first: from here on no writer adds to this upload.
            let mut sealed = state.clone();
            if let Some(u) = sealed.upload.as_mut() {
                let tail_part = sealed.tail.as_ref().map(|_| u.next_part);
                u.next_part += usize::from(tail_part.is_some());
                u.sealed = Some(tail_part);
            }
            match save_state(inner, key, &sealed, Some(&version)).await {
                Ok(_) | Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        let size = upload.parts_size() + tail_part.and(state.tail.as_ref()).map_or(0, |t| t.size);
        let segment = inner.path(&upload.key);
        if let Err(e) = finish_upload(inner, key, &upload, tail_part, state.tail.as_ref()).await {
            // Completed already by another reader (or one that then stopped): the segment is
            // there, whole.
            let done = inner
                .store
                .head(&segment)
                .await
                .is_ok_and(|m| m.size == size);
            if !done {
                return Err(e);
            }
        }
        // A tail folded into the upload is part of the segment now.
        let old_tail = if tail_part.is_some() {
            state.tail.take()
        } else {
            None
        };
        state.segments.push(Piece {
            key: upload.key.clone(),
            size,
        });
        state.upload = None;
        match save_state(inner, key, &state, Some(&version)).await {
            Ok(version) => {
                if let Some(t) = old_tail {
                    let _ = inner.store.delete(&inner.path(&t.key)).await;
                }
                return Ok((state, version));
            }
            Err(StoreError::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Uploads the tail as the sealed upload's last part (at `tail_part`) and completes it.
async fn finish_upload(
    inner: &Inner,
    key: &str,
    upload: &super::state::Upload,
    tail_part: Option<usize>,
    tail: Option<&Piece>,
) -> Result<()> {
    let segment = inner.path(&upload.key);
    let mut parts: Vec<PartId> = upload
        .parts
        .iter()
        .map(|p| PartId {
            content_id: p.id.clone(),
        })
        .collect();
    if let (Some(index), Some(tail)) = (tail_part, tail) {
        let bytes = get_all(inner, key, &tail.key).await?;
        let id = inner
            .multipart
            .put_part(&segment, &upload.id, index, bytes.into())
            .await
            .map_err(|e| inner.err("upload the last part", key, e))?;
        parts.push(id);
    }
    inner
        .multipart
        .complete_multipart(&segment, &upload.id, parts)
        .await
        .map_err(|e| inner.err("complete the upload", key, e))?;
    Ok(())
}

/// The whole (small) private object `private` of the session `key`.
pub(crate) async fn get_all(inner: &Inner, key: &str, private: &str) -> Result<Bytes> {
    let got = inner
        .store
        .get(&inner.path(private))
        .await
        .map_err(|e| lost(inner, key, private, e))?;
    got.bytes().await.map_err(|e| lost(inner, key, private, e))
}

/// A private object that should exist does not: the session is damaged.
fn lost(inner: &Inner, key: &str, private: &str, e: object_store::Error) -> StoreError {
    match inner.err("read session data", key, e) {
        StoreError::NotFound { .. } => {
            StoreError::Internal(format!("session {key} lost its object {private}"))
        }
        other => other,
    }
}

/// Streams `start..end` of the concatenation of `pieces`.
pub(crate) fn read_pieces(inner: &Inner, pieces: &[Piece], start: u64, end: u64) -> ByteStream {
    let plan: Vec<(Path, u64, u64)> = plan_range(pieces, start, end)
        .into_iter()
        .map(|(piece, from, to)| (inner.path(&piece.key), from, to))
        .collect();
    let store = Arc::clone(&inner.store);
    let report = inner.report.clone();
    let stream = futures_util::stream::iter(plan)
        .then(move |(path, from, to)| {
            let store = Arc::clone(&store);
            async move {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(from..to)),
                    ..GetOptions::default()
                };
                store
                    .get_opts(&path, options)
                    .await
                    .map(|g| g.into_stream())
            }
        })
        .try_flatten()
        .map_err(move |e| std::io::Error::other(report.redact(&e.to_string())));
    Box::pin(stream)
}

/// [`crate::driver::Driver::walk`]: sessions are listed with their bytes' size.
pub(crate) async fn walk(inner: &Inner, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let dir = key_prefix(prefix);
    let listed: Vec<object_store::ObjectMeta> = inner
        .store
        .list(inner.dir_path(prefix).as_ref())
        .try_collect()
        .await
        .map_err(|e| inner.err("walk", prefix, e))?;
    let mut out = Vec::new();
    let mut sessions = Vec::new();
    for meta in listed {
        let Some(key) = inner.key_of(&meta.location) else {
            continue;
        };
        if !key.starts_with(&dir) {
            continue;
        }
        if paths::is_private(&key) {
            sessions.extend(paths::owner_of_state(&key));
            continue;
        }
        out.push(ObjectMeta {
            key,
            size: meta.size,
            modified: SystemTime::from(meta.last_modified),
        });
    }
    for owner in sessions {
        let Some(entry) = out.iter_mut().find(|m| m.key == owner && m.size == 0) else {
            continue;
        };
        if let Some((state, _, modified)) = load_state(inner, &owner).await? {
            entry.size = state.size;
            entry.modified = modified;
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Copies the object `from` (`size` bytes) to `to`: one server-side copy up to the copy
/// limit, a streaming copy through this process above it.
pub(crate) async fn copy_object(inner: &Inner, from: &str, to: &str, size: u64) -> Result<()> {
    if size <= inner.copy_limit {
        return inner
            .store
            .copy(&inner.path(from), &inner.path(to))
            .await
            .map_err(|e| inner.err("copy", from, e));
    }
    let piece = Piece {
        key: from.to_owned(),
        size,
    };
    stream_into(inner, &[piece], to).await
}

/// Writes the concatenation of `pieces` to `to` through a multipart upload.
async fn stream_into(inner: &Inner, pieces: &[Piece], to: &str) -> Result<()> {
    let total: u64 = pieces.iter().map(|p| p.size).sum();
    let target = inner.path(to);
    let upload = inner
        .store
        .put_multipart(&target)
        .await
        .map_err(|e| inner.err("copy", to, e))?;
    let mut write = WriteMultipart::new(upload);
    let mut body = read_pieces(inner, pieces, 0, total);
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                write
                    .wait_for_capacity(8)
                    .await
                    .map_err(|e| inner.err("copy", to, e))?;
                write.put(chunk);
            }
            Err(e) => {
                let _ = write.abort().await;
                return Err(StoreError::io("copy", to, e));
            }
        }
    }
    write.finish().await.map_err(|e| inner.err("copy", to, e))?;
    Ok(())
}

/// [`crate::driver::Driver::move_object`] of a session: completes it, places its bytes at
/// `to`, then removes it.
pub(crate) async fn move_session(inner: &Inner, from: &str, to: &str) -> Result<()> {
    let (state, _) = complete(inner, from).await?;
    let pieces = state.pieces();
    match pieces.as_slice() {
        [] => inner
            .store
            .put(&inner.path(to), Bytes::new().into())
            .await
            .map(drop)
            .map_err(|e| inner.err("put", to, e))?,
        [one] => copy_object(inner, &one.key, to, one.size).await?,
        many => stream_into(inner, many, to).await?,
    }
    remove_session(inner, from).await?;
    inner
        .store
        .delete(&inner.path(from))
        .await
        .map_err(|e| inner.err("delete", from, e))
}

/// Aborts the session's upload and deletes its private objects (not the session object).
pub(crate) async fn remove_session(inner: &Inner, key: &str) -> Result<()> {
    if let Some((state, _, _)) = load_state(inner, key).await? {
        abort(inner, key, &state).await;
    }
    let dir = paths::session_dir(key);
    let listed: Vec<Path> = inner
        .store
        .list(Some(&inner.path(&dir)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| inner.err("list session data", key, e))?;
    delete_paths(inner, key, listed).await
}

/// Aborts the upload of `state` (best effort: an abandoned upload only costs storage until
/// the bucket's lifecycle rules remove it).
async fn abort(inner: &Inner, key: &str, state: &State) {
    if let Some(upload) = &state.upload {
        let path = inner.path(&upload.key);
        if let Err(e) = inner.multipart.abort_multipart(&path, &upload.id).await {
            let e = inner.err("abort the upload", key, e);
            if !e.is_not_found() {
                tracing::warn!(key, error = %e, "could not abort a session's upload");
            }
        }
    }
}

async fn delete_paths(inner: &Inner, key: &str, listed: Vec<Path>) -> Result<()> {
    let locations = futures_util::stream::iter(listed.into_iter().map(Ok)).boxed();
    let results: Vec<Result<Path, object_store::Error>> =
        inner.store.delete_stream(locations).collect().await;
    for result in results {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(inner.err("delete", key, e)),
        }
    }
    Ok(())
}

/// [`crate::driver::Driver::delete`]: the object `key`, everything below it and the private
/// objects of sessions among them (their uploads aborted).
pub(crate) async fn delete_all(inner: &Inner, key: &str) -> Result<()> {
    let own = inner.path(key);
    let exists = match inner.store.head(&own).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => return Err(inner.err("delete", key, e)),
    };
    let mut listed: Vec<object_store::ObjectMeta> = Vec::new();
    for dir in [key.to_owned(), paths::session_dir(key)] {
        let below: Vec<object_store::ObjectMeta> = inner
            .store
            .list(Some(&inner.path(&dir)))
            .try_collect()
            .await
            .map_err(|e| inner.err("delete", key, e))?;
        listed.extend(below);
    }
    if !exists && listed.is_empty() {
        return Err(StoreError::NotFound {
            key: key.to_owned(),
        });
    }
    for meta in &listed {
        let owner = inner
            .key_of(&meta.location)
            .and_then(|k| paths::owner_of_state(&k));
        if let Some(owner) = owner {
            if let Some((state, _, _)) = load_state(inner, &owner).await? {
                abort(inner, &owner, &state).await;
            }
        }
    }
    let mut doomed: Vec<Path> = listed.into_iter().map(|m| m.location).collect();
    if exists {
        doomed.push(own);
    }
    delete_paths(inner, key, doomed).await
}
