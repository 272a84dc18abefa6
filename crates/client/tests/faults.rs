//! Fault injection between the client and `ocireg serve`: 503/429 with and without
//! `Retry-After` (retry counts and measured backoff), dropped connections, chunked uploads that
//! resume from the registry's offset, downloads that resume with `Range`, corrupted downloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::fault::{Fault, FaultProxy, Rule};
use common::*;
use ocireg_client::{BlobSource, ClientError, ClientOptions, Credentials, Registry};

struct Rig {
    proxy: FaultProxy,
    direct: Registry,
    _reg: TestRegistry,
}

async fn rig() -> Rig {
    rig_on(start_ocireg()).await
}

async fn rig_on(reg: TestRegistry) -> Rig {
    let proxy = FaultProxy::start(&reg.url).await;
    let direct = reg.client(Credentials::Anonymous, fast_options());
    Rig {
        proxy,
        direct,
        _reg: reg,
    }
}

impl Rig {
    /// Injects `fault` into the next `times` requests of `method` whose path contains `path`.
    fn fault(&self, method: &'static str, path: &str, times: usize, fault: Fault) {
        self.proxy.add(Rule::new(Some(method), path, times, fault));
    }

    fn client(&self, opts: ClientOptions) -> Registry {
        Registry::new(&self.proxy.url, Credentials::Anonymous, opts).unwrap()
    }
}

fn timing_options(delay_ms: u64, retries: u32) -> ClientOptions {
    ClientOptions {
        retries,
        retry_delay: Duration::from_millis(delay_ms),
        retry_backoff: 2.0,
        ..fast_options()
    }
}

fn gaps(times: &[std::time::Instant]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

fn assert_near(actual: f64, expected: f64, slack: f64) {
    assert!(
        actual >= expected - 0.01 && actual <= expected + slack,
        "waited {actual:.3}s, expected {expected:.3}s (+{slack}s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_with_exponential_backoff() {
    let rig = rig().await;
    rig.fault("HEAD", "/blobs/", 3, Fault::Status(503, None));
    let client = rig.client(timing_options(200, 3));
    let exists = client.blob_exists(&repo("r"), &sha256(b"x")).await.unwrap();
    assert!(!exists, "the fourth attempt reaches the registry");
    let heads = rig.proxy.seen_method("HEAD");
    assert_eq!(heads.len(), 4);
    let g = gaps(&heads.iter().map(|s| s.at).collect::<Vec<_>>());
    assert_near(g[0], 0.2, 0.15);
    assert_near(g[1], 0.4, 0.15);
    assert_near(g[2], 0.8, 0.15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_the_configured_retries_with_the_registry_error() {
    let rig = rig().await;
    rig.fault("GET", "/tags/list", 100, Fault::Status(503, None));
    let client = rig.client(timing_options(10, 2));
    let err = client.tags(&repo("r")).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert!(err.to_string().contains("injected 503"), "{err}");
    assert_eq!(rig.proxy.seen().len(), 3, "1 try + 2 retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_retry_after_seconds_and_http_dates_on_429() {
    let rig = rig().await;
    let client = rig.client(timing_options(20, 3));
    let r = repo("r");

    rig.fault("HEAD", "/blobs/", 1, Fault::Status(429, Some("1".into())));
    assert!(!client.blob_exists(&r, &sha256(b"a")).await.unwrap());
    let t: Vec<_> = rig.proxy.seen().iter().map(|s| s.at).collect();
    assert_eq!(t.len(), 2);
    assert_near(gaps(&t)[0], 1.0, 0.3);

    rig.proxy.clear();
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    rig.fault("HEAD", "/blobs/", 1, Fault::Status(429, Some(date)));
    assert!(!client.blob_exists(&r, &sha256(b"b")).await.unwrap());
    let t: Vec<_> = rig.proxy.seen().iter().skip(2).map(|s| s.at).collect();
    let g = gaps(&t)[0];
    // An HTTP date has one-second resolution: between 1 and 2 seconds from now.
    assert!((0.99..2.4).contains(&g), "waited {g}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried() {
    let rig = rig().await;
    rig.fault("GET", "/tags/list", 2, Fault::DropRequestAfter(0));
    let client = rig.client(timing_options(10, 3));
    let err = client.tags(&repo("none")).await.unwrap_err();
    // Reached the registry on the third try: its own answer for an unknown repository.
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(rig.proxy.seen().len(), 3);

    rig.proxy.clear();
    rig.fault("GET", "/tags/list", 100, Fault::DropRequestAfter(0));
    let err = client.tags(&repo("none")).await.unwrap_err();
    assert!(matches!(err, ClientError::Connection { .. }), "{err:?}");
}

/// Pushes 6 MiB in 1 MiB chunks through a dropped `PATCH` (after 300 000 bytes) and a 503;
/// `posts` is how many sessions the registry makes the client open (1 = resumed in place).
async fn resumed_upload(rig: Rig, source_is_reader: bool, posts: usize) {
    let work = tempfile::tempdir().unwrap();
    let size = 6 * 1024 * 1024 + 3;
    let (file, digest) = write_blob_file(work.path(), "blob", size, 11);
    // The third PATCH breaks after 300 000 bytes; then a 503 on the fifth.
    rig.proxy.add(
        Rule::new(
            Some("PATCH"),
            "/blobs/uploads/",
            1,
            Fault::DropRequestAfter(300_000),
        )
        .after(2),
    );
    rig.proxy.add(
        Rule::new(
            Some("PATCH"),
            "/blobs/uploads/",
            1,
            Fault::Status(503, Some("0".into())),
        )
        .after(4),
    );
    let client = rig.client(ClientOptions {
        chunk_size: 1024 * 1024,
        monolithic_threshold: 1024 * 1024,
        ..timing_options(10, 3)
    });
    let r = repo("resume");
    let source = if source_is_reader {
        BlobSource::Reader(Box::new(tokio::fs::File::open(&file).await.unwrap()))
    } else {
        BlobSource::Path(file.clone())
    };
    client.push_blob(&r, &digest, size, source).await.unwrap();

    let seen = rig.proxy.seen();
    let opened = seen.iter().filter(|s| s.method == "POST").count();
    assert_eq!(opened, posts, "upload sessions opened");
    let dropped = seen
        .iter()
        .position(|s| matches!(s.fault, Some(Fault::DropRequestAfter(_))))
        .unwrap();
    assert_eq!(
        seen[dropped + 1].method,
        "GET",
        "asks the registry for its offset"
    );
    assert!(seen[dropped + 1].uri.contains("/blobs/uploads/"));
    let forwarded = rig.proxy.request_body_bytes();
    if posts == 1 {
        assert!(
            forwarded <= size + 300_000 + 1024 * 1024,
            "sent {forwarded} bytes for a {size}-byte blob: more than one chunk re-sent"
        );
    }
    // The 503 (nothing consumed) is always resumed in place: after it, a status GET and no POST.
    let refused = seen
        .iter()
        .position(|s| matches!(s.fault, Some(Fault::Status(503, _))))
        .unwrap();
    assert_eq!(seen[refused + 1].method, "GET");
    assert!(seen[refused + 1..].iter().all(|s| s.method != "POST"));
    let puts = seen.iter().filter(|s| s.method == "PUT").count();
    assert_eq!(puts, 1);

    let pulled = work.path().join("pulled");
    rig.direct
        .pull_blob_to_file(&r, &digest, &pulled)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_from_a_file_resumes_at_the_registry_offset() {
    resumed_upload(rig().await, false, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_from_a_reader_resends_its_buffered_chunk() {
    resumed_upload(rig().await, true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_recovers_on_distribution_too() {
    // Distribution 2.8 keeps the partial bytes of a broken PATCH but not the session state in
    // its `_state` parameter, so the status GET answers 404: the client starts a new session.
    // After a 503 (nothing consumed) it resumes in place.
    resumed_upload(
        rig_on(start_distribution(&DistOptions::default())).await,
        false,
        2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_grow_to_the_registry_minimum() {
    let rig = rig().await;
    rig.fault(
        "POST",
        "/blobs/uploads/",
        1,
        Fault::AddHeader("OCI-Chunk-Min-Length", (2 * 1024 * 1024).to_string()),
    );
    let client = rig.client(ClientOptions {
        chunk_size: 512 * 1024,
        monolithic_threshold: 0,
        ..fast_options()
    });
    let data = pseudo_random(5 * 1024 * 1024, 4);
    let d = sha256(&data);
    client
        .push_blob(&repo("minchunk"), &d, data.len() as u64, data.into())
        .await
        .unwrap();
    let ranges: Vec<String> = rig
        .proxy
        .seen_method("PATCH")
        .into_iter()
        .map(|s| s.content_range.unwrap())
        .collect();
    assert_eq!(
        ranges,
        vec!["0-2097151", "2097152-4194303", "4194304-5242879"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_resumes_with_a_range_request() {
    let rig = rig().await;
    let r = repo("dl");
    let data = pseudo_random(3 * 1024 * 1024 + 1, 5);
    let d = sha256(&data);
    rig.direct
        .push_blob(&r, &d, data.len() as u64, data.clone().into())
        .await
        .unwrap();

    rig.fault(
        "GET",
        "/blobs/sha256:",
        1,
        Fault::DropResponseAfter(1_000_000),
    );
    let client = rig.client(timing_options(10, 3));
    let mut out = Vec::new();
    let n = client.pull_blob(&r, &d, &mut out).await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(out == data, "byte-exact after resume");
    let gets = rig.proxy.seen_method("GET");
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0].range, None);
    // The proxy forwards 1,000,000 bytes before dropping, but the connection may be torn down
    // before all of them are flushed: the resume starts after what the client really received.
    let resumed_at: u64 = gets[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .unwrap_or_else(|| panic!("second GET is not an open range: {:?}", gets[1].range));
    assert!(
        (1..=1_000_000).contains(&resumed_at),
        "resumed at {resumed_at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_or_endlessly_broken_downloads_keep_nothing() {
    let rig = rig().await;
    let r = repo("bad");
    let data = pseudo_random(400_000, 6);
    let d = sha256(&data);
    rig.direct
        .push_blob(&r, &d, data.len() as u64, data.into())
        .await
        .unwrap();
    let client = rig.client(timing_options(10, 2));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    rig.proxy
        .add(Rule::new(Some("GET"), "/blobs/sha256:", 1, Fault::Corrupt));
    let err = client.pull_blob_to_file(&r, &d, &dest).await.unwrap_err();
    match &err {
        ClientError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, &d);
            assert_ne!(actual, &d);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing kept"
    );

    rig.proxy.clear();
    rig.fault("GET", "/blobs/sha256:", 100, Fault::DropResponseAfter(0));
    let err = client.pull_blob_to_file(&r, &d, &dest).await.unwrap_err();
    assert!(matches!(err, ClientError::Connection { .. }), "{err:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing kept"
    );
    let gets = rig.proxy.seen_method("GET").len();
    assert_eq!(
        gets,
        1 + 3,
        "corrupt try, then 1 try + 2 retries without progress"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_manifests_are_rejected() {
    let rig = rig().await;
    let r = repo("m");
    let empty = ocireg_oci::media_types::OCI_EMPTY_JSON;
    let ed = sha256(empty);
    rig.direct
        .push_blob(&r, &ed, 2, bytes::Bytes::from_static(empty).into())
        .await
        .unwrap();
    let m = image_manifest((&ed, 2), &[]);
    let md = rig
        .direct
        .put_manifest(
            &r,
            &"t".parse().unwrap(),
            ocireg_oci::media_types::OCI_MANIFEST,
            m.into(),
        )
        .await
        .unwrap();
    rig.proxy
        .add(Rule::new(Some("GET"), "/manifests/", 2, Fault::Corrupt));
    let client = rig.client(fast_options());
    // By tag: checked against Docker-Content-Digest; by digest: against the digest itself.
    for reference in [
        "t".parse().unwrap(),
        ocireg_oci::Reference::Digest(md.clone()),
    ] {
        let err = client.get_manifest(&r, &reference, &[]).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::DigestMismatch { expected, .. } if expected == &md),
            "{err:?}"
        );
    }
    assert_eq!(
        client
            .get_manifest(&r, &"t".parse().unwrap(), &[])
            .await
            .unwrap()
            .digest,
        md
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_follow_link_pages() {
    let rig = rig().await;
    let empty = ocireg_oci::media_types::OCI_EMPTY_JSON;
    let ed = sha256(empty);
    let m = bytes::Bytes::from(image_manifest((&ed, 2), &[]));
    for name in ["a", "b", "c"] {
        let r = repo(name);
        rig.direct
            .push_blob(&r, &ed, 2, bytes::Bytes::from_static(empty).into())
            .await
            .unwrap();
        for t in ["t1", "t2", "t3", "t4", "t5"] {
            rig.direct
                .put_manifest(
                    &r,
                    &t.parse().unwrap(),
                    ocireg_oci::media_types::OCI_MANIFEST,
                    m.clone(),
                )
                .await
                .unwrap();
        }
    }
    let client = rig.client(ClientOptions {
        page_size: Some(2),
        ..fast_options()
    });
    assert_eq!(client.catalog().await.unwrap(), vec!["a", "b", "c"]);
    assert_eq!(
        client.tags(&repo("b")).await.unwrap(),
        vec!["t1", "t2", "t3", "t4", "t5"]
    );
    let uris: Vec<String> = rig.proxy.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        vec![
            "/v2/_catalog?n=2",
            "/v2/_catalog?n=2&last=b",
            "/v2/b/tags/list?n=2",
            "/v2/b/tags/list?n=2&last=t2",
            "/v2/b/tags/list?n=2&last=t4",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_on_loopback_fails_at_once() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // Retries that would take seconds: none of them may run.
    let client = Registry::new(&url, Credentials::Anonymous, timing_options(2000, 3)).unwrap();
    let start = std::time::Instant::now();
    let err = client.ping().await.unwrap_err();
    let secs = start.elapsed().as_secs_f64();
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no registry answers on 127.0.0.1:{port}")
    );
    assert!(secs < 1.0, "took {secs}s");
}
