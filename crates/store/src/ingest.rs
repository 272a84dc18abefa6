//! Streaming bytes into storage while hashing them.
//!
//! Body frames are hashed as they arrive and handed to the writer in batches of about 1 MiB
//! (vectored, no concatenation copy). The filesystem writer keeps one batch in flight on the
//! blocking pool, so hashing the next batch overlaps with writing the previous one.

use bytes::Bytes;
use futures_util::StreamExt;
use ocireg_oci::{Algorithm, Digest, DigestHasher};

use crate::driver::{Driver, FileWriter};
use crate::error::{Result, StoreError};
use crate::ByteStream;

/// Bytes collected before a write is issued.
pub(crate) const WRITE_BATCH: usize = 1 << 20;

/// Streams `body` into `writer`, feeding `hasher`; returns the number of bytes taken.
/// A failing body is [`StoreError::Body`]; the bytes received before the failure are written.
pub(crate) async fn ingest(
    mut body: ByteStream,
    writer: &mut dyn FileWriter,
    hasher: &mut DigestHasher,
) -> Result<u64> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut total = 0u64;
    while let Some(frame) = body.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // Keep what arrived before the failure: the client may resume after it.
                if !batch.is_empty() {
                    writer.write(batch).await?;
                }
                return Err(StoreError::Body(e));
            }
        };
        if frame.is_empty() {
            continue;
        }
        hasher.update(&frame);
        batch_len += frame.len();
        total += frame.len() as u64;
        batch.push(frame);
        if batch_len >= WRITE_BATCH {
            writer.write(std::mem::take(&mut batch)).await?;
            batch_len = 0;
        }
    }
    if !batch.is_empty() {
        writer.write(batch).await?;
    }
    Ok(total)
}

/// Hashes the first `len` bytes of an object (rebuilding an upload's hash state).
pub(crate) async fn hash_object(
    driver: &dyn Driver,
    key: &str,
    alg: Algorithm,
    len: u64,
) -> Result<DigestHasher> {
    let mut hasher = DigestHasher::new(alg);
    if len == 0 {
        return Ok(hasher);
    }
    let (_, mut body) = driver.reader(key, 0, Some(len)).await?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StoreError::io("read", key, e))?;
        hasher.update(&chunk);
    }
    Ok(hasher)
}

/// Copies `from` to a new object `to`, verifying the bytes hash to `digest` (the copy is
/// removed on mismatch). Returns the size.
pub(crate) async fn copy_verified(
    driver: &dyn Driver,
    from: &str,
    to: &str,
    digest: &Digest,
) -> Result<u64> {
    let (_, body) = driver.reader(from, 0, None).await?;
    let body: ByteStream = Box::pin(body);
    let mut writer = driver.writer(to, false).await?;
    let mut hasher = DigestHasher::new(digest.algorithm());
    let copied = ingest(body, writer.as_mut(), &mut hasher).await;
    if let Err(e) = copied {
        let _ = writer.cancel().await;
        return Err(match e {
            StoreError::Body(io) => StoreError::io("read", from, io),
            other => other,
        });
    }
    let computed = hasher.finish();
    if computed != *digest {
        let _ = writer.cancel().await;
        return Err(StoreError::Internal(format!(
            "stored bytes of {digest} at {from} hash to {computed}"
        )));
    }
    writer.commit().await
}
