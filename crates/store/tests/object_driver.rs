//! The object-store driver against real servers: moto (S3) and Azurite (Azure Blob Storage),
//! started per test on loopback ports by the shared harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use ocireg_store::driver::{
    conformance, AzureOptions, Driver, FileWriter, ObjectBackend, ObjectDriver, S3Options,
};
use ocireg_store::StoreError;
use ocireg_test_support::objstore::{self, Azurite, Moto, AWS_SECRET_ACCESS_KEY, AZURITE_KEY};

fn s3(endpoint: &str, bucket: &str) -> ObjectBackend {
    ObjectBackend::S3(S3Options {
        bucket: bucket.to_owned(),
        region: Some("us-east-1".to_owned()),
        endpoint: Some(endpoint.to_owned()),
        prefix: "registry".to_owned(),
        path_style: true,
        allow_http: true,
    })
}

fn azure(endpoint: &str, container: &str) -> ObjectBackend {
    ObjectBackend::Azure(AzureOptions {
        account: objstore::AZURITE_ACCOUNT.to_owned(),
        container: container.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        prefix: "registry".to_owned(),
    })
}

async fn open(backend: &ObjectBackend) -> ObjectDriver {
    objstore::use_test_credentials();
    ObjectDriver::open(backend).await.unwrap()
}

fn moto_with(bucket: &str) -> (Moto, ObjectBackend) {
    let moto = Moto::start();
    moto.create_bucket(bucket);
    let backend = s3(&moto.endpoint(), bucket);
    (moto, backend)
}

fn azurite_with(container: &str) -> (Azurite, ObjectBackend) {
    objstore::use_test_credentials();
    let azurite = Azurite::start();
    azurite.create_container(container);
    let backend = azure(&azurite.endpoint(), container);
    (azurite, backend)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

async fn read_all(d: &dyn Driver, key: &str) -> Vec<u8> {
    let (size, body) = d.reader(key, 0, None).await.unwrap();
    let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
    let data = chunks.concat();
    assert_eq!(size, data.len() as u64);
    data
}

/// Appends `data` in 1 MiB pieces (the store's write batches) and closes.
async fn append(d: &dyn Driver, key: &str, data: &[u8]) -> Result<u64, StoreError> {
    let mut w = d.writer(key, true).await?;
    for piece in data.chunks(1 << 20) {
        w.write(vec![Bytes::copy_from_slice(piece)]).await?;
    }
    w.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_moto() {
    let (_moto, backend) = moto_with("conformance");
    let driver: Arc<dyn Driver> = Arc::new(open(&backend).await);
    assert!(driver.shared());
    conformance::run_all(driver).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_azurite() {
    let (_azurite, backend) = azurite_with("conformance");
    let driver: Arc<dyn Driver> = Arc::new(open(&backend).await);
    conformance::run_all(driver).await.unwrap();
}

/// A session written by one driver, continued by another on the same bucket (another
/// process, as far as the bucket can tell): parts, tail, reads, the move into place.
async fn continue_session(backend: &ObjectBackend) {
    let (a, b) = (open(backend).await, open(backend).await);
    let key = "repositories/r/_uploads/0123";
    a.put_scratch(key, Bytes::new()).await.unwrap();
    // 1 MiB pieces adding up to more than a part, then more: parts plus a tail.
    let first = pattern((9 << 20) + 123, 1);
    assert_eq!(append(&a, key, &first).await.unwrap(), first.len() as u64);
    assert_eq!(b.stat(key).await.unwrap().size, first.len() as u64);
    let second = pattern((3 << 20) + 5, 2);
    let total = append(&b, key, &second).await.unwrap();
    let mut expected = first;
    expected.extend_from_slice(&second);
    assert_eq!(total, expected.len() as u64);
    assert_eq!(a.stat(key).await.unwrap().size, total);
    assert_eq!(read_all(&a, key).await, expected, "read back after close");
    // After the read, a third writer continues in a new upload.
    let third = pattern((8 << 20) + 77, 3);
    append(&a, key, &third).await.unwrap();
    expected.extend_from_slice(&third);
    let (_, body) = b.reader(key, 1000, Some(10 << 20)).await.unwrap();
    let ranged: Vec<Bytes> = body.try_collect().await.unwrap();
    assert_eq!(ranged.concat(), &expected[1000..1000 + (10 << 20)]);
    let listed = a.list("repositories/r/_uploads").await.unwrap();
    assert_eq!(listed, [key]);
    b.move_object(key, "blobs/sha256/ab/abcd").await.unwrap();
    assert_eq!(read_all(&a, "blobs/sha256/ab/abcd").await, expected);
    assert!(a.stat(key).await.unwrap_err().is_not_found());
    let left = a.walk("").await.unwrap();
    let keys: Vec<&str> = left.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["blobs/sha256/ab/abcd"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_continues_in_another_driver_on_moto() {
    let (_moto, backend) = moto_with("sessions");
    continue_session(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_continues_in_another_driver_on_azurite() {
    let (_azurite, backend) = azurite_with("sessions");
    continue_session(&backend).await;
}

/// Two writers opened on the same session state race: exactly one records its bytes.
async fn race(a: &ObjectDriver, b: &ObjectDriver, key: &str, len: usize) {
    let base = pattern(1 << 20, 9);
    append(a, key, &base).await.unwrap();
    let wa = a.writer(key, true).await.unwrap();
    let wb = b.writer(key, true).await.unwrap();
    let (da, db) = (pattern(len, 10), pattern(len, 11));
    let run = |mut w: Box<dyn FileWriter>, data: Vec<u8>| async move {
        for piece in data.chunks(1 << 20) {
            w.write(vec![Bytes::copy_from_slice(piece)]).await?;
        }
        w.close().await
    };
    let (ra, rb) = tokio::join!(run(wa, da.clone()), run(wb, db.clone()));
    let winner = match (&ra, &rb) {
        (Ok(_), Err(StoreError::PreconditionFailed { .. })) => da,
        (Err(StoreError::PreconditionFailed { .. }), Ok(_)) => db,
        other => panic!("exactly one writer must win: {other:?}"),
    };
    let mut expected = base;
    expected.extend_from_slice(&winner);
    assert_eq!(a.stat(key).await.unwrap().size, expected.len() as u64);
    assert_eq!(
        read_all(b, key).await,
        expected,
        "the object holds the winner's bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_moto_one_wins() {
    let (_moto, backend) = moto_with("races");
    let (a, b) = (open(&backend).await, open(&backend).await);
    race(&a, &b, "up/small", 300_000).await;
    race(&a, &b, "up/parts", (9 << 20) + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_store_is_unavailable_quickly_and_says_where() {
    objstore::use_test_credentials();
    let port = ocireg_test_support::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = ObjectDriver::open(&s3(&endpoint, "nowhere"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    eprintln!("unreachable store: {:?}: {err}", started.elapsed());
    let text = err.to_string();
    assert!(err.retry_after().is_some(), "not Unavailable: {err:?}");
    assert!(
        text.contains("nowhere") && text.contains(&endpoint),
        "{text}"
    );
    assert!(
        !text.contains(AWS_SECRET_ACCESS_KEY)
            && !format!("{err:?}").contains(AWS_SECRET_ACCESS_KEY)
    );
}

/// A server that answers every request with S3's throttling answer.
fn slow_down_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Slow Down\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttling_store_is_unavailable_after_retries() {
    objstore::use_test_credentials();
    let endpoint = slow_down_server();
    let started = Instant::now();
    let err = ObjectDriver::open(&s3(&endpoint, "busy"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    eprintln!("throttling store: {:?}: {err}", started.elapsed());
    let Some(retry_after) = err.retry_after() else {
        panic!("not Unavailable: {err:?}");
    };
    assert!(retry_after <= Duration::from_secs(5));
    let text = err.to_string();
    assert!(text.contains("503") && text.contains("busy"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_shows_in_the_driver_or_its_errors() {
    let (_moto, backend) = moto_with("secrets");
    let driver = open(&backend).await;
    let (_azurite, az) = azurite_with("secrets");
    let az = open(&az).await;
    for shown in [format!("{driver:?} {driver}"), format!("{az:?} {az}")] {
        assert!(
            !shown.contains(AWS_SECRET_ACCESS_KEY) && !shown.contains(AZURITE_KEY),
            "{shown}"
        );
        assert!(shown.contains("secrets"), "{shown}");
    }
    let missing = driver.get_content("no/such").await.unwrap_err();
    let shown = format!("{missing} {missing:?}");
    assert!(!shown.contains(AWS_SECRET_ACCESS_KEY), "{shown}");
    let absent = ObjectDriver::open(&s3(&_moto.endpoint(), "absent-bucket"))
        .await
        .unwrap_err();
    let shown = format!("{absent} {absent:?}");
    assert!(shown.contains("absent-bucket"), "{shown}");
    assert!(!shown.contains(AWS_SECRET_ACCESS_KEY), "{shown}");
}

fn chunk(data: &[u8]) -> ocireg_store::Chunk {
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(300_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    ocireg_store::Chunk::new(Box::pin(futures_util::stream::iter(pieces)))
}

/// The store's upload path over the driver: a session started and appended to through one
/// store, continued and completed through another on the same bucket (a second replica, which
/// reloads the session from storage: stat, re-hash through a reader, append, publish).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_started_on_one_replica_completes_on_another() {
    use ocireg_oci::{Algorithm, Digest, RepoName};
    use ocireg_store::{Store, StoreOptions};
    let (_moto, backend) = moto_with("replicas");
    let open_store = |backend: ObjectBackend| async move {
        let driver: Arc<dyn Driver> = Arc::new(open(&backend).await);
        Store::open(driver, StoreOptions::default()).await.unwrap()
    };
    let (a, b) = (open_store(backend.clone()).await, open_store(backend).await);
    let repo: RepoName = "team/app".parse().unwrap();
    let data = pattern((11 << 20) + 4321, 7);
    let digest = Digest::compute(Algorithm::Sha256, &data);
    let id = a.upload_start(&repo, None).await.unwrap();
    let cut = (6 << 20) + 17;
    assert_eq!(
        a.upload_append(&repo, &id, chunk(&data[..cut]).at(0))
            .await
            .unwrap(),
        cut as u64
    );
    a.close_uploads().await;
    assert_eq!(b.upload_offset(&repo, &id).await.unwrap(), cut as u64);
    let size = b
        .upload_complete(
            &repo,
            &id,
            &digest,
            Some(chunk(&data[cut..]).at(cut as u64)),
        )
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    let read = b.blob_read(&repo, &digest, None).await.unwrap();
    let chunks: Vec<Bytes> = read.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), data);
    assert!(
        a.upload_offset(&repo, &id).await.is_err(),
        "the session is gone"
    );
}
