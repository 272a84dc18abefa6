//! The push and pull workflows against an in-memory registry: the overwrite rule, the
//! same-content check, the fall-back from a broken streamed upload to a packed file, and the
//! pull policy deciding whether the registry is contacted at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ocireg_client::artifact::{ArtifactKind, Cache, CacheOptions, PackOptions};
use ocireg_client::workflow::{
    pull_artifact, push_artifact, Meter, Progress, PullRequest, PushRequest,
};
use ocireg_client::{BoxError, ClientError, ClientOptions, Credentials, Registry};
use ocireg_oci::{Algorithm, Digest, Reference};
use time::macros::datetime;
use time::OffsetDateTime;

/// Creation times of the packed artifacts: a first packing and a later one.
const PACKED: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
const REPACKED: OffsetDateTime = datetime!(2026-02-01 00:00:00 UTC);

/// Blobs and manifests in memory; `fail_puts` upload-closing `PUT`s answer 500 first.
#[derive(Default)]
struct Fake {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    uploads: Mutex<HashMap<String, Vec<u8>>>,
    next: AtomicU32,
    fail_puts: AtomicU32,
}

fn answer(status: StatusCode, headers: &[(&'static str, String)], body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    for (k, v) in headers {
        r.headers_mut().insert(*k, v.parse().unwrap());
    }
    r
}

fn manifest_answer(method: &Method, bytes: Vec<u8>) -> Response {
    let digest = Digest::compute(Algorithm::Sha256, &bytes).to_string();
    let headers = [
        (
            "content-type",
            ocireg_oci::media_types::OCI_MANIFEST.to_owned(),
        ),
        ("docker-content-digest", digest),
        ("content-length", bytes.len().to_string()),
    ];
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        bytes
    };
    answer(StatusCode::OK, &headers, body)
}

async fn handle(State(f): State<Arc<Fake>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let not_found = || answer(StatusCode::NOT_FOUND, &[], Vec::new());
    if let Some(i) = path.find("/blobs/uploads/") {
        let (repo_path, id) = (&path[..i], &path[i + "/blobs/uploads/".len()..]);
        if method == Method::POST {
            let id = f.next.fetch_add(1, Ordering::SeqCst).to_string();
            f.uploads.lock().unwrap().insert(id.clone(), Vec::new());
            let loc = format!("{repo_path}/blobs/uploads/{id}");
            return answer(StatusCode::ACCEPTED, &[("location", loc)], Vec::new());
        }
        let mut uploads = f.uploads.lock().unwrap();
        let Some(data) = uploads.get_mut(id) else {
            return not_found();
        };
        data.extend_from_slice(&body);
        if method == Method::PATCH {
            let range = format!("0-{}", data.len().saturating_sub(1));
            return answer(
                StatusCode::ACCEPTED,
                &[("location", path), ("range", range)],
                Vec::new(),
            );
        }
        let failing = f.fail_puts.load(Ordering::SeqCst);
        if failing > 0 {
            f.fail_puts.store(failing - 1, Ordering::SeqCst);
            return answer(StatusCode::INTERNAL_SERVER_ERROR, &[], Vec::new());
        }
        let digest = query.trim_start_matches("digest=").replace("%3A", ":");
        let data = uploads.remove(id).unwrap_or_default();
        f.blobs.lock().unwrap().insert(digest, data);
        return answer(StatusCode::CREATED, &[], Vec::new());
    }
    if let Some(i) = path.find("/blobs/") {
        let digest = &path[i + "/blobs/".len()..];
        return match f.blobs.lock().unwrap().get(digest) {
            Some(b) => answer(
                StatusCode::OK,
                &[("content-length", b.len().to_string())],
                b.clone(),
            ),
            None => not_found(),
        };
    }
    if let Some(i) = path.find("/manifests/") {
        let key = path[i + "/manifests/".len()..].to_owned();
        let mut manifests = f.manifests.lock().unwrap();
        if method == Method::PUT {
            let digest = Digest::compute(Algorithm::Sha256, &body).to_string();
            manifests.insert(digest.clone(), body.to_vec());
            manifests.insert(key, body.to_vec());
            return answer(
                StatusCode::CREATED,
                &[("docker-content-digest", digest)],
                Vec::new(),
            );
        }
        return match manifests.get(&key) {
            Some(m) => manifest_answer(&method, m.clone()),
            None => not_found(),
        };
    }
    answer(StatusCode::OK, &[], Vec::new())
}

async fn serve(fake: Arc<Fake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn registry(addr: SocketAddr) -> Registry {
    let opts = ClientOptions {
        retries: 0,
        retry_delay: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    Registry::new(&format!("http://{addr}"), Credentials::Anonymous, opts).unwrap()
}

/// Records status lines.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Progress for Lines {
    fn status(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }

    fn meter(&self, _what: &str, _total: u64) -> Option<Arc<dyn Meter>> {
        None
    }
}

fn request(src: &Path, tag: &str, created: time::OffsetDateTime, overwrite: bool) -> PushRequest {
    let mut pack = PackOptions::new(ArtifactKind::Extension, "demo");
    pack.created = Some(created);
    PushRequest {
        path: src.to_path_buf(),
        pack,
        repo: "ext/demo".parse().unwrap(),
        tag: tag.parse().unwrap(),
        allow_overwrite: overwrite,
        shown: format!("reg/ext/demo:{tag}"),
    }
}

fn source(content: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), content).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_rule_and_same_content() {
    let fake = Arc::new(Fake::default());
    let reg = registry(serve(fake.clone()).await);
    let (src, other) = (source("one"), source("two"));
    let progress = Lines::default();
    let first = push_artifact(&reg, &request(src.path(), "v1", PACKED, false), &progress)
        .await
        .unwrap();
    assert!(!first.unchanged);
    assert_eq!(first.blobs_uploaded, 2);

    // The same files packed later differ only in their creation time: nothing is pushed.
    let again = push_artifact(&reg, &request(src.path(), "v1", REPACKED, false), &progress)
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.digest, first.digest);

    let refused = push_artifact(
        &reg,
        &request(other.path(), "v1", REPACKED, false),
        &progress,
    )
    .await;
    match refused {
        Err(ClientError::TagInUse { existing, .. }) => assert_eq!(existing, first.digest),
        other => panic!("expected TagInUse, got {other:?}"),
    }
    let moved = push_artifact(
        &reg,
        &request(other.path(), "v1", REPACKED, true),
        &progress,
    )
    .await
    .unwrap();
    assert!(!moved.unchanged);
    assert_ne!(moved.digest, first.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_streamed_upload_is_redone_from_a_packed_file() {
    let fake = Arc::new(Fake::default());
    fake.fail_puts.store(1, Ordering::SeqCst);
    let reg = registry(serve(fake.clone()).await);
    let src = source("payload");
    let progress = Lines::default();
    let pushed = push_artifact(&reg, &request(src.path(), "v1", PACKED, false), &progress)
        .await
        .unwrap();
    assert!(!pushed.unchanged);
    let lines = progress.0.lock().unwrap().join("\n");
    assert!(
        lines.contains("packing to a file and pushing again"),
        "{lines}"
    );
    assert!(fake
        .blobs
        .lock()
        .unwrap()
        .contains_key(&pushed.layer.digest.to_string()));
    assert!(fake.manifests.lock().unwrap().contains_key("v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policy_decides_whether_the_registry_is_asked() {
    let fake = Arc::new(Fake::default());
    let addr = serve(fake.clone()).await;
    let reg = registry(addr);
    let src = source("pulled");
    push_artifact(
        &reg,
        &request(src.path(), "v1", PACKED, false),
        &Lines::default(),
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(&work.path().join("cache"), CacheOptions::default()).unwrap();
    let connected = AtomicBool::new(false);
    let mut connect = || {
        connected.store(true, Ordering::SeqCst);
        Ok::<_, BoxError>(registry(addr))
    };
    let pull = |policy: &str, dest: &str| PullRequest {
        registry: addr.to_string(),
        repo: "ext/demo".parse().unwrap(),
        reference: Reference::Tag("v1".parse().unwrap()),
        policy: policy.parse().unwrap(),
        dest: work.path().join(dest),
    };

    // (policy, destination, Some(served from cache) or None for "not cached", registry asked)
    for (policy, dest, cached, asks) in [
        ("never", "d0", None, false),
        ("if-not-present", "d1", Some(false), true),
        ("never", "d2", Some(true), false),
    ] {
        let got = pull_artifact(&pull(policy, dest), &cache, &mut connect, &Lines::default()).await;
        let asked = connected.swap(false, Ordering::SeqCst);
        assert_eq!(asked, asks, "{policy} into {dest}: registry asked");
        let Some(cached) = cached else {
            assert!(matches!(got, Err(ClientError::NotCached { .. })), "{got:?}");
            continue;
        };
        let r = got.unwrap();
        assert_eq!(
            (r.manifest_cached, r.layer_cached),
            (cached, cached),
            "{dest}"
        );
        let text = std::fs::read_to_string(work.path().join(dest).join("a.txt")).unwrap();
        assert_eq!(text, "pulled");
    }
}
