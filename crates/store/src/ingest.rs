//! Streaming bytes into storage while hashing them.
//!
//! Three stages overlap: the request task receives body frames and collects them into batches
//! of exactly [`WRITE_BATCH`] bytes (vectored, no concatenation copy); each full batch is
//! hashed on a blocking thread while the writer writes the same batch (the filesystem writer
//! keeps writes in flight on other blocking threads) and the next batch arrives. Hashing inline
//! with receiving would make SHA-256 and the socket copy take turns on one core and leave the
//! other idle (BENCHMARKS.md has the measurements).

use bytes::Bytes;
use futures_util::StreamExt;
use ocireg_oci::{Algorithm, Digest, DigestHasher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::driver::{Driver, FileWriter};
use crate::error::{Result, StoreError};
use crate::ByteStream;

/// Bytes collected before a batch is hashed and written.
pub(crate) const WRITE_BATCH: usize = 1 << 20;

/// Batches smaller than this are hashed inline: a thread hand-off costs more than it saves.
const INLINE_HASH: usize = 64 << 10;

/// Full batches queued for the hashing thread at most (beyond the one it is hashing).
const HASH_QUEUE: usize = 2;

/// The hashing stage. [`Hashing::settle`] before using the hash.
///
/// Batches of a request go to one blocking thread that hashes them in order as they come
/// (a channel, not a task per batch): with a task per batch each one starts only after the
/// request task has seen the previous one finish and spawned the next, so hashing waits on
/// those hand-offs instead of taking batches as they arrive.
///
/// An upload session keeps it between requests, so a chunk is acknowledged without waiting
/// for its last batches to be hashed (the next request, or completion, waits): at the end of
/// a request [`Hashing::release`] lets the thread finish and exit instead of waiting for more.
/// Boxed by the session that keeps it; the variants' size difference does not matter on a
/// request's stack.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Hashing {
    /// The hasher is here.
    Idle(DigestHasher),
    /// A thread hashes the batches sent to it.
    Streaming {
        alg: Algorithm,
        batches: mpsc::Sender<Vec<Bytes>>,
        task: JoinHandle<DigestHasher>,
    },
    /// The thread hashes what it was sent, then hands the hasher back.
    Finishing(Algorithm, JoinHandle<DigestHasher>),
}

/// Hashing that starts from `hasher`'s state.
impl From<DigestHasher> for Hashing {
    fn from(hasher: DigestHasher) -> Hashing {
        Hashing::Idle(hasher)
    }
}

impl Hashing {
    /// The algorithm being computed.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Hashing::Idle(h) => h.algorithm(),
            Hashing::Streaming { alg, .. } | Hashing::Finishing(alg, _) => *alg,
        }
    }

    /// Waits for every batch handed over to be hashed; the hasher then covers them all.
    pub(crate) async fn settle(self) -> Result<DigestHasher> {
        let task = match self {
            Hashing::Idle(h) => return Ok(h),
            // Dropping the sender ends the thread's loop once the queue is empty.
            Hashing::Streaming { task, .. } | Hashing::Finishing(_, task) => task,
        };
        task.await
            .map_err(|e| StoreError::Internal(format!("hash task failed: {e}")))
    }

    /// Lets a hashing thread finish the batches it has and exit (the end of a request).
    pub(crate) fn release(self) -> Hashing {
        match self {
            Hashing::Streaming { alg, task, .. } => Hashing::Finishing(alg, task),
            other => other,
        }
    }

    /// Hashes `batch` after everything handed over before it.
    async fn feed(self, batch: &[Bytes], len: usize) -> Result<Hashing> {
        let (alg, batches, task) = match self {
            Hashing::Streaming { alg, batches, task } => (alg, batches, task),
            idle_or_finishing => {
                let mut hasher = idle_or_finishing.settle().await?;
                if len < INLINE_HASH {
                    batch.iter().for_each(|c| hasher.update(c));
                    return Ok(Hashing::Idle(hasher));
                }
                let alg = hasher.algorithm();
                let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(HASH_QUEUE);
                let task = tokio::task::spawn_blocking(move || {
                    while let Some(batch) = rx.blocking_recv() {
                        batch.iter().for_each(|c| hasher.update(c));
                    }
                    hasher
                });
                (alg, tx, task)
            }
        };
        if batches.send(batch.to_vec()).await.is_err() {
            // The thread is gone (it panicked): its join error says why.
            drop(batches);
            return Err(Hashing::Finishing(alg, task)
                .settle()
                .await
                .err()
                .unwrap_or_else(|| StoreError::Internal("hash thread ended early".into())));
        }
        Ok(Hashing::Streaming { alg, batches, task })
    }
}

impl std::fmt::Debug for Hashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self {
            Hashing::Idle(_) => "idle",
            Hashing::Streaming { .. } => "streaming",
            Hashing::Finishing(..) => "finishing",
        };
        f.debug_tuple("Hashing").field(&state).finish()
    }
}

/// Streams `body` into `writer`, feeding `hasher`; returns the number of bytes taken.
/// A failing body is [`StoreError::Body`]; the bytes received before the failure are written
/// (and hashed).
pub(crate) async fn ingest(
    body: ByteStream,
    writer: &mut dyn FileWriter,
    hasher: &mut DigestHasher,
) -> Result<u64> {
    let alg = hasher.algorithm();
    let hashing = Hashing::from(std::mem::replace(hasher, DigestHasher::new(alg)));
    let (outcome, hashing) = ingest_pending(body, writer, hashing).await;
    // The hasher comes back whatever happened: it covers exactly the bytes handed to the writer.
    *hasher = hashing.settle().await?;
    outcome
}

/// [`ingest`] that returns as soon as the last batch is handed over: its hashing may still run
/// (settle the returned [`Hashing`]) and, on a writer that keeps a write in flight, so may its
/// write (the writer's next call waits for it).
pub(crate) async fn ingest_pending(
    body: ByteStream,
    writer: &mut dyn FileWriter,
    mut hashing: Hashing,
) -> (Result<u64>, Hashing) {
    let outcome = pump(body, writer, &mut hashing).await;
    (outcome, hashing.release())
}

async fn pump(
    mut body: ByteStream,
    writer: &mut dyn FileWriter,
    stage: &mut Hashing,
) -> Result<u64> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut total = 0u64;
    loop {
        let frame = match body.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // Keep what arrived before the failure: the client may resume after it.
                if !batch.is_empty() {
                    flush(writer, stage, batch, batch_len).await?;
                }
                return Err(StoreError::Body(e));
            }
            None => break,
        };
        if frame.is_empty() {
            continue;
        }
        batch_len += frame.len();
        total += frame.len() as u64;
        batch.push(frame);
        // Full batches are exactly WRITE_BATCH bytes (a frame across the border is split, no
        // copy), so a batch that starts block-aligned also ends so and goes to disk whole by
        // direct writes (see the filesystem writer).
        while batch_len >= WRITE_BATCH {
            let over = batch_len - WRITE_BATCH;
            let rest = match batch.last_mut() {
                Some(last) if over > 0 => Some(last.split_off(last.len() - over)),
                _ => None,
            };
            flush(writer, stage, std::mem::take(&mut batch), WRITE_BATCH).await?;
            batch_len = over;
            batch.extend(rest);
        }
    }
    if !batch.is_empty() {
        flush(writer, stage, batch, batch_len).await?;
    }
    Ok(total)
}

/// Hands one batch to the hashing stage and to the writer.
async fn flush(
    writer: &mut dyn FileWriter,
    stage: &mut Hashing,
    batch: Vec<Bytes>,
    len: usize,
) -> Result<()> {
    // A placeholder stands in while the real hasher moves (its algorithm does not matter).
    let current = std::mem::replace(stage, Hashing::Idle(DigestHasher::new(Algorithm::Sha256)));
    *stage = current.feed(&batch, len).await?;
    writer.write(batch).await
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::driver::MemoryDriver;

    /// Deterministic bytes (no RNG dependency).
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Frames of uneven sizes (some below the inline-hash size, some across batch borders),
    /// optionally ending in an error.
    fn stream(data: &[u8], fail: bool) -> ByteStream {
        let sizes = [1usize, 4096, 70_000, 1 << 20, 3, 300_000, 900_000];
        let mut frames: Vec<std::io::Result<Bytes>> = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < data.len() {
            let end = (at + sizes[i % sizes.len()]).min(data.len());
            frames.push(Ok(Bytes::copy_from_slice(&data[at..end])));
            frames.push(Ok(Bytes::new()));
            (at, i) = (end, i + 1);
        }
        if fail {
            frames.push(Err(std::io::Error::other("client went away")));
        }
        Box::pin(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn hash_and_bytes_match_across_batches_and_algorithms() {
        let driver = MemoryDriver::new();
        for (len, alg) in [
            (0usize, Algorithm::Sha256),
            (10, Algorithm::Sha256),
            (WRITE_BATCH, Algorithm::Sha256),
            (3 * WRITE_BATCH + 12_345, Algorithm::Sha256),
            (2 * WRITE_BATCH + 1, Algorithm::Sha512),
        ] {
            let data = bytes(len, len as u64 + 7);
            let key = format!("k/{len}");
            let mut writer = driver.writer(&key, false).await.unwrap();
            let mut hasher = DigestHasher::new(alg);
            let n = ingest(stream(&data, false), writer.as_mut(), &mut hasher)
                .await
                .unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(writer.commit().await.unwrap(), len as u64);
            assert_eq!(hasher.finish(), Digest::compute(alg, &data), "len {len}");
            assert_eq!(driver.get_content(&key).await.unwrap(), data);
        }
    }

    #[tokio::test]
    async fn a_failing_body_keeps_and_hashes_what_arrived() {
        let driver = MemoryDriver::new();
        let data = bytes(2 * WRITE_BATCH + 500_000, 3);
        let mut writer = driver.writer("k", false).await.unwrap();
        // Resume from an existing hash state: the prefix was hashed by an earlier request.
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        hasher.update(b"prefix");
        let err = ingest(stream(&data, true), writer.as_mut(), &mut hasher)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Body(_)), "{err:?}");
        assert_eq!(writer.close().await.unwrap(), data.len() as u64);
        let mut all = b"prefix".to_vec();
        all.extend_from_slice(&data);
        assert_eq!(hasher.finish(), Digest::compute(Algorithm::Sha256, &all));
        assert_eq!(driver.get_content("k").await.unwrap(), data);
    }

    /// Records the size of every batch it is handed.
    #[derive(Default)]
    struct Batches(Vec<usize>);

    #[async_trait::async_trait]
    impl FileWriter for Batches {
        async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
            self.0.push(chunks.iter().map(Bytes::len).sum());
            Ok(())
        }
        fn size(&self) -> u64 {
            self.0.iter().sum::<usize>() as u64
        }
        async fn commit(self: Box<Self>) -> Result<u64> {
            Ok(self.size())
        }
        async fn close(self: Box<Self>) -> Result<u64> {
            Ok(self.size())
        }
        async fn cancel(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn full_batches_are_exactly_the_batch_size() {
        let len = 5 * WRITE_BATCH + 777;
        let data = bytes(len, 11);
        let mut writer = Batches::default();
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        let n = ingest(stream(&data, false), &mut writer, &mut hasher)
            .await
            .unwrap();
        assert_eq!(n, len as u64);
        assert_eq!(
            writer.0,
            vec![
                WRITE_BATCH,
                WRITE_BATCH,
                WRITE_BATCH,
                WRITE_BATCH,
                WRITE_BATCH,
                777
            ]
        );
        assert_eq!(hasher.finish(), Digest::compute(Algorithm::Sha256, &data));
    }

    /// Two requests of one upload: the first one's hashing is released unfinished (kept as the
    /// session keeps it), the second continues from it; the hash covers both in order.
    #[tokio::test]
    async fn hashing_continues_across_requests_after_release() {
        let driver = MemoryDriver::new();
        let first = bytes(3 * WRITE_BATCH + 10, 5);
        let second = bytes(2 * WRITE_BATCH, 6);
        let mut writer = driver.writer("k", false).await.unwrap();
        let hashing = Hashing::from(DigestHasher::new(Algorithm::Sha512));
        let (n, hashing) = ingest_pending(stream(&first, false), writer.as_mut(), hashing).await;
        assert_eq!(n.unwrap(), first.len() as u64);
        assert!(matches!(hashing, Hashing::Finishing(..)), "{hashing:?}");
        assert_eq!(hashing.algorithm(), Algorithm::Sha512);
        let (n, hashing) = ingest_pending(stream(&second, false), writer.as_mut(), hashing).await;
        assert_eq!(n.unwrap(), second.len() as u64);
        let all = [first, second].concat();
        assert_eq!(
            hashing.settle().await.unwrap().finish(),
            Digest::compute(Algorithm::Sha512, &all)
        );
        assert_eq!(writer.commit().await.unwrap(), all.len() as u64);
        assert_eq!(driver.get_content("k").await.unwrap(), all);
    }
}
