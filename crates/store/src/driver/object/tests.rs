//! Unit tests on `object_store`'s in-memory store (which completes an upload with every part
//! uploaded, so racing writers are tested against moto in `tests/object_driver.rs`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::memory::InMemory;

use super::errors::Reporter;
use super::state::PART_SIZE;
use super::ObjectDriver;
use crate::driver::{conformance, Driver};

fn driver_on(store: &Arc<InMemory>, prefix: &str) -> ObjectDriver {
    ObjectDriver::with_store(
        store.clone(),
        store.clone(),
        Reporter {
            store: "memory bucket".into(),
            secrets: vec!["topsecretvalue".into()],
        },
        prefix.to_owned(),
        "s3",
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

async fn read_all(d: &dyn Driver, key: &str) -> Vec<u8> {
    let (_, body) = d.reader(key, 0, None).await.unwrap();
    let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
    chunks.concat()
}

/// Writes `data` in 1 MiB pieces.
async fn append(d: &dyn Driver, key: &str, data: &[u8]) -> u64 {
    let mut w = d.writer(key, true).await.unwrap();
    for piece in data.chunks(1 << 20) {
        w.write(vec![Bytes::copy_from_slice(piece)]).await.unwrap();
    }
    w.close().await.unwrap()
}

#[tokio::test]
async fn passes_the_conformance_suite_in_memory() {
    let store = Arc::new(InMemory::new());
    for prefix in ["", "some/prefix"] {
        let driver: Arc<dyn Driver> = Arc::new(driver_on(&store, prefix));
        conformance::run_all(driver).await.unwrap();
    }
}

#[tokio::test]
async fn a_session_continues_in_another_driver_and_reads_back_exactly() {
    let store = Arc::new(InMemory::new());
    let (a, b) = (driver_on(&store, "p"), driver_on(&store, "p"));
    let first = pattern(PART_SIZE + (1 << 20) + 5, 1);
    let second = pattern(3 << 20, 2);
    assert_eq!(append(&a, "up/s", &first).await, first.len() as u64);
    assert_eq!(b.stat("up/s").await.unwrap().size, first.len() as u64);
    let total = append(&b, "up/s", &second).await;
    let mut expected = first.clone();
    expected.extend_from_slice(&second);
    assert_eq!(total, expected.len() as u64);
    assert_eq!(a.stat("up/s").await.unwrap().size, total);
    // Reading completes the upload; appending afterwards starts a new segment.
    assert_eq!(read_all(&a, "up/s").await, expected);
    let third = pattern(PART_SIZE + 7, 3);
    append(&a, "up/s", &third).await;
    expected.extend_from_slice(&third);
    let (_, body) = b.reader("up/s", 10, Some(PART_SIZE as u64)).await.unwrap();
    let ranged: Vec<Bytes> = body.try_collect().await.unwrap();
    assert_eq!(ranged.concat(), &expected[10..10 + PART_SIZE]);
    let walked = b.walk("up").await.unwrap();
    assert_eq!(walked.len(), 1, "{walked:?}");
    assert_eq!(walked[0].size, expected.len() as u64);
    b.move_object("up/s", "blobs/x").await.unwrap();
    assert_eq!(read_all(&a, "blobs/x").await, expected);
    assert!(a.stat("up/s").await.unwrap_err().is_not_found());
    assert!(a.walk("").await.unwrap().iter().all(|m| m.key == "blobs/x"));
    let leftovers: Vec<_> = object_store::ObjectStore::list(store.as_ref(), None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(leftovers.len(), 1, "private objects left: {leftovers:?}");
}

#[tokio::test]
async fn objects_over_the_copy_limit_are_copied_by_streaming() {
    let store = Arc::new(InMemory::new());
    let d = driver_on(&store, "").with_copy_limit(1000);
    let data = pattern(5000, 4);
    d.put_content("big/a", Bytes::from(data.clone()))
        .await
        .unwrap();
    d.move_object("big/a", "big/b").await.unwrap();
    assert_eq!(
        d.get_content("big/b").await.unwrap().as_ref(),
        data.as_slice()
    );
    assert!(d.stat("big/a").await.unwrap_err().is_not_found());
    // A session of one segment over the limit.
    let session = pattern(PART_SIZE + 3000, 5);
    append(&d, "big/s", &session).await;
    d.move_object("big/s", "big/t").await.unwrap();
    assert_eq!(read_all(&d, "big/t").await, session);
}

#[tokio::test]
async fn a_cancelled_session_leaves_nothing() {
    let store = Arc::new(InMemory::new());
    let d = driver_on(&store, "");
    let mut w = d.writer("c/s", false).await.unwrap();
    w.write(vec![Bytes::from(pattern(PART_SIZE + 10, 6))])
        .await
        .unwrap();
    w.cancel().await.unwrap();
    let left: Vec<_> = object_store::ObjectStore::list(store.as_ref(), None)
        .try_collect()
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn the_driver_shows_no_secret() {
    let store = Arc::new(InMemory::new());
    let d = driver_on(&store, "x");
    let shown = format!("{d:?} {d}");
    assert!(shown.contains("memory bucket"), "{shown}");
    assert!(!shown.contains("topsecretvalue"), "{shown}");
}

#[tokio::test]
async fn a_session_ending_on_a_part_boundary_completes() {
    // No tail to fold into the upload: completion seals it without a last part.
    let store = Arc::new(InMemory::new());
    let d = Arc::new(driver_on(&store, ""));
    let data = pattern(2 * PART_SIZE, 7);
    assert_eq!(append(&*d, "edge/s", &data).await, data.len() as u64);
    // On a thread of its own: a completion that never ends (it once resealed forever, never
    // yielding on the in-memory store) fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = Arc::clone(&d);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _ = tx.send(rt.block_on(read_all(&*reader, "edge/s")));
    });
    let done = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("completing the upload finishes");
    assert_eq!(done, data);
    d.move_object("edge/s", "edge/t").await.unwrap();
    assert_eq!(read_all(&*d, "edge/t").await, data);
}
