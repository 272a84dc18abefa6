//! Several stores over one shared storage, as replicas on one bucket: what is written through
//! one is read through every other at once (tags, manifests, blob links, referrers), tag
//! updates racing through several replicas leave one whole written value, and listings
//! include what any replica pushed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use ocireg_oci::{Algorithm, Digest, Reference, RepoName};
use ocireg_store::{ByteStream, Driver, MemoryDriver, Store, StoreError, StoreOptions};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Three stores, each over its own clone of one shared in-memory storage.
async fn replicas() -> (MemoryDriver, [Store; 3]) {
    let shared = MemoryDriver::shared_by_replicas();
    let open = || async {
        let driver: Arc<dyn Driver> = Arc::new(shared.clone());
        Store::open(driver, StoreOptions::default()).await.unwrap()
    };
    let stores = [open().await, open().await, open().await];
    (shared, stores)
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn tag(name: &str) -> Reference {
    Reference::Tag(name.parse().unwrap())
}

fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

fn body(data: &[u8]) -> ByteStream {
    Box::pin(stream::iter(vec![Ok(Bytes::copy_from_slice(data))]))
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(data).to_string(), "size": data.len() })
}

async fn push_blob(store: &Store, name: &str, data: &[u8]) -> Digest {
    let d = sha256(data);
    store
        .blob_put(&repo(name), &d, body(data), None)
        .await
        .unwrap();
    d
}

/// An image manifest over a config and one layer (`extra` is merged into it), with its blobs
/// pushed through `store`; returns the manifest's bytes.
async fn image(store: &Store, name: &str, seed: u32, extra: Value) -> Vec<u8> {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let layer = format!("layer {seed}").into_bytes();
    push_blob(store, name, &config).await;
    push_blob(store, name, &layer).await;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [descriptor(LAYER, &layer)],
    });
    if let (Some(m), Value::Object(extra)) = (manifest.as_object_mut(), extra) {
        m.extend(extra);
    }
    serde_json::to_vec(&manifest).unwrap()
}

async fn put(store: &Store, name: &str, reference: &Reference, manifest: &[u8]) -> Digest {
    let put = store
        .manifest_put(
            &repo(name),
            reference,
            Some(OCI_MANIFEST),
            Bytes::copy_from_slice(manifest),
        )
        .await
        .unwrap();
    put.digest
}

async fn digest_of_tag(store: &Store, name: &str, t: &str) -> Result<Digest, StoreError> {
    store
        .manifest_get(&repo(name), &tag(t))
        .await
        .map(|m| m.digest)
}

#[tokio::test]
async fn push_retag_and_delete_through_different_replicas() {
    let (_, [a, b, c]) = replicas().await;
    let first = image(&a, "team/app", 1, json!({})).await;
    let d1 = put(&a, "team/app", &tag("v1"), &first).await;

    // Pulled through B at once, by tag and by digest, byte for byte.
    let got = b.manifest_get(&repo("team/app"), &tag("v1")).await.unwrap();
    assert_eq!(
        (got.digest.clone(), got.body.as_ref()),
        (d1.clone(), &first[..])
    );
    let by_digest = Reference::Digest(d1.clone());
    let got = b.manifest_get(&repo("team/app"), &by_digest).await.unwrap();
    assert_eq!(got.body.as_ref(), &first[..]);

    // Retagged through B (blobs pushed through A), read through C.
    let second = image(&a, "team/app", 2, json!({})).await;
    let d2 = put(&b, "team/app", &tag("v1"), &second).await;
    assert_ne!(d1, d2);
    assert_eq!(digest_of_tag(&c, "team/app", "v1").await.unwrap(), d2);
    // A read v1 before: it sees the move too.
    assert_eq!(digest_of_tag(&a, "team/app", "v1").await.unwrap(), d2);

    // Deleted through C: gone through A, while the repository is still known.
    c.manifest_delete(&repo("team/app"), &tag("v1"))
        .await
        .unwrap();
    let gone = digest_of_tag(&a, "team/app", "v1").await.unwrap_err();
    assert!(
        matches!(gone, StoreError::ManifestUnknown { .. }),
        "{gone:?}"
    );
    let err = b
        .manifest_delete(&repo("team/app"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ManifestUnknown { .. }), "{err:?}");
    assert!(a
        .tags(&repo("team/app"), None, None)
        .await
        .unwrap()
        .is_empty());
    // The revisions stay, by digest, through every replica.
    for store in [&a, &b, &c] {
        let got = store.manifest_get(&repo("team/app"), &by_digest).await;
        assert_eq!(got.unwrap().digest, d1);
    }
    let unknown = b.tags(&repo("nobody/here"), None, None).await.unwrap_err();
    assert!(
        matches!(unknown, StoreError::NameUnknown { .. }),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_delete_by_digest_removes_tags_another_replica_wrote() {
    let (shared, [a, b, _]) = replicas().await;
    let manifest = image(&a, "app", 1, json!({})).await;
    let d = put(&a, "app", &tag("v1"), &manifest).await;
    put(&a, "app", &tag("stable"), &manifest).await;
    // B never saw the tags in its index.
    b.manifest_delete(&repo("app"), &Reference::Digest(d.clone()))
        .await
        .unwrap();
    for t in ["v1", "stable"] {
        let err = digest_of_tag(&a, "app", t).await.unwrap_err();
        assert!(
            matches!(err, StoreError::ManifestUnknown { .. }),
            "{t}: {err:?}"
        );
    }
    let tags = shared
        .walk("repositories/app/_manifests/tags")
        .await
        .unwrap();
    assert!(tags.is_empty(), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_tag_updates_through_three_replicas_leave_one_written_digest() {
    let (shared, stores) = replicas().await;
    let mut manifests = Vec::new();
    for i in 0..16 {
        let m = image(&stores[0], "race", i, json!({})).await;
        put(&stores[0], "race", &Reference::Digest(sha256(&m)), &m).await;
        manifests.push(m);
    }
    let written: BTreeSet<Digest> = manifests.iter().map(|m| sha256(m)).collect();
    let tasks: Vec<_> = manifests
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let store = stores[i % 3].clone();
            tokio::spawn(async move { put(&store, "race", &tag("latest"), &m).await })
        })
        .collect();
    for task in tasks {
        assert!(written.contains(&task.await.unwrap()));
    }
    let stored = shared
        .get_content("repositories/race/_manifests/tags/latest")
        .await
        .unwrap();
    let stored: Digest = std::str::from_utf8(&stored).unwrap().parse().unwrap();
    assert!(written.contains(&stored));
    for store in &stores {
        assert_eq!(
            digest_of_tag(store, "race", "latest").await.unwrap(),
            stored
        );
    }
}

#[tokio::test]
async fn catalog_and_tag_lists_include_what_any_replica_pushed() {
    let (_, stores) = replicas().await;
    let names = ["alpha/one", "beta", "gamma/x/y"];
    for (i, (store, name)) in stores.iter().zip(names).enumerate() {
        let m = image(store, name, i as u32, json!({})).await;
        put(store, name, &tag("v1"), &m).await;
        put(store, name, &tag(&format!("only-{i}")), &m).await;
    }
    // A repository with only an upload under way is not listed.
    stores[0]
        .upload_start(&repo("pending"), None)
        .await
        .unwrap();
    for store in &stores {
        assert_eq!(store.catalog(None, None).await.unwrap(), names);
        assert_eq!(store.catalog(None, Some(2)).await.unwrap(), names[..2]);
        assert_eq!(store.catalog(Some("beta"), None).await.unwrap(), names[2..]);
        for (i, name) in names.iter().enumerate() {
            let tags = store.tags(&repo(name), None, None).await.unwrap();
            assert_eq!(tags, vec![format!("only-{i}"), "v1".to_owned()]);
            let page = store.tags(&repo(name), Some("only-9"), Some(5)).await;
            assert_eq!(page.unwrap(), vec!["v1"]);
        }
    }
}

#[tokio::test]
async fn listings_pick_up_other_replicas_pushes_within_a_second() {
    let (_, [a, b, _]) = replicas().await;
    let m = image(&a, "app", 1, json!({})).await;
    put(&a, "app", &tag("v1"), &m).await;
    assert_eq!(b.tags(&repo("app"), None, None).await.unwrap(), vec!["v1"]);
    assert_eq!(b.catalog(None, None).await.unwrap(), vec!["app"]);
    put(&a, "app", &tag("v2"), &m).await;
    let other = image(&a, "other", 2, json!({})).await;
    put(&a, "other", &tag("v1"), &other).await;
    // B's own writes show at once; others' after the listing expired.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        b.tags(&repo("app"), None, None).await.unwrap(),
        ["v1", "v2"]
    );
    assert_eq!(b.catalog(None, None).await.unwrap(), ["app", "other"]);
    b.manifest_delete(&repo("app"), &tag("v1")).await.unwrap();
    assert_eq!(b.tags(&repo("app"), None, None).await.unwrap(), ["v2"]);
}

#[tokio::test]
async fn referrers_pushed_through_one_replica_are_listed_through_another() {
    let (_, [a, b, c]) = replicas().await;
    let subject = image(&a, "app", 1, json!({})).await;
    let subject_digest = put(&a, "app", &tag("v1"), &subject).await;
    let extra = json!({
        "artifactType": "application/vnd.example.sbom",
        "subject": descriptor(OCI_MANIFEST, &subject),
    });
    let referrer = image(&a, "app", 2, extra).await;
    let referrer_digest = put(&a, "app", &Reference::Digest(sha256(&referrer)), &referrer).await;
    let listed = b
        .referrers(&repo("app"), &subject_digest, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, referrer_digest);
    assert_eq!(
        listed[0].artifact_type.as_deref(),
        Some("application/vnd.example.sbom")
    );
    let other_type = b
        .referrers(&repo("app"), &subject_digest, Some("application/other"))
        .await
        .unwrap();
    assert!(other_type.is_empty());
    // Deleted through C: no longer listed through B.
    c.manifest_delete(&repo("app"), &Reference::Digest(referrer_digest))
        .await
        .unwrap();
    let listed = b
        .referrers(&repo("app"), &subject_digest, None)
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn a_blob_pushed_through_one_replica_is_usable_through_another() {
    let (shared, [a, b, c]) = replicas().await;
    let data = b"some layer bytes".to_vec();
    let d = push_blob(&a, "src", &data).await;
    assert_eq!(
        b.blob_stat(&repo("src"), &d).await.unwrap(),
        data.len() as u64
    );
    let read = b.blob_read(&repo("src"), &d, Some((5, 9))).await.unwrap();
    assert_eq!(read.size, data.len() as u64);
    assert!(b
        .blob_mount(&repo("dst"), &d, Some(&repo("src")))
        .await
        .unwrap());
    assert_eq!(
        c.blob_stat(&repo("dst"), &d).await.unwrap(),
        data.len() as u64
    );
    let missing = sha256(b"never pushed");
    let err = c.blob_stat(&repo("src"), &missing).await.unwrap_err();
    assert!(matches!(err, StoreError::BlobUnknown { .. }), "{err:?}");
    assert!(!c
        .blob_mount(&repo("dst"), &missing, Some(&repo("src")))
        .await
        .unwrap());
    // Unlinked through C: unknown through a replica that opens afterwards.
    c.blob_delete(&repo("dst"), &d).await.unwrap();
    let driver: Arc<dyn Driver> = Arc::new(shared);
    let fresh = Store::open(driver, StoreOptions::default()).await.unwrap();
    let err = fresh.blob_stat(&repo("dst"), &d).await.unwrap_err();
    assert!(matches!(err, StoreError::BlobUnknown { .. }), "{err:?}");
    assert_eq!(
        fresh.blob_stat(&repo("src"), &d).await.unwrap(),
        data.len() as u64
    );
}

#[tokio::test]
async fn an_unchanged_object_is_not_read_again() {
    let shared = MemoryDriver::shared_by_replicas();
    let key = "repositories/app/_manifests/tags/v1";
    let put = |content: &'static [u8]| shared.put_content(key, Bytes::from_static(content));
    put(b"first").await.unwrap();
    let (content, version) = shared.get_versioned(key).await.unwrap();
    assert_eq!(content.as_ref(), b"first");
    assert_eq!(shared.get_if_changed(key, &version).await.unwrap(), None);
    put(b"second").await.unwrap();
    let (content, newer) = shared.get_if_changed(key, &version).await.unwrap().unwrap();
    assert_eq!(content.as_ref(), b"second");
    assert_ne!(newer, version);
    shared.delete(key).await.unwrap();
    assert!(shared
        .get_if_changed(key, &newer)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn over_unshared_storage_the_index_stays_the_truth() {
    // Two stores over one plain memory driver: nothing says another process writes it, so
    // reads by tag, tag lists and blob checks answer from the index without touching storage.
    let plain = MemoryDriver::new();
    let open = || async {
        let driver: Arc<dyn Driver> = Arc::new(plain.clone());
        Store::open(driver, StoreOptions::default()).await.unwrap()
    };
    let (a, b) = (open().await, open().await);
    let m = image(&a, "app", 1, json!({})).await;
    let d = put(&a, "app", &tag("v1"), &m).await;
    let err = digest_of_tag(&b, "app", "v1").await.unwrap_err();
    assert!(matches!(err, StoreError::NameUnknown { .. }), "{err:?}");
    assert!(b.catalog(None, None).await.unwrap().is_empty());
    let config = sha256(br#"{"seed":1}"#);
    assert!(a.blob_stat(&repo("app"), &config).await.is_ok());
    let err = b.blob_stat(&repo("app"), &config).await.unwrap_err();
    assert!(matches!(err, StoreError::BlobUnknown { .. }), "{err:?}");
    // A store opened afterwards reads it all at open.
    let c = open().await;
    assert_eq!(digest_of_tag(&c, "app", "v1").await.unwrap(), d);
}
