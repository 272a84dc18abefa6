//! Upload sessions across replicas: stores over clones of one shared in-memory driver stand
//! for `ocireg serve` processes on one bucket, with nothing shared but the storage.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use ocireg_oci::{Algorithm, Digest, ErrorCode, RepoName};
use ocireg_store::driver::{Precondition, Version};
use ocireg_store::{
    ByteStream, Chunk, Driver, FileWriter, GcOptions, MemoryDriver, ObjectMeta, QuotaOptions,
    Store, StoreError, StoreOptions, UploadWatch,
};
use ocireg_test_support::xorshift::bytes;

/// Three stores over one shared storage, and that storage.
async fn replicas() -> (MemoryDriver, [Store; 3]) {
    let storage = MemoryDriver::shared_by_replicas();
    let opts = StoreOptions {
        dedupe: true,
        ..Default::default()
    };
    let mut stores = Vec::new();
    for _ in 0..3 {
        let driver: Arc<dyn Driver> = Arc::new(storage.clone());
        stores.push(Store::open(driver, opts.clone()).await.unwrap());
    }
    let [a, b, c] = <[Store; 3]>::try_from(stores).unwrap();
    (storage, [a, b, c])
}

fn repo() -> RepoName {
    "team/app".parse().unwrap()
}

fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

/// The data as a stream of uneven frames.
fn body(data: &[u8]) -> ByteStream {
    let mut frames = Vec::new();
    let (mut at, mut size) = (0, 777);
    while at < data.len() {
        let end = data.len().min(at + size);
        frames.push(Ok(Bytes::copy_from_slice(&data[at..end])));
        at = end;
        size = (size * 5 + 3) % 400_000 + 1;
    }
    Box::pin(stream::iter(frames))
}

/// The data as a stream that yields to other tasks between its frames, so that requests on
/// other replicas run while it is being received.
fn slow_body(data: &[u8]) -> ByteStream {
    let frames: Vec<Bytes> = data.chunks(16 << 10).map(Bytes::copy_from_slice).collect();
    Box::pin(stream::unfold(frames.into_iter(), |mut rest| async move {
        tokio::task::yield_now().await;
        rest.next().map(|frame| (Ok(frame), rest))
    }))
}

/// The blob's bytes as stored (read from storage, not through any store's index).
async fn stored_blob(storage: &MemoryDriver, d: &Digest) -> Vec<u8> {
    let hex = d.hex();
    let key = format!("blobs/sha256/{}/{}", &hex[..2], &*hex);
    storage.get_content(&key).await.unwrap().to_vec()
}

/// Every key below the repository's upload sessions.
async fn upload_keys(storage: &MemoryDriver) -> Vec<String> {
    storage
        .walk("repositories/team/app/_uploads")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect()
}

#[tokio::test]
async fn a_session_moves_between_replicas() {
    let (storage, [a, b, c]) = replicas().await;
    let r = repo();
    let data = bytes(5 << 20, 1);
    let d = sha256(&data);
    let id = a.upload_start(&r, None).await.unwrap();
    let (x, y) = (1_500_001, 3_700_000);
    let at = b
        .upload_append(&r, &id, Chunk::new(body(&data[..x])).at(0))
        .await
        .unwrap();
    assert_eq!(at, x as u64);
    assert_eq!(c.upload_offset(&r, &id).await.unwrap(), x as u64);
    let at = c
        .upload_append(&r, &id, Chunk::new(body(&data[x..y])).at(x as u64))
        .await
        .unwrap();
    assert_eq!(at, y as u64);
    assert_eq!(a.upload_offset(&r, &id).await.unwrap(), y as u64);
    let size = a
        .upload_complete(&r, &id, &d, Some(Chunk::new(body(&data[y..]))))
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(stored_blob(&storage, &d).await, data);
    assert_eq!(a.blob_stat(&r, &d).await.unwrap(), data.len() as u64);
    // The session is over everywhere and left nothing behind.
    for store in [&a, &b, &c] {
        let err = store.upload_offset(&r, &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
    }
    assert!(upload_keys(&storage).await.is_empty());
}

#[tokio::test]
async fn completion_resumes_the_saved_hash_instead_of_rereading() {
    let (storage, [a, b, _]) = replicas().await;
    let r = repo();
    let data = bytes(2 << 20, 2);
    let d = sha256(&data);
    let id = a.upload_start(&r, None).await.unwrap();
    a.upload_append(&r, &id, Chunk::new(body(&data)).at(0))
        .await
        .unwrap();
    // Were the bytes re-read at completion, the tampered byte would be hashed and fail the
    // digest; the saved hash state covers what was appended, so completion trusts it.
    let key = format!("repositories/team/app/_uploads/{id}");
    let mut tampered = storage.get_content(&key).await.unwrap().to_vec();
    tampered[0] ^= 1;
    storage
        .put_content(&key, Bytes::from(tampered))
        .await
        .unwrap();
    b.upload_complete(&r, &id, &d, None).await.unwrap();
}

#[tokio::test]
async fn a_monolithic_put_finishes_a_session_started_elsewhere() {
    let (storage, [a, b, _]) = replicas().await;
    let r = repo();
    for (i, alg) in [Algorithm::Sha256, Algorithm::Sha512]
        .into_iter()
        .enumerate()
    {
        let data = bytes(3 << 20, 10 + i as u64);
        let d = Digest::compute(alg, &data);
        let id = a.upload_start(&r, None).await.unwrap();
        let size = b
            .upload_complete(
                &r,
                &id,
                &d,
                Some(Chunk::new(body(&data)).sized(data.len() as u64)),
            )
            .await
            .unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(b.blob_stat(&r, &d).await.unwrap(), data.len() as u64);
        let read = b.blob_read(&r, &d, None).await.unwrap();
        let mut got = Vec::new();
        let mut body = read.body;
        while let Some(frame) = body.next().await {
            got.extend_from_slice(&frame.unwrap());
        }
        assert_eq!(got, data, "{alg}");
    }
    assert!(upload_keys(&storage).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_racing_appends_exactly_one_wins() {
    for round in 0..20u64 {
        let (storage, [a, b, c]) = replicas().await;
        let r = repo();
        let head = bytes(100_000, 3);
        let id = a.upload_start(&r, None).await.unwrap();
        a.upload_append(&r, &id, Chunk::new(body(&head)).at(0))
            .await
            .unwrap();
        let from_b = bytes(300_000 + round as usize, 4 + round);
        let from_c = bytes(200_000, 5 + round);
        let at = head.len() as u64;
        let append = |store: &Store, data: &[u8]| {
            let (store, r, id, body) = (store.clone(), r.clone(), id.clone(), slow_body(data));
            tokio::spawn(async move { store.upload_append(&r, &id, Chunk::new(body).at(at)).await })
        };
        let (rb, rc) = (append(&b, &from_b), append(&c, &from_c));
        let (rb, rc) = (rb.await.unwrap(), rc.await.unwrap());
        let (winner, loser) = match (rb, rc) {
            (Ok(w), Err(l)) => ((w, &from_b), l),
            (Err(l), Ok(w)) => ((w, &from_c), l),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        let won = winner.1;
        assert_eq!(winner.0, at + won.len() as u64);
        match loser {
            StoreError::UploadRange { offset, .. } => assert_eq!(offset, winner.0, "round {round}"),
            other => panic!("round {round}: the loser got {other:?}"),
        }
        // The loser's bytes are not part of the blob.
        let whole = [head.as_slice(), won.as_slice()].concat();
        let d = sha256(&whole);
        a.upload_complete(&r, &id, &d, None).await.unwrap();
        assert_eq!(stored_blob(&storage, &d).await, whole);
    }
}

#[tokio::test]
async fn a_session_cancelled_elsewhere_is_unknown_everywhere() {
    let (storage, [a, b, c]) = replicas().await;
    let r = repo();
    let id = a.upload_start(&r, None).await.unwrap();
    a.upload_append(&r, &id, Chunk::new(body(b"hello")).at(0))
        .await
        .unwrap();
    b.upload_cancel(&r, &id).await.unwrap();
    assert!(upload_keys(&storage).await.is_empty());
    for store in [&a, &b, &c] {
        let err = store.upload_offset(&r, &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
    }
    let err = c
        .upload_append(&r, &id, Chunk::new(body(b" world")).at(5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
    let err = a.upload_cancel(&r, &id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
}

#[tokio::test]
async fn a_digest_mismatch_on_another_replica_leaves_nothing() {
    let (storage, [a, b, c]) = replicas().await;
    let r = repo();
    let data = bytes(1 << 20, 6);
    let id = a.upload_start(&r, None).await.unwrap();
    b.upload_append(&r, &id, Chunk::new(body(&data[..500_000])).at(0))
        .await
        .unwrap();
    let wrong = sha256(b"something else");
    let err = c
        .upload_complete(&r, &id, &wrong, Some(Chunk::new(body(&data[500_000..]))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
    assert!(upload_keys(&storage).await.is_empty());
    assert!(storage.walk("blobs").await.unwrap().is_empty());
    let err = a.upload_offset(&r, &id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
}

#[tokio::test]
async fn out_of_order_chunks_are_refused_with_the_stored_offset() {
    let (_, [a, b, _]) = replicas().await;
    let r = repo();
    let id = a.upload_start(&r, None).await.unwrap();
    a.upload_append(&r, &id, Chunk::new(body(b"hello")).at(0))
        .await
        .unwrap();
    let err = b
        .upload_append(&r, &id, Chunk::new(body(b"x")).at(3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UploadRange { offset: 5, .. }),
        "{err:?}"
    );
    // The refusal handed the session back: the right chunk goes on at once.
    let at = b
        .upload_append(&r, &id, Chunk::new(body(b" world")).at(5))
        .await
        .unwrap();
    assert_eq!(at, 11);
    a.upload_complete(&r, &id, &sha256(b"hello world"), None)
        .await
        .unwrap();
}

/// Records the sessions an [`UploadWatch`] is told are open.
#[derive(Default)]
struct Open(parking_lot::Mutex<HashSet<String>>);

impl UploadWatch for Open {
    fn opened(&self, session: &str, _owner: &str) {
        self.0.lock().insert(session.to_owned());
    }
    fn used(&self, _session: &str) {}
    fn ended(&self, session: &str) {
        self.0.lock().remove(session);
    }
}

#[tokio::test]
async fn a_session_that_ends_elsewhere_stops_counting_where_it_opened() {
    let (_, [a, b, _]) = replicas().await;
    let (watch_a, watch_b) = (Arc::new(Open::default()), Arc::new(Open::default()));
    a.watch_uploads(watch_a.clone());
    b.watch_uploads(watch_b.clone());
    let r = repo();
    let done = a.upload_start(&r, Some("client")).await.unwrap();
    let open = a.upload_start(&r, Some("client")).await.unwrap();
    assert_eq!(watch_a.0.lock().len(), 2);
    assert_eq!(a.upload_session_count(), 2);
    b.upload_complete(&r, &done, &sha256(b"abc"), Some(Chunk::new(body(b"abc"))))
        .await
        .unwrap();
    // B never saw the session open: its watcher is told it ended, which it ignores.
    assert!(watch_b.0.lock().is_empty());
    // A learns from storage that the session is over; the open one still counts.
    a.recheck_uploads(Duration::ZERO).await;
    assert_eq!(watch_a.0.lock().len(), 1);
    assert!(watch_a.0.lock().iter().all(|k| k.ends_with(&open)));
    assert_eq!(a.upload_session_count(), 1);
    // Sessions touched more recently than the idle time are not looked at.
    b.upload_cancel(&r, &open).await.unwrap();
    a.recheck_uploads(Duration::from_secs(3600)).await;
    assert_eq!(watch_a.0.lock().len(), 1);
    a.recheck_uploads(Duration::ZERO).await;
    assert!(watch_a.0.lock().is_empty());
    assert_eq!(a.upload_session_count(), 0);
}

/// A shared driver whose writers lose to "another writer" while `lose` is set: their close
/// and commit fail with `PreconditionFailed` and store nothing, as the object-store driver's
/// writer does when a racing writer won.
#[derive(Debug)]
struct Contested {
    inner: MemoryDriver,
    lose: Arc<AtomicBool>,
}

struct LosingWriter {
    inner: Box<dyn FileWriter>,
    key: String,
    lose: Arc<AtomicBool>,
}

impl LosingWriter {
    fn lost(&self) -> Result<(), StoreError> {
        if self.lose.load(Ordering::SeqCst) {
            return Err(StoreError::PreconditionFailed {
                key: self.key.clone(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl FileWriter for LosingWriter {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<(), StoreError> {
        self.inner.write(chunks).await
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    async fn commit(self: Box<Self>) -> Result<u64, StoreError> {
        self.lost()?;
        self.inner.commit().await
    }
    async fn close(self: Box<Self>) -> Result<u64, StoreError> {
        self.lost()?;
        self.inner.close().await
    }
    async fn cancel(self: Box<Self>) -> Result<(), StoreError> {
        self.inner.cancel().await
    }
}

#[async_trait]
impl Driver for Contested {
    fn name(&self) -> &'static str {
        "contested"
    }
    fn shared(&self) -> bool {
        true
    }
    async fn get_content(&self, key: &str) -> Result<Bytes, StoreError> {
        self.inner.get_content(key).await
    }
    async fn put_content(&self, key: &str, content: Bytes) -> Result<(), StoreError> {
        self.inner.put_content(key, content).await
    }
    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version), StoreError> {
        self.inner.get_versioned(key).await
    }
    async fn put_if(
        &self,
        key: &str,
        content: Bytes,
        condition: Precondition,
    ) -> Result<Version, StoreError> {
        self.inner.put_if(key, content, condition).await
    }
    async fn reader(
        &self,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(u64, ByteStream), StoreError> {
        self.inner.reader(key, offset, len).await
    }
    async fn writer(&self, key: &str, append: bool) -> Result<Box<dyn FileWriter>, StoreError> {
        Ok(Box::new(LosingWriter {
            inner: self.inner.writer(key, append).await?,
            key: key.to_owned(),
            lose: Arc::clone(&self.lose),
        }))
    }
    async fn stat(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.inner.stat(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.walk(prefix).await
    }
    async fn move_object(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.inner.move_object(from, to).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}

#[tokio::test]
async fn a_writer_that_lost_to_another_answers_416_and_adds_nothing() {
    let storage = MemoryDriver::shared_by_replicas();
    let lose = Arc::new(AtomicBool::new(false));
    let contested = Contested {
        inner: storage.clone(),
        lose: Arc::clone(&lose),
    };
    let a = Store::open(Arc::new(storage.clone()), StoreOptions::default())
        .await
        .unwrap();
    let b = Store::open(Arc::new(contested), StoreOptions::default())
        .await
        .unwrap();
    let r = repo();
    let id = a.upload_start(&r, None).await.unwrap();
    a.upload_append(&r, &id, Chunk::new(body(b"hello")).at(0))
        .await
        .unwrap();
    lose.store(true, Ordering::SeqCst);
    let err = b
        .upload_append(&r, &id, Chunk::new(body(b" world")).at(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UploadRange { offset: 5, .. }),
        "{err:?}"
    );
    let err = b
        .upload_complete(&r, &id, &sha256(b"hello"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UploadRange { offset: 5, .. }),
        "{err:?}"
    );
    lose.store(false, Ordering::SeqCst);
    assert_eq!(b.upload_offset(&r, &id).await.unwrap(), 5);
    b.upload_append(&r, &id, Chunk::new(body(b"!!!")).at(5))
        .await
        .unwrap();
    let d = sha256(b"hello!!!");
    a.upload_complete(&r, &id, &d, None).await.unwrap();
    let stored = storage
        .walk("repositories/team/app/_uploads")
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    let hex = d.hex();
    let key = format!("repositories/team/app/_blobs/sha256/{}", &*hex);
    let shared = format!("blobs/sha256/{}/{}", &hex[..2], &*hex);
    let blob = match storage.get_content(&key).await {
        Ok(b) => b,
        Err(_) => storage.get_content(&shared).await.unwrap(),
    };
    assert_eq!(&blob[..], b"hello!!!");
}

#[tokio::test]
async fn a_request_dropped_midway_hands_the_session_back() {
    let (_, [a, b, _]) = replicas().await;
    let r = repo();
    let id = a.upload_start(&r, None).await.unwrap();
    // A client that sends three bytes and then nothing, cut off by a timeout.
    let stalled: ByteStream =
        Box::pin(stream::iter([Ok(Bytes::from_static(b"abc"))]).chain(stream::pending()));
    let cut = tokio::time::timeout(
        Duration::from_millis(200),
        b.upload_append(&r, &id, Chunk::new(stalled).at(0)),
    )
    .await;
    assert!(cut.is_err());
    // The claim was handed back: the next request goes on without waiting for it to lapse
    // (or giving up after the wait with 416).
    let started = std::time::Instant::now();
    let at = a
        .upload_append(&r, &id, Chunk::new(body(b"hello")).at(0))
        .await
        .unwrap();
    assert_eq!(at, 5);
    assert!(started.elapsed() < Duration::from_secs(5));
    a.upload_complete(&r, &id, &sha256(b"hello"), None)
        .await
        .unwrap();
}

/// Two stores over one shared storage, each with a registry limit of `limit` bytes.
async fn limited_replicas(limit: u64) -> (MemoryDriver, Store, Store) {
    let storage = MemoryDriver::shared_by_replicas();
    let opts = StoreOptions {
        dedupe: true,
        quota: Some(QuotaOptions {
            storage_limit_bytes: Some(limit),
            ..Default::default()
        }),
        ..Default::default()
    };
    let a = Store::open(Arc::new(storage.clone()), opts.clone())
        .await
        .unwrap();
    let b = Store::open(Arc::new(storage.clone()), opts).await.unwrap();
    (storage, a, b)
}

#[tokio::test]
async fn quota_reservations_of_a_session_finished_elsewhere_are_given_back() {
    let (_, a, b) = limited_replicas(100).await;
    let r = repo();
    let first = bytes(60, 20);
    let s1 = a.upload_start(&r, None).await.unwrap();
    a.upload_append(&r, &s1, Chunk::new(body(&first)).at(0).sized(60))
        .await
        .unwrap();
    b.upload_complete(&r, &s1, &sha256(&first), None)
        .await
        .unwrap();
    // A still holds the 60 bytes its session held: 50 more do not fit here.
    let s2 = a.upload_start(&r, None).await.unwrap();
    let chunk = bytes(50, 21);
    let err = a
        .upload_append(&r, &s2, Chunk::new(body(&chunk)).at(0).sized(50))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err:?}");
    // Once A finds the session gone from storage, its reservation is released.
    a.recheck_uploads(Duration::ZERO).await;
    a.upload_append(&r, &s2, Chunk::new(body(&chunk)).at(0).sized(50))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_body_stopped_by_the_quota_ends_the_session_everywhere() {
    let (storage, a, b) = limited_replicas(100).await;
    let r = repo();
    let id = a.upload_start(&r, None).await.unwrap();
    // No declared length: the body is stopped when it passes the limit.
    let err = b
        .upload_append(&r, &id, Chunk::new(body(&bytes(500, 22))).at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err:?}");
    assert!(upload_keys(&storage).await.is_empty());
    let err = a.upload_offset(&r, &id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
}

#[tokio::test]
async fn garbage_collection_removes_a_stale_session_with_its_state() {
    let (storage, [a, b, _]) = replicas().await;
    let r = repo();
    let id = a.upload_start(&r, None).await.unwrap();
    a.upload_append(&r, &id, Chunk::new(body(b"stale")).at(0))
        .await
        .unwrap();
    assert_eq!(upload_keys(&storage).await.len(), 2);
    let opts = GcOptions {
        upload_ttl: Duration::ZERO,
        ..Default::default()
    };
    let report = b.gc(&opts).await.unwrap();
    assert_eq!(report.uploads.len(), 1, "{report:?}");
    assert!(upload_keys(&storage).await.is_empty());
    let err = a
        .upload_append(&r, &id, Chunk::new(body(b"!")).at(5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
}
