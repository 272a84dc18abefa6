//! Usage accounting and quotas: at, under and over each limit, refusal before bytes are stored,
//! open upload sessions counted, deletes free quota.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use ocireg_oci::{Digest, ErrorCode};
use ocireg_store::{
    ByteStream, Chunk, NamespaceLimit, QuotaOptions, Store, StoreError, StoreOptions, Usage,
};
use serde_json::json;

use crate::common::*;

fn opts(dedupe: bool, quota: Option<QuotaOptions>) -> StoreOptions {
    StoreOptions {
        dedupe,
        quota,
        ..StoreOptions::default()
    }
}

fn registry_limits(bytes: Option<u64>, artifacts: Option<u64>) -> QuotaOptions {
    QuotaOptions {
        storage_limit_bytes: bytes,
        artifact_limit: artifacts,
        namespaces: BTreeMap::new(),
    }
}

fn ns_limits(ns: &str, bytes: Option<u64>, artifacts: Option<u64>) -> QuotaOptions {
    let mut namespaces = BTreeMap::new();
    namespaces.insert(
        ns.to_owned(),
        NamespaceLimit {
            storage_limit_bytes: bytes,
            artifact_limit: artifacts,
        },
    );
    QuotaOptions {
        storage_limit_bytes: None,
        artifact_limit: None,
        namespaces,
    }
}

/// A body that records whether the store ever read from it.
fn watched(data: &[u8]) -> (ByteStream, Arc<AtomicBool>) {
    let polled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&polled);
    let chunks = vec![Bytes::copy_from_slice(data)];
    let s = stream::iter(chunks).map(move |c| {
        flag.store(true, Ordering::SeqCst);
        Ok::<_, std::io::Error>(c)
    });
    (Box::pin(s), polled)
}

use futures_util::StreamExt;

fn denied(err: StoreError) -> String {
    assert_eq!(err.code(), Some(ErrorCode::Denied), "{err}");
    match err {
        StoreError::QuotaExceeded { message, .. } => message,
        other => panic!("not a quota refusal: {other}"),
    }
}

async fn put_sized(store: &Store, name: &str, data: &[u8]) -> Result<Digest, StoreError> {
    let d = sha256(data);
    store
        .blob_put(&repo(name), &d, body(data), Some(data.len() as u64))
        .await
        .map(|_| d)
}

async fn put_manifest(store: &Store, name: &str, t: &str, m: &[u8]) -> Result<Digest, StoreError> {
    store
        .manifest_put(&repo(name), &tag(t), None, Bytes::copy_from_slice(m))
        .await
        .map(|p| p.digest)
}

/// An image manifest over one config and one layer, both pushed into `name` (no quota there).
async fn artifact(store: &Store, name: &str, seed: u64) -> Vec<u8> {
    let config = bytes(100, seed);
    let layer = bytes(200, seed + 1);
    push_blob(store, name, &config).await;
    push_blob(store, name, &layer).await;
    image_manifest(&config, &[&layer], json!({}))
}

#[tokio::test]
async fn usage_counts_digests_once_per_namespace_and_physical_bytes() {
    for dedupe in [true, false] {
        for mut h in Harness::both(opts(dedupe, None)).await {
            let store = h.open().await;
            let shared = bytes(1000, 1);
            push_blob(&store, "team/a", &shared).await;
            push_blob(&store, "team/b", &shared).await;
            push_blob(&store, "other/c", &shared).await;
            push_blob(&store, "team/a", &bytes(300, 2)).await;
            let u = store.usage();
            assert_eq!(u.namespaces["team"].bytes, 1300, "{} {dedupe}", h.name());
            assert_eq!(u.namespaces["other"].bytes, 1000);
            let expected_total = if dedupe { 1300 } else { 3300 };
            assert_eq!(u.total_bytes, expected_total, "{} {dedupe}", h.name());
            assert_eq!(u.artifacts, 0);

            // A multi-platform image: the children count with their index.
            let m1 = artifact(&store, "team/a", 10).await;
            let m2 = artifact(&store, "team/a", 20).await;
            let d1 = put_manifest(&store, "team/a", "p1", &m1).await.unwrap();
            let d2 = put_manifest(&store, "team/a", "p2", &m2).await.unwrap();
            assert_eq!(store.usage().namespaces["team"].artifacts, 2);
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    { "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": d1.to_string(), "size": m1.len() },
                    { "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": d2.to_string(), "size": m2.len() },
                ],
            }))
            .unwrap();
            put_manifest(&store, "team/a", "multi", &index)
                .await
                .unwrap();
            let u = store.usage();
            assert_eq!(u.namespaces["team"].artifacts, 1, "{}", h.name());
            assert_eq!(u.artifacts, 1);
            let manifests = (m1.len() + m2.len() + index.len()) as u64;
            assert_eq!(u.namespaces["team"].bytes, 1300 + 2 * 300 + manifests);

            // The same figures after a restart (sizes rebuilt from storage).
            drop(store);
            let store = h.open().await;
            assert_eq!(store.usage(), u, "{} {dedupe}", h.name());
        }
    }
}

#[tokio::test]
async fn registry_storage_limit_at_under_and_over() {
    for mut h in Harness::both(opts(true, Some(registry_limits(Some(10_000), None)))).await {
        let store = h.open().await;
        put_sized(&store, "a/x", &bytes(4000, 1)).await.unwrap(); // under
        put_sized(&store, "b/y", &bytes(6000, 2)).await.unwrap(); // exactly at the limit
        assert_eq!(store.usage().total_bytes, 10_000);

        // Over: refused before a byte is read or stored.
        let data = bytes(1, 3);
        let (b, polled) = watched(&data);
        let err = store
            .blob_put(&repo("a/x"), &sha256(&data), b, Some(1))
            .await
            .unwrap_err();
        let msg = denied(err);
        assert!(msg.contains("registry storage limit"), "{msg}");
        assert!(!polled.load(Ordering::SeqCst));
        assert_eq!(h.keys("blobs").await.len(), 2);
        assert!(h.repository_keys("/_uploads/").await.is_empty());

        // A blob already stored adds nothing physically: accepted at the limit.
        let again = bytes(4000, 1);
        put_sized(&store, "b/y", &again).await.unwrap();

        // Deleting frees quota (once nothing links the bytes).
        let d = sha256(&again);
        store.blob_delete(&repo("a/x"), &d).await.unwrap();
        assert!(put_sized(&store, "a/x", &data).await.is_err());
        store.blob_delete(&repo("b/y"), &d).await.unwrap();
        put_sized(&store, "a/x", &data).await.unwrap();
        assert_eq!(store.usage().total_bytes, 6001);
    }
}

#[tokio::test]
async fn registry_artifact_limit_at_under_and_over() {
    let q = registry_limits(None, Some(2));
    for mut h in Harness::both(opts(true, Some(q))).await {
        let store = h.open().await;
        let m1 = artifact(&store, "a/x", 1).await;
        let m2 = artifact(&store, "b/y", 2).await;
        let m3 = artifact(&store, "a/x", 3).await;
        put_manifest(&store, "a/x", "one", &m1).await.unwrap(); // under
        put_manifest(&store, "b/y", "two", &m2).await.unwrap(); // at
        let msg = denied(put_manifest(&store, "a/x", "three", &m3).await.unwrap_err());
        assert!(msg.contains("registry artifact limit 2 (in use 2"), "{msg}");
        assert!(matches!(
            store.manifest_get(&repo("a/x"), &tag("three")).await,
            Err(StoreError::ManifestUnknown { .. })
        ));
        assert!(!h.holds_blob(&m3).await);
        // Tagging an existing revision adds no artifact.
        put_manifest(&store, "a/x", "one-again", &m1).await.unwrap();
        // Deleting frees one.
        let d2 = sha256(&m2);
        store
            .manifest_delete(&repo("b/y"), &by_digest(&d2))
            .await
            .unwrap();
        put_manifest(&store, "a/x", "three", &m3).await.unwrap();
        assert_eq!(store.usage().artifacts, 2);
    }
}

#[tokio::test]
async fn namespace_storage_limit_applies_only_to_its_namespace() {
    let q = ns_limits("team", Some(5000), None);
    for mut h in Harness::both(opts(true, Some(q))).await {
        let store = h.open().await;
        put_sized(&store, "team/a", &bytes(3000, 1)).await.unwrap();
        put_sized(&store, "team/b/c", &bytes(2000, 2))
            .await
            .unwrap(); // at
        let data = bytes(10, 3);
        let msg = denied(put_sized(&store, "team/a", &data).await.unwrap_err());
        assert!(
            msg.starts_with("quota exceeded: namespace \"team\" storage limit"),
            "{msg}"
        );
        // Another namespace has no limit.
        put_sized(&store, "other/x", &bytes(9000, 4)).await.unwrap();
        // The same blob pushed into another repository of the namespace adds nothing.
        put_sized(&store, "team/b/c", &bytes(3000, 1))
            .await
            .unwrap();
        // A mount into the namespace adds the bytes there: refused.
        let other = sha256(&bytes(9000, 4));
        let err = store
            .blob_mount(&repo("team/a"), &other, Some(&repo("other/x")))
            .await
            .unwrap_err();
        assert!(denied(err).contains("this mount"));
        assert!(matches!(
            store.blob_stat(&repo("team/a"), &other).await,
            Err(StoreError::BlobUnknown { .. })
        ));
        // Mounting within the namespace is free.
        let first = sha256(&bytes(2000, 2));
        assert!(store
            .blob_mount(&repo("team/a"), &first, Some(&repo("team/b/c")))
            .await
            .unwrap());
        assert_eq!(store.usage().namespaces["team"].bytes, 5000);
    }
}

#[tokio::test]
async fn namespace_artifact_limit_at_under_and_over() {
    let q = ns_limits("team", None, Some(1));
    for mut h in Harness::both(opts(true, Some(q))).await {
        let store = h.open().await;
        let m1 = artifact(&store, "team/a", 1).await;
        let m2 = artifact(&store, "team/b", 2).await;
        let m3 = artifact(&store, "other/c", 3).await;
        put_manifest(&store, "team/a", "v1", &m1).await.unwrap(); // at
        let msg = denied(put_manifest(&store, "team/b", "v1", &m2).await.unwrap_err());
        assert!(
            msg.contains("namespace \"team\" artifact limit 1 (in use 1, this manifest 1)"),
            "{msg}"
        );
        put_manifest(&store, "other/c", "v1", &m3).await.unwrap();
        store
            .manifest_delete(&repo("team/a"), &by_digest(&sha256(&m1)))
            .await
            .unwrap();
        put_manifest(&store, "team/b", "v1", &m2).await.unwrap();
    }
}

#[tokio::test]
async fn manifest_bytes_count_against_storage() {
    let q = ns_limits("team", Some(700), None);
    for mut h in Harness::both(opts(true, Some(q))).await {
        let store = h.open().await;
        let config = bytes(100, 1);
        let layer = bytes(200, 2);
        put_sized(&store, "team/a", &config).await.unwrap();
        put_sized(&store, "team/a", &layer).await.unwrap();
        let m = image_manifest(&config, &[&layer], json!({}));
        assert!(m.len() > 400, "test manifest too small");
        let msg = denied(put_manifest(&store, "team/a", "v1", &m).await.unwrap_err());
        assert!(msg.contains("this manifest"), "{msg}");
        assert!(!h.holds_blob(&m).await);
    }
}

#[tokio::test]
async fn open_sessions_count_and_chunks_are_refused_before_writing() {
    let q = registry_limits(Some(100), None);
    for (h, store, r) in Harness::opened(opts(true, Some(q)), "a/x").await {
        let s1 = store.upload_start(&r, None).await.unwrap();
        let s2 = store.upload_start(&r, None).await.unwrap();
        let first = bytes(60, 1);
        store
            .upload_append(&r, &s1, Chunk::new(body(&first)).at(0).sized(60))
            .await
            .unwrap();
        // 60 bytes held by the open session: 50 more do not fit, in any session.
        let chunk = bytes(50, 2);
        let (b, polled) = watched(&chunk);
        let err = store
            .upload_append(&r, &s2, Chunk::new(b).at(0).sized(50))
            .await
            .unwrap_err();
        assert!(denied(err).contains("registry storage limit 100 B (in use 60 B"));
        assert!(!polled.load(Ordering::SeqCst));
        assert_eq!(store.upload_offset(&r, &s2).await.unwrap(), 0);
        // 40 do.
        store
            .upload_append(&r, &s2, Chunk::new(body(&bytes(40, 3))).at(0).sized(40))
            .await
            .unwrap();
        // Cancelling a session frees its bytes.
        store.upload_cancel(&r, &s1).await.unwrap();
        let rest = bytes(60, 4);
        store
            .upload_append(&r, &s2, Chunk::new(body(&rest)).at(40).sized(60))
            .await
            .unwrap();
        let mut all = bytes(40, 3);
        all.extend_from_slice(&rest);
        store
            .upload_complete(&r, &s2, &sha256(&all), None)
            .await
            .unwrap();
        assert_eq!(store.usage().total_bytes, 100);
        // The last chunk of a completing PUT is checked too.
        let s3 = store.upload_start(&r, None).await.unwrap();
        let one = bytes(1, 5);
        let err = store
            .upload_complete(
                &r,
                &s3,
                &sha256(&one),
                Some(Chunk::new(body(&one)).sized(1)),
            )
            .await
            .unwrap_err();
        denied(err);
        assert!(!h.holds_blob(&one).await);
    }
}

#[tokio::test]
async fn streams_without_length_are_stopped_and_discarded() {
    let q = registry_limits(Some(10_000), None);
    for (h, store, r) in Harness::opened(opts(true, Some(q)), "a/x").await {
        put_sized(&store, "a/x", &bytes(4000, 1)).await.unwrap();
        // Single request, no length: stopped, nothing left behind.
        let big = bytes(8000, 2);
        let err = store
            .blob_put(&r, &sha256(&big), body(&big), None)
            .await
            .unwrap_err();
        denied(err);
        assert_eq!(h.keys("blobs").await.len(), 1);
        // A session chunk without length: the session is discarded with its bytes.
        let s = store.upload_start(&r, None).await.unwrap();
        store
            .upload_append(&r, &s, Chunk::new(body(&bytes(1000, 3))))
            .await
            .unwrap();
        let err = store
            .upload_append(&r, &s, Chunk::new(body(&big)))
            .await
            .unwrap_err();
        denied(err);
        assert!(matches!(
            store.upload_offset(&r, &s).await,
            Err(StoreError::UploadUnknown { .. })
        ));
        assert!(h.repository_keys("/_uploads/").await.is_empty());
        // Room is back: 6000 more fit.
        put_sized(&store, "a/x", &bytes(6000, 4)).await.unwrap();
        let u: Usage = store.usage();
        assert_eq!(u.total_bytes, 10_000);
    }
}

#[tokio::test]
async fn no_quota_means_no_limit_and_message_units() {
    let mut h = Harness::memory(opts(true, None)).await;
    let store = h.open().await;
    put_sized(&store, "a/x", &bytes(100_000, 1)).await.unwrap();
    assert!(store.quota().is_none());

    let q = ns_limits("provisioning-extensions", Some(50 << 30), None);
    let mut h = Harness::memory(opts(true, Some(q))).await;
    let store = h.open().await;
    let r = repo("provisioning-extensions/aws");
    let s = store.upload_start(&r, None).await.unwrap();
    let (b, _) = watched(b"x");
    let err = store
        .upload_append(&r, &s, Chunk::new(b).sized(51 << 30))
        .await
        .unwrap_err();
    assert_eq!(
        denied(err),
        "quota exceeded: namespace \"provisioning-extensions\" storage limit 50 GiB (in use 0 B, this upload 51 GiB)"
    );
}
