//! Blob and upload semantics over both drivers.

use ocireg_oci::ErrorCode;
use ocireg_store::{Chunk, StoreError, StoreOptions, UploadWatch};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_append_and_complete() {
    for (h, store, r) in Harness::opened(dedupe(), "team/app").await {
        let data = bytes(3 << 20, 1);
        let d = sha256(&data);
        let id = store.upload_start(&r, None).await.unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(store.upload_offset(&r, &id).await.unwrap(), 0);
        let cut = 1_234_567;
        let off = store
            .upload_append(&r, &id, Chunk::new(body(&data[..cut])).at(0))
            .await
            .unwrap();
        assert_eq!(off, cut as u64);
        assert_eq!(store.upload_offset(&r, &id).await.unwrap(), cut as u64);
        let off = store
            .upload_append(&r, &id, Chunk::new(body(&data[cut..2_000_000])))
            .await
            .unwrap();
        assert_eq!(off, 2_000_000);
        let size = store
            .upload_complete(&r, &id, &d, Some(Chunk::new(body(&data[2_000_000..]))))
            .await
            .unwrap();
        assert_eq!(size, data.len() as u64, "{}", h.name());
        assert_eq!(store.blob_stat(&r, &d).await.unwrap(), data.len() as u64);
        let read = store.blob_read(&r, &d, None).await.unwrap();
        assert_eq!(read.size, data.len() as u64);
        assert_eq!(collect(read.body).await, data);
        let read = store
            .blob_read(&r, &d, Some((10, 1_500_000)))
            .await
            .unwrap();
        assert_eq!(read.size, data.len() as u64);
        assert_eq!(collect(read.body).await, &data[10..=1_500_000]);
        // The session is gone and left nothing behind.
        let err = store.upload_offset(&r, &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
        assert!(h.keys("repositories/team/app/_uploads").await.is_empty());
        assert_eq!(store.catalog(None, None).await.unwrap(), vec!["team/app"]);
        // Other repositories do not see the blob.
        let err = store.blob_stat(&repo("other"), &d).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUnknown));
    }
}

#[tokio::test]
async fn wrong_digest_leaves_nothing_visible() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let data = bytes(100_000, 2);
        let claimed = sha256(b"something else");
        let err = store
            .blob_put(&r, &claimed, body(&data), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid), "{err}");
        assert!(
            matches!(err, StoreError::DigestMismatch { ref computed, .. } if *computed == sha256(&data))
        );
        // Session upload with a wrong digest: the session and its bytes are removed.
        let id = upload_with_first_chunk(&store, &r, &data).await;
        let err = store
            .upload_complete(&r, &id, &claimed, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        let err = store.upload_offset(&r, &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
        for d in [&claimed, &sha256(&data)] {
            let err = store.blob_stat(&r, d).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::BlobUnknown));
        }
        assert!(h.keys("blobs").await.is_empty(), "{}", h.name());
        assert!(
            h.keys("repositories").await.is_empty(),
            "{:?}",
            h.keys("").await
        );
        assert!(store.catalog(None, None).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn out_of_order_chunk_is_range_invalid() {
    for (_h, store, r) in Harness::opened(dedupe(), "app").await {
        let id = upload_with_first_chunk(&store, &r, b"hello ").await;
        for start in [0u64, 5, 7, 100] {
            let err = store
                .upload_append(&r, &id, Chunk::new(body(b"x")).at(start))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::RangeInvalid), "start {start}");
        }
        assert_eq!(store.upload_offset(&r, &id).await.unwrap(), 6);
        store
            .upload_append(&r, &id, Chunk::new(body(b"world")).at(6))
            .await
            .unwrap();
        let d = sha256(b"hello world");
        assert_eq!(store.upload_complete(&r, &id, &d, None).await.unwrap(), 11);
        // Unknown, malformed and foreign session ids.
        for bad in ["nope", "../../etc", &"0".repeat(32)] {
            let err = store.upload_offset(&r, bad).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown), "{bad}");
        }
        let id = store.upload_start(&r, None).await.unwrap();
        let err = store.upload_offset(&repo("other"), &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
        store.upload_cancel(&r, &id).await.unwrap();
        let err = store.upload_cancel(&r, &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resumes_after_restart() {
    for mut h in Harness::both(dedupe()).await {
        let data = bytes(2_500_000, 3);
        let d = sha256(&data);
        let r = repo("resume/me");
        let store = h.open().await;
        let id = upload_with_first_chunk(&store, &r, &data[..1_000_000]).await;
        // A graceful stop: the session's last write lands (a crash may lose it instead; the
        // status then reports what landed).
        store.close_uploads().await;
        drop(store);
        // Restart: the hash state is gone and is rebuilt from the stored bytes.
        let store = h.open().await;
        assert_eq!(store.upload_offset(&r, &id).await.unwrap(), 1_000_000);
        store
            .upload_append(
                &r,
                &id,
                Chunk::new(body(&data[1_000_000..2_000_000])).at(1_000_000),
            )
            .await
            .unwrap();
        store.close_uploads().await;
        drop(store);
        let store = h.open().await;
        let size = store
            .upload_complete(&r, &id, &d, Some(Chunk::new(body(&data[2_000_000..]))))
            .await
            .unwrap();
        assert_eq!(size, data.len() as u64);
        let read = store.blob_read(&r, &d, None).await.unwrap();
        assert_eq!(collect(read.body).await, data, "{}", h.name());
    }
}

#[tokio::test]
async fn failed_chunk_keeps_received_bytes_and_resumes() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let data = bytes(50_000, 4);
        let id = store.upload_start(&r, None).await.unwrap();
        let err = store
            .upload_append(&r, &id, Chunk::new(failing_body(&data[..20_000])).at(0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadInvalid));
        let offset = store.upload_offset(&r, &id).await.unwrap();
        assert_eq!(offset, 20_000, "{}", h.name());
        store
            .upload_append(&r, &id, Chunk::new(body(&data[20_000..])).at(offset))
            .await
            .unwrap();
        let d = sha256(&data);
        store.upload_complete(&r, &id, &d, None).await.unwrap();
        assert_eq!(store.blob_stat(&r, &d).await.unwrap(), 50_000);
    }
}

#[tokio::test]
async fn dedupe_keeps_one_copy_and_off_keeps_one_per_repo() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let data = bytes(70_000, 5);
        let d = push_blob(&store, "one", &data).await;
        push_blob(&store, "two", &data).await;
        assert_eq!(h.keys("blobs").await.len(), 1, "{}", h.name());
        let local = h.repository_keys("/_blobs/").await;
        assert!(local.is_empty(), "{local:?}");
        for name in ["one", "two"] {
            assert_eq!(store.blob_stat(&repo(name), &d).await.unwrap(), 70_000);
        }
    }
    for mut h in Harness::both(StoreOptions {
        dedupe: false,
        ..Default::default()
    })
    .await
    {
        let store = h.open().await;
        let data = bytes(70_000, 6);
        let d = push_blob(&store, "one", &data).await;
        push_blob(&store, "two", &data).await;
        // Mounting copies too.
        assert!(store
            .blob_mount(&repo("three"), &d, Some(&repo("one")))
            .await
            .unwrap());
        assert!(h.keys("blobs").await.is_empty(), "{}", h.name());
        let local = h.repository_keys("/_blobs/").await;
        assert_eq!(local.len(), 3, "{local:?}");
        for name in ["one", "two", "three"] {
            let read = store.blob_read(&repo(name), &d, None).await.unwrap();
            assert_eq!(collect(read.body).await, data);
        }
        // Unlinking in one repository leaves the others intact.
        store.blob_delete(&repo("one"), &d).await.unwrap();
        assert!(store.blob_stat(&repo("one"), &d).await.is_err());
        assert_eq!(store.blob_stat(&repo("two"), &d).await.unwrap(), 70_000);
        let snap = h.open().await.snapshot();
        assert!(snap["two"].local_data.contains(&d));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_same_blob_commits_across_repos() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let data = bytes(4 << 20, 7);
        let d = sha256(&data);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (store, data, d) = (store.clone(), data.clone(), d.clone());
            tasks.push(tokio::spawn(async move {
                let r = repo(&format!("repo{i}"));
                if i % 2 == 0 {
                    store.blob_put(&r, &d, body(&data), None).await
                } else {
                    let id = store.upload_start(&r, None).await?;
                    store
                        .upload_append(&r, &id, Chunk::new(body(&data)).at(0))
                        .await?;
                    store.upload_complete(&r, &id, &d, None).await
                }
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), data.len() as u64);
        }
        assert_eq!(h.keys("blobs").await.len(), 1, "{}", h.name());
        for i in 0..8 {
            let r = repo(&format!("repo{i}"));
            let read = store.blob_read(&r, &d, None).await.unwrap();
            assert_eq!(collect(read.body).await, data);
        }
        let leftovers = h.repository_keys("/_uploads/").await;
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(store.catalog(None, None).await.unwrap().len(), 8);
    }
}

#[tokio::test]
async fn mount_from_repo_and_by_discovery() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let data = bytes(10_000, 8);
        let d = push_blob(&store, "src", &data).await;
        let unknown = sha256(b"never pushed");
        assert!(!store
            .blob_mount(&repo("dst"), &unknown, Some(&repo("src")))
            .await
            .unwrap());
        assert!(!store
            .blob_mount(&repo("dst"), &d, Some(&repo("elsewhere")))
            .await
            .unwrap());
        assert!(store
            .blob_mount(&repo("dst"), &d, Some(&repo("src")))
            .await
            .unwrap());
        assert!(store.blob_mount(&repo("auto"), &d, None).await.unwrap());
        assert!(!store
            .blob_mount(&repo("auto"), &unknown, None)
            .await
            .unwrap());
        for name in ["dst", "auto"] {
            assert_eq!(store.blob_stat(&repo(name), &d).await.unwrap(), 10_000);
        }
        assert_eq!(h.keys("blobs").await.len(), 1);
        // Unlink: gone from that repository only, and a second unlink is BLOB_UNKNOWN.
        store.blob_delete(&repo("dst"), &d).await.unwrap();
        let err = store.blob_delete(&repo("dst"), &d).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUnknown));
        assert!(store.blob_read(&repo("dst"), &d, None).await.is_err());
        assert_eq!(store.blob_stat(&repo("src"), &d).await.unwrap(), 10_000);
        assert_eq!(
            store.catalog(None, None).await.unwrap(),
            vec!["auto", "src"]
        );
    }
}

#[tokio::test]
async fn sha512_blobs_single_request_and_chunked() {
    for (h, store, r) in Harness::opened(dedupe(), "sha").await {
        let data = bytes(1_500_000, 9);
        let d = sha512(&data);
        store.blob_put(&r, &d, body(&data), None).await.unwrap();
        assert_eq!(store.blob_stat(&r, &d).await.unwrap(), data.len() as u64);
        assert!(h.keys("blobs/sha512").await.len() == 1, "{}", h.name());
        // Chunked: appends hash with sha256, completion re-hashes with sha512.
        let data2 = bytes(900_000, 10);
        let d2 = sha512(&data2);
        let id = upload_with_first_chunk(&store, &r, &data2[..400_000]).await;
        store
            .upload_append(&r, &id, Chunk::new(body(&data2[400_000..])).at(400_000))
            .await
            .unwrap();
        store.upload_complete(&r, &id, &d2, None).await.unwrap();
        let read = store.blob_read(&r, &d2, None).await.unwrap();
        assert_eq!(collect(read.body).await, data2);
        // Monolithic session upload (all bytes with the completing request).
        let data3 = bytes(10_000, 11);
        let id = store.upload_start(&r, None).await.unwrap();
        let wrong = sha512(b"nope");
        let err = store
            .upload_complete(&r, &id, &wrong, Some(Chunk::new(body(&data3))))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        let id = store.upload_start(&r, None).await.unwrap();
        store
            .upload_complete(&r, &id, &sha512(&data3), Some(Chunk::new(body(&data3))))
            .await
            .unwrap();
        // A chunk, then the rest with the completing request: the re-hash must see every
        // byte of the last body (its write may still be in flight when hashing starts).
        let data4 = bytes(2_500_000, 12);
        let d4 = sha512(&data4);
        let id = upload_with_first_chunk(&store, &r, &data4[..700_000]).await;
        let size = store
            .upload_complete(&r, &id, &d4, Some(Chunk::new(body(&data4[700_000..]))))
            .await
            .unwrap();
        assert_eq!(size, data4.len() as u64);
        let read = store.blob_read(&r, &d4, None).await.unwrap();
        assert_eq!(collect(read.body).await, data4);
    }
}

#[tokio::test]
async fn empty_blob_and_invalid_ranges() {
    for (_h, store, r) in Harness::opened(dedupe(), "app").await {
        let empty = sha256(b"");
        let id = store.upload_start(&r, None).await.unwrap();
        assert_eq!(
            store.upload_complete(&r, &id, &empty, None).await.unwrap(),
            0
        );
        assert_eq!(store.blob_stat(&r, &empty).await.unwrap(), 0);
        assert!(
            collect(store.blob_read(&r, &empty, None).await.unwrap().body)
                .await
                .is_empty()
        );
        let d = push_blob(&store, "app", b"0123456789").await;
        let read = store.blob_read(&r, &d, Some((9, 9))).await.unwrap();
        assert_eq!(collect(read.body).await, b"9");
        for range in [(5, 10), (10, 12), (6, 5)] {
            let err = store.blob_read(&r, &d, Some(range)).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::RangeInvalid), "{range:?}");
        }
        let err = store.blob_read(&r, &sha256(b"x"), None).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUnknown));
    }
}

#[tokio::test]
async fn session_removed_from_storage_is_unknown() {
    for (h, store, r) in Harness::opened(dedupe(), "app").await {
        let id = upload_with_first_chunk(&store, &r, b"abc").await;
        // Storage removed behind the store's back (as GC of stale uploads will do).
        h.driver
            .delete(&format!("repositories/app/_uploads/{id}"))
            .await
            .unwrap();
        let err = store
            .upload_append(&r, &id, Chunk::new(body(b"def")).at(3))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(ErrorCode::BlobUploadUnknown),
            "{}",
            h.name()
        );
        let err = store.upload_offset(&r, &id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
        assert!(h.keys("repositories/app/_uploads").await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_open_sessions_than_kept_writers_all_complete() {
    // 300 sessions are open at once, more than keep their writer between requests (256): the
    // rest close theirs after each chunk and reopen on the next; every blob comes out whole.
    for (h, store, r) in Harness::opened(dedupe(), "many/sessions").await {
        let mut open = Vec::new();
        for i in 0..300u64 {
            let data = bytes(3000 + i as usize, i);
            let id = upload_with_first_chunk(&store, &r, &data[..1000]).await;
            open.push((id, data));
        }
        for (id, data) in &open {
            store
                .upload_append(&r, id, Chunk::new(body(&data[1000..2000])).at(1000))
                .await
                .unwrap();
        }
        for (id, data) in &open {
            let d = sha256(data);
            let n = store
                .upload_complete(&r, id, &d, Some(Chunk::new(body(&data[2000..]))))
                .await
                .unwrap();
            assert_eq!(n, data.len() as u64);
            let read = store.blob_read(&r, &d, None).await.unwrap();
            assert_eq!(collect(read.body).await, *data, "{}", h.name());
        }
        assert_eq!(store.upload_session_count(), 0);
    }
}

/// Records the sessions an [`UploadWatch`] is told are open, with their owners.
#[derive(Default)]
pub struct OpenSessions(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl OpenSessions {
    pub fn owners(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.lock().unwrap().values().cloned().collect();
        v.sort();
        v
    }
}

impl UploadWatch for OpenSessions {
    fn opened(&self, session: &str, owner: &str) {
        let old = self
            .0
            .lock()
            .unwrap()
            .insert(session.to_owned(), owner.to_owned());
        assert!(old.is_none(), "{session} opened twice");
    }

    fn used(&self, session: &str) {
        assert!(self.0.lock().unwrap().contains_key(session), "{session}");
    }

    fn ended(&self, session: &str) {
        self.0.lock().unwrap().remove(session);
    }
}

#[tokio::test]
async fn watchers_see_every_way_a_session_ends() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let watch = std::sync::Arc::new(OpenSessions::default());
        store.watch_uploads(watch.clone());
        let r = repo("watched");
        let data = b"some bytes".to_vec();
        let start = |owner: &'static str| {
            let store = store.clone();
            let r = r.clone();
            async move { store.upload_start(&r, Some(owner)).await.unwrap() }
        };
        let (done, cancelled, wrong, open) = (
            start("a").await,
            start("b").await,
            start("c").await,
            start("d").await,
        );
        store.upload_start(&r, None).await.unwrap();
        assert_eq!(watch.owners(), ["a", "b", "c", "d"], "{}", h.name());
        store
            .upload_complete(&r, &done, &sha256(&data), Some(Chunk::new(body(&data))))
            .await
            .unwrap();
        store.upload_cancel(&r, &cancelled).await.unwrap();
        let err = store
            .upload_complete(&r, &wrong, &sha256(b"other"), Some(Chunk::new(body(&data))))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        // A chunk at the wrong offset ends nothing.
        let err = store
            .upload_append(&r, &open, Chunk::new(body(&data)).at(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UploadRange { offset: 0, .. }),
            "{err:?}"
        );
        assert_eq!(watch.owners(), ["d"], "{}", h.name());
        // Storage removed behind the store's back: the session ends when next used.
        h.driver
            .delete(&ocireg_store::paths::upload("watched", &open))
            .await
            .unwrap();
        store.upload_offset(&r, &open).await.unwrap_err();
        assert!(watch.owners().is_empty(), "{}", h.name());
    }
}
