//! Manifest, tag, catalog and referrer semantics over both drivers.

use bytes::Bytes;
use ocireg_oci::{Descriptor, Digest, ErrorCode, RepoName};
use ocireg_store::{Chunk, Store, StoreError, StoreOptions};
use serde_json::json;

use crate::common::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[tokio::test]
async fn put_and_get_by_tag_and_digest_byte_exact() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let (d, manifest) = push_image(&store, "app", "v1", 1).await;
        assert_eq!(d, sha256(&manifest));
        for reference in [tag("v1"), by_digest(&d)] {
            let got = store.manifest_get(&r, &reference).await.unwrap();
            assert_eq!(got.body.as_ref(), manifest.as_slice(), "{}", h.name());
            assert_eq!(got.media_type, OCI_MANIFEST);
            assert_eq!(got.digest, d);
        }
        // Put by digest (no tag): stored, untagged.
        let config = bytes(10, 50);
        push_blob(&store, "app", &config).await;
        let m2 = image_manifest(&config, &[], json!({}));
        let d2 = sha256(&m2);
        let put = store
            .manifest_put(
                &r,
                &by_digest(&d2),
                Some(OCI_MANIFEST),
                Bytes::from(m2.clone()),
            )
            .await
            .unwrap();
        assert_eq!(put.digest, d2);
        assert_eq!(put.subject, None);
        assert_eq!(store.tags(&r, None, None).await.unwrap(), vec!["v1"]);
        let got = store.manifest_get(&r, &by_digest(&d2)).await.unwrap();
        assert_eq!(got.body.as_ref(), m2.as_slice());
        // A digest that does not match the body.
        let err = store
            .manifest_put(&r, &by_digest(&d), None, Bytes::from(m2.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        // Unknown references.
        let err = store.manifest_get(&r, &tag("nope")).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestUnknown));
        let err = store
            .manifest_get(&r, &by_digest(&sha256(b"x")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestUnknown));
        let err = store
            .manifest_get(&repo("none"), &tag("v1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NameUnknown));
        // Invalid manifests are refused with the parser's error.
        let err = store
            .manifest_put(&r, &tag("bad"), None, Bytes::from_static(b"{not json"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid));
    }
}

#[tokio::test]
async fn missing_blob_or_child_is_manifest_blob_unknown() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let config = bytes(100, 2);
        let layer = bytes(1000, 3);
        push_blob(&store, "app", &config).await;
        // The layer lives in another repository only: still unknown here.
        push_blob(&store, "other", &layer).await;
        let m = image_manifest(&config, &[&layer], json!({}));
        let err = store
            .manifest_put(&r, &tag("v1"), None, Bytes::from(m.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestBlobUnknown));
        assert_eq!(
            err.detail().unwrap()["digest"],
            json!(sha256(&layer).to_string())
        );
        assert!(store.tags(&r, None, None).await.unwrap().is_empty());

        // An index whose child manifest is not in the repository.
        let child = image_manifest(&config, &[], json!({}));
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, &child)],
        }))
        .unwrap();
        let err = store
            .manifest_put(&r, &tag("multi"), None, Bytes::from(index.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::ManifestBlobUnknown { kind: "manifest", digest } if *digest == sha256(&child)),
            "{err:?}"
        );
        store
            .manifest_put(&r, &by_digest(&sha256(&child)), None, Bytes::from(child))
            .await
            .unwrap();
        let put = store
            .manifest_put(
                &r,
                &tag("multi"),
                Some(OCI_INDEX),
                Bytes::from(index.clone()),
            )
            .await
            .unwrap();
        let got = store.manifest_get(&r, &tag("multi")).await.unwrap();
        assert_eq!(got.media_type, OCI_INDEX, "{}", h.name());
        assert_eq!(got.digest, put.digest);
        assert_eq!(got.body.as_ref(), index.as_slice());
    }
}

/// Pushes an artifact manifest with `subject`; returns its digest.
async fn push_referrer(
    store: &ocireg_store::Store,
    name: &str,
    subject: &Digest,
    subject_size: usize,
    artifact_type: Option<&str>,
    seed: u64,
) -> Digest {
    let empty = b"{}";
    push_blob(store, name, empty).await;
    let layer = bytes(64, seed);
    push_blob(store, name, &layer).await;
    let mut extra = json!({
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": subject_size },
        "annotations": { "org.example.seed": seed.to_string() },
    });
    if let Some(at) = artifact_type {
        extra["artifactType"] = json!(at);
    }
    let mut m = image_manifest(empty, &[&layer], extra);
    if artifact_type.is_none() {
        // No artifactType: the config media type is listed instead.
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["config"]["mediaType"] = json!("application/vnd.example.config+json");
        m = serde_json::to_vec(&v).unwrap();
    }
    let d = sha256(&m);
    let put = store
        .manifest_put(&repo(name), &by_digest(&d), None, Bytes::from(m))
        .await
        .unwrap();
    assert_eq!(put.subject.as_ref(), Some(subject));
    d
}

const SIG: &str = "application/vnd.example.sig";
const SBOM: &str = "application/vnd.example.sbom";

/// Each listed referrer is an image manifest of the listed size carrying its annotations.
async fn check_referrer_descriptors(store: &Store, r: &RepoName, all: &[Descriptor]) {
    for desc in all {
        assert_eq!(desc.media_type, OCI_MANIFEST);
        let body = store
            .manifest_get(r, &by_digest(&desc.digest))
            .await
            .unwrap()
            .body;
        assert_eq!(desc.size, body.len() as u64);
        assert!(desc
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("org.example.seed"));
    }
}

#[tokio::test]
async fn referrers_with_artifact_type_filter() {
    for (mut h, store, r) in Harness::opened(dedupe(), "app").await {
        let (subject, manifest) = push_image(&store, "app", "v1", 4).await;
        let mut pushed = Vec::new();
        for (artifact_type, seed) in [(Some(SIG), 10), (Some(SBOM), 11), (None, 12)] {
            let size = manifest.len();
            pushed.push(push_referrer(&store, "app", &subject, size, artifact_type, seed).await);
        }
        let [sig, sbom, plain] = <[Digest; 3]>::try_from(pushed).unwrap();
        // A subject that does not exist is fine.
        let ghost = sha256(b"ghost subject");
        let orphan = push_referrer(&store, "app", &ghost, 10, Some(SIG), 13).await;

        let all = store.referrers(&r, &subject, None).await.unwrap();
        let mut digests: Vec<Digest> = all.iter().map(|d| d.digest.clone()).collect();
        digests.sort();
        let mut expected = vec![sig.clone(), sbom.clone(), plain.clone()];
        expected.sort();
        assert_eq!(digests, expected, "{}", h.name());
        check_referrer_descriptors(&store, &r, &all).await;
        let plain_desc = all.iter().find(|d| d.digest == plain).unwrap();
        assert_eq!(
            plain_desc.artifact_type.as_deref(),
            Some("application/vnd.example.config+json")
        );
        let sigs = store.referrers(&r, &subject, Some(SIG)).await.unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].digest, sig);
        assert!(store
            .referrers(&r, &subject, Some("application/none"))
            .await
            .unwrap()
            .is_empty());
        let ghosts = store.referrers(&r, &ghost, None).await.unwrap();
        assert_eq!(ghosts.len(), 1);
        assert_eq!(ghosts[0].digest, orphan);
        // Other repositories and unknown subjects: empty, not an error.
        assert!(store
            .referrers(&repo("x"), &subject, None)
            .await
            .unwrap()
            .is_empty());
        // After a restart the metadata is recovered from storage.
        drop(store);
        let store = h.open().await;
        let again = store.referrers(&r, &subject, Some(SBOM)).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].digest, sbom);
        assert_eq!(again[0].artifact_type.as_deref(), Some(SBOM));
        // Deleting a referrer removes it from the listing.
        store.manifest_delete(&r, &by_digest(&sig)).await.unwrap();
        let left = store.referrers(&r, &subject, None).await.unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|d| d.digest != sig));
    }
}

#[tokio::test]
async fn tag_listing_pagination_and_moves() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let (d1, _) = push_image(&store, "app", "v000", 5).await;
        let m = store.manifest_get(&r, &tag("v000")).await.unwrap().body;
        let mut names: Vec<String> = (1..25).map(|i| format!("v{i:03}")).collect();
        names.push("latest".into());
        names.push("Alpha_1".into());
        for t in &names {
            store
                .manifest_put(&r, &tag(t), None, m.clone())
                .await
                .unwrap();
        }
        names.push("v000".into());
        names.sort();
        assert_eq!(store.tags(&r, None, None).await.unwrap(), names);
        let mut pages = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = store.tags(&r, last.as_deref(), Some(10)).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 10);
            last = page.last().cloned();
            pages.extend(page);
        }
        assert_eq!(pages, names);
        assert!(store.tags(&r, None, Some(0)).await.unwrap().is_empty());
        assert_eq!(
            store.tags(&r, Some("v023"), None).await.unwrap(),
            vec!["v024"]
        );
        let err = store.tags(&repo("none"), None, None).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NameUnknown));
        // Moving a tag.
        let (d2, m2) = push_image(&store, "app", "latest", 6).await;
        assert_ne!(d1, d2);
        let got = store.manifest_get(&r, &tag("latest")).await.unwrap();
        assert_eq!(got.body.as_ref(), m2.as_slice(), "{}", h.name());
        let got = store.manifest_get(&r, &tag("v001")).await.unwrap();
        assert_eq!(got.digest, d1);
    }
}

#[tokio::test]
async fn catalog_pagination() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let mut names: Vec<String> = (0..23)
            .map(|i| format!("ns{}/repo-{i:02}", i % 3))
            .collect();
        for n in &names {
            push_blob(&store, n, b"{}").await;
        }
        names.sort();
        assert_eq!(
            store.catalog(None, None).await.unwrap(),
            names,
            "{}",
            h.name()
        );
        let first = store.catalog(None, Some(5)).await.unwrap();
        assert_eq!(first, names[..5]);
        let next = store
            .catalog(first.last().map(String::as_str), Some(5))
            .await
            .unwrap();
        assert_eq!(next, names[5..10]);
        let tail = store.catalog(Some(&names[20]), Some(100)).await.unwrap();
        assert_eq!(tail, names[21..]);
    }
}

#[tokio::test]
async fn delete_by_tag_versus_by_digest() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let (d, m) = push_image(&store, "app", "a", 7).await;
        for t in ["b", "c"] {
            store
                .manifest_put(&r, &tag(t), None, Bytes::from(m.clone()))
                .await
                .unwrap();
        }
        store.manifest_delete(&r, &tag("a")).await.unwrap();
        assert_eq!(store.tags(&r, None, None).await.unwrap(), vec!["b", "c"]);
        let err = store.manifest_delete(&r, &tag("a")).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestUnknown));
        // The revision is still there.
        store.manifest_get(&r, &by_digest(&d)).await.unwrap();
        store.manifest_delete(&r, &by_digest(&d)).await.unwrap();
        assert!(
            store.tags(&r, None, None).await.unwrap().is_empty(),
            "{}",
            h.name()
        );
        for reference in [tag("b"), by_digest(&d)] {
            let err = store.manifest_get(&r, &reference).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::ManifestUnknown));
        }
        let err = store.manifest_delete(&r, &by_digest(&d)).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestUnknown));
        let keys = h.keys("repositories/app/_manifests").await;
        assert!(keys.is_empty(), "{keys:?}");
        // The repository stays listed while it still links blobs.
        assert_eq!(store.catalog(None, None).await.unwrap(), vec!["app"]);
    }
}

#[tokio::test]
async fn sha512_manifests() {
    for (mut h, store, r) in Harness::opened(dedupe(), "app").await {
        let config = bytes(100, 20);
        let cd = sha512(&config);
        store.blob_put(&r, &cd, body(&config), None).await.unwrap();
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": 100 },
            "layers": [],
        }))
        .unwrap();
        let d = sha512(&m);
        let put = store
            .manifest_put(&r, &by_digest(&d), None, Bytes::from(m.clone()))
            .await
            .unwrap();
        assert_eq!(put.digest, d);
        assert!(h.keys("blobs/sha512").await.len() == 2, "{}", h.name());
        let got = store.manifest_get(&r, &by_digest(&d)).await.unwrap();
        assert_eq!(got.body.as_ref(), m.as_slice());
        // A tag put stores under the canonical sha256 digest.
        let put = store
            .manifest_put(&r, &tag("t"), None, Bytes::from(m.clone()))
            .await
            .unwrap();
        assert_eq!(put.digest, sha256(&m));
        let wrong = sha512(b"other");
        let err = store
            .manifest_put(&r, &by_digest(&wrong), None, Bytes::from(m))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        drop(store);
        let store = h.open().await;
        assert_eq!(
            store.manifest_get(&r, &by_digest(&d)).await.unwrap().digest,
            d
        );
    }
}

#[tokio::test]
async fn index_rebuilt_after_reopen_equals_before() {
    for opts in [
        dedupe(),
        StoreOptions {
            dedupe: false,
            ..Default::default()
        },
    ] {
        for mut h in Harness::both(opts.clone()).await {
            let store = h.open().await;
            let (d, m) = push_image(&store, "a/b", "v1", 30).await;
            push_image(&store, "a/b", "v2", 31).await;
            push_image(&store, "c", "latest", 32).await;
            push_referrer(&store, "a/b", &d, m.len(), Some("application/x.sig"), 33).await;
            push_blob(&store, "only/blobs", b"data").await;
            store
                .manifest_delete(&repo("a/b"), &tag("v2"))
                .await
                .unwrap();
            let _pending = store.upload_start(&repo("uploading"), None).await.unwrap();
            let before = store.snapshot();
            let catalog = store.catalog(None, None).await.unwrap();
            drop(store);
            let store = h.open().await;
            assert_eq!(
                store.snapshot(),
                before,
                "{} dedupe={}",
                h.name(),
                opts.dedupe
            );
            assert_eq!(store.catalog(None, None).await.unwrap(), catalog);
            assert_eq!(catalog, vec!["a/b", "c", "only/blobs"]);
            let got = store.manifest_get(&repo("a/b"), &tag("v1")).await.unwrap();
            assert_eq!(got.body.as_ref(), m.as_slice());
            assert_eq!(got.media_type, OCI_MANIFEST);
        }
    }
}

#[tokio::test]
async fn open_repairs_interrupted_puts_and_deletes() {
    for (mut h, store, r) in Harness::opened(dedupe(), "app").await {
        let (d, m) = push_image(&store, "app", "v1", 40).await;
        let sig = push_referrer(&store, "app", &d, m.len(), Some("application/x.sig"), 41).await;
        let gone = push_referrer(&store, "app", &d, m.len(), Some("application/x.sbom"), 42).await;
        let before = store.snapshot();
        drop(store);
        // Crash mid-put: the tag and the bytes are durable, the revision and referrer links not.
        let alg_hex = |x: &Digest| format!("{}/{}", x.algorithm(), x.hex());
        h.driver
            .delete(&format!(
                "repositories/app/_manifests/revisions/{}",
                alg_hex(&d)
            ))
            .await
            .unwrap();
        // Crash mid-delete: the revision is gone, its referrer link is not.
        h.driver
            .delete(&format!(
                "repositories/app/_manifests/revisions/{}",
                alg_hex(&gone)
            ))
            .await
            .unwrap();
        let store = h.open().await;
        let got = store.manifest_get(&r, &tag("v1")).await.unwrap();
        assert_eq!(got.body.as_ref(), m.as_slice(), "{}", h.name());
        let refs = store.referrers(&r, &d, None).await.unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].digest, sig);
        let after = store.snapshot();
        assert_eq!(after["app"].tags, before["app"].tags);
        assert!(after["app"].manifests.contains(&d));
        assert!(!after["app"].manifests.contains(&gone));
        // The repairs were written: a second open sees the same state without repairing.
        drop(store);
        let store = h.open().await;
        assert_eq!(store.snapshot(), after);
        let keys = h.keys("repositories/app/_referrers").await;
        assert_eq!(keys.len(), 1, "{keys:?}");
    }
}

#[tokio::test]
async fn dedupe_off_manifests_are_per_repository() {
    for mut h in Harness::both(StoreOptions {
        dedupe: false,
        ..Default::default()
    })
    .await
    {
        let store = h.open().await;
        let (d1, m) = push_image(&store, "one", "v1", 50).await;
        push_image(&store, "two", "v1", 50).await;
        assert!(h.keys("blobs").await.is_empty(), "{}", h.name());
        let mut local = h.repository_keys("/_blobs/").await;
        local.retain(|k| k.ends_with(&*d1.hex()));
        assert_eq!(local.len(), 2, "{local:?}");
        for name in ["one", "two"] {
            let got = store.manifest_get(&repo(name), &tag("v1")).await.unwrap();
            assert_eq!(got.body.as_ref(), m.as_slice());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_moves_are_atomic_for_readers() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let (d1, m1) = push_image(&store, "app", "moving", 60).await;
        let (d2, m2) = push_image(&store, "app", "other", 61).await;
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                for _ in 0..400 {
                    let got = store
                        .manifest_get(&repo("app"), &tag("moving"))
                        .await
                        .unwrap();
                    assert!(got.digest == d1 || got.digest == d2);
                    seen += 1;
                    tokio::task::yield_now().await;
                }
                seen
            })
        };
        for i in 0..40 {
            let body = if i % 2 == 0 { &m2 } else { &m1 };
            store
                .manifest_put(&r, &tag("moving"), None, Bytes::from(body.clone()))
                .await
                .unwrap();
        }
        assert_eq!(reader.await.unwrap(), 400, "{}", h.name());
        let got = store.manifest_get(&r, &tag("moving")).await.unwrap();
        assert_eq!(got.body.as_ref(), m1.as_slice());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_manifest_puts_survive_reopen() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let config = bytes(200, 70);
        push_blob(&store, "many", &config).await;
        let mut tasks = Vec::new();
        for c in 0..16 {
            let (store, config) = (store.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let n = c * 10 + i;
                    let m = image_manifest(
                        &config,
                        &[],
                        json!({ "annotations": { "n": n.to_string() } }),
                    );
                    store
                        .manifest_put(
                            &repo("many"),
                            &tag(&format!("t{n:03}")),
                            None,
                            Bytes::from(m),
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let before = store.snapshot();
        assert_eq!(before["many"].tags.len(), 160);
        assert_eq!(before["many"].manifests.len(), 160);
        drop(store);
        let store = h.open().await;
        assert_eq!(store.snapshot(), before, "{}", h.name());
        let got = store
            .manifest_get(&repo("many"), &tag("t123"))
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(v["annotations"]["n"], "123");
    }
}

/// Every public async operation must be usable from a multi-threaded server.
#[test]
fn store_futures_are_send() {
    fn send<T: Send>(_: T) {}
    fn check(store: &ocireg_store::Store) {
        let (r, d, t) = (repo("a"), sha256(b"x"), tag("t"));
        send(store.blob_stat(&r, &d));
        send(store.blob_read(&r, &d, None));
        send(store.blob_delete(&r, &d));
        send(store.blob_mount(&r, &d, None));
        send(store.blob_put(&r, &d, body(b"x"), None));
        send(store.upload_start(&r, None));
        send(store.upload_offset(&r, "s"));
        send(store.upload_append(&r, "s", Chunk::new(body(b"x"))));
        send(store.upload_complete(&r, "s", &d, None));
        send(store.upload_cancel(&r, "s"));
        send(store.manifest_put(&r, &t, None, Bytes::new()));
        send(store.manifest_get(&r, &t));
        send(store.manifest_delete(&r, &t));
        send(store.tags(&r, None, None));
        send(store.catalog(None, None));
        send(store.referrers(&r, &d, None));
        send(ocireg_store::Store::open_filesystem(
            std::path::Path::new("/x"),
            dedupe(),
        ));
    }
    let _ = check;
}

#[tokio::test]
async fn foreign_layers_with_urls_need_not_be_pushed() {
    let mut h = Harness::memory(dedupe()).await;
    let store = h.open().await;
    let r = repo("win");
    let config = bytes(100, 80);
    push_blob(&store, "win", &config).await;
    let foreign = bytes(100, 81);
    let manifest = |media_type: &str| {
        let mut layer = descriptor(media_type, &foreign);
        layer["urls"] = json!(["https://example.invalid/layer"]);
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [layer],
        }))
        .unwrap()
    };
    let ok = manifest("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip");
    store
        .manifest_put(&r, &tag("foreign"), None, Bytes::from(ok))
        .await
        .unwrap();
    let plain = manifest("application/vnd.oci.image.layer.v1.tar+gzip");
    let err = store
        .manifest_put(&r, &tag("plain"), None, Bytes::from(plain))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ManifestBlobUnknown));
}
