//! The filesystem driver's journal: replay after a crash, torn appends, no resurrection.

use std::path::Path;

use bytes::Bytes;
use ocireg_store::{Chunk, Driver, FsDriver, Publication};

use crate::common::{fresh_fs_driver, put};

/// One journaled `put_ordered` of these groups of (key, content).
async fn put_groups(driver: &FsDriver, items: &[&[(&str, &str)]]) {
    let groups = items
        .iter()
        .map(|g| {
            g.iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes::from(v.to_string())))
                .collect()
        })
        .collect();
    driver.put_ordered(groups).await.unwrap();
}

fn journal_len(root: &Path) -> u64 {
    std::fs::metadata(root.join(".journal")).unwrap().len()
}

async fn content(driver: &FsDriver, key: &str) -> Option<String> {
    match driver.get_content(key).await {
        Ok(b) => Some(String::from_utf8(b.to_vec()).unwrap()),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("{key}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_put_is_replayed_over_whatever_its_files_became() {
    let (dir, driver) = fresh_fs_driver().await;
    let root = dir.path();
    put_groups(
        &driver,
        &[&[("b/data", "bytes")], &[("r/link", "b"), ("r/tag", "b")]],
    )
    .await;
    assert!(
        journal_len(root) > 0,
        "the put is in the journal until a checkpoint"
    );
    drop(driver);
    // What a crash can leave of files that were never synced: missing, empty, torn.
    std::fs::remove_file(root.join("r/tag")).unwrap();
    std::fs::write(root.join("b/data"), b"").unwrap();
    std::fs::write(root.join("r/link"), b"x").unwrap();

    let driver = FsDriver::open(root).await.unwrap();
    assert_eq!(content(&driver, "b/data").await.as_deref(), Some("bytes"));
    assert_eq!(content(&driver, "r/link").await.as_deref(), Some("b"));
    assert_eq!(content(&driver, "r/tag").await.as_deref(), Some("b"));
    assert_eq!(journal_len(root), 0, "replay ends with a checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_puts_win_and_a_torn_append_is_ignored() {
    let (dir, driver) = fresh_fs_driver().await;
    let root = dir.path();
    for v in ["one", "two", "three"] {
        put_groups(&driver, &[&[("r/tag", v)]]).await;
    }
    drop(driver);
    let whole = std::fs::read(root.join(".journal")).unwrap();
    std::fs::remove_file(root.join("r/tag")).unwrap();
    // Every cut of the journal replays exactly the records that are whole.
    let mut seen = Vec::new();
    for cut in 0..=whole.len() {
        std::fs::write(root.join(".journal"), &whole[..cut]).unwrap();
        let _ = std::fs::remove_file(root.join("r/tag"));
        let driver = FsDriver::open(root).await.unwrap();
        let got = content(&driver, "r/tag").await;
        if seen.last() != Some(&got) {
            seen.push(got);
        }
    }
    let want: Vec<Option<String>> = [None, Some("one"), Some("two"), Some("three")]
        .into_iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    assert_eq!(seen, want);
    // A flipped byte in the last record's payload: it is not replayed.
    let mut bad = whole.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    std::fs::write(root.join(".journal"), &bad).unwrap();
    let driver = FsDriver::open(root).await.unwrap();
    assert_eq!(content(&driver, "r/tag").await.as_deref(), Some("two"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_or_delete_after_a_journaled_put_is_never_undone_by_replay() {
    let (dir, driver) = fresh_fs_driver().await;
    let root = dir.path();
    put_groups(
        &driver,
        &[&[("r/a/tag", "old"), ("r/b/tag", "x"), ("r/c/tag", "y")]],
    )
    .await;
    // Outside the journal: an overwrite, a delete and a prefix delete of journaled files.
    put(&driver, "r/a/tag", b"new").await;
    assert_eq!(journal_len(root), 0, "the overwrite checkpointed first");
    put_groups(&driver, &[&[("r/b/tag", "x2")], &[("r/c/tag", "y2")]]).await;
    driver.delete("r/b/tag").await.unwrap();
    assert_eq!(journal_len(root), 0);
    put_groups(&driver, &[&[("r/c/tag", "y3")]]).await;
    driver.delete("r/c").await.unwrap();
    // An unrelated write does not checkpoint.
    put_groups(&driver, &[&[("r/d/tag", "z")]]).await;
    put(&driver, "r/e", b"e").await;
    assert!(journal_len(root) > 0);
    drop(driver);

    let driver = FsDriver::open(root).await.unwrap();
    assert_eq!(content(&driver, "r/a/tag").await.as_deref(), Some("new"));
    assert_eq!(content(&driver, "r/b/tag").await, None);
    assert_eq!(content(&driver, "r/c/tag").await, None);
    assert_eq!(content(&driver, "r/d/tag").await.as_deref(), Some("z"));
    assert!(driver
        .walk("")
        .await
        .unwrap()
        .iter()
        .all(|o| !o.key.starts_with('.')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_appends_and_all_survive_a_replay() {
    let (dir, driver) = fresh_fs_driver().await;
    let root = dir.path();
    let puts = (0..64).map(|i| {
        let driver = driver.clone();
        async move {
            let key = format!("r/tags/t{i}");
            driver
                .put_ordered(vec![vec![(key, Bytes::from(format!("v{i}")))]])
                .await
        }
    });
    for r in futures_util::future::join_all(puts).await {
        r.unwrap();
    }
    drop(driver);
    for i in 0..64 {
        std::fs::remove_file(root.join(format!("r/tags/t{i}"))).unwrap();
    }
    let driver = FsDriver::open(root).await.unwrap();
    for i in 0..64 {
        let key = format!("r/tags/t{i}");
        assert_eq!(content(&driver, &key).await, Some(format!("v{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_blobs_link_lost_in_a_crash_comes_back_from_the_journal() {
    use crate::common::*;
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let r = repo("app");
    let data = bytes(300_000, 9);
    let d = sha256(&data);
    let id = store.upload_start(&r, None).await.unwrap();
    store
        .upload_complete(&r, &id, &d, Some(Chunk::new(body(&data))))
        .await
        .unwrap();
    drop(store);
    let root = h.dir.as_ref().unwrap().path().to_owned();
    assert!(journal_len(&root) > 0, "the link is in the journal");
    // The link file itself was written without a sync: a crash may lose it.
    let link = root.join(format!("repositories/app/_layers/sha256/{}", d.hex()));
    std::fs::remove_file(&link).unwrap();
    let store = h.open().await;
    assert_eq!(store.blob_stat(&r, &d).await.unwrap(), data.len() as u64);
    let read = store.blob_read(&r, &d, None).await.unwrap();
    assert_eq!(collect(read.body).await, data);
}

/// Publishes `data` from a writer at `u/1/data` to `b/blob` with the link `r/link`; `ready`
/// fails with a mismatch when `verify` is false (the bytes still get committed first).
async fn publish(
    driver: &FsDriver,
    data: &[u8],
    verify: bool,
) -> Result<(), ocireg_store::StoreError> {
    let digest = ocireg_oci::Digest::compute(ocireg_oci::Algorithm::Sha256, data);
    let mut writer = driver.writer("u/1/data", false).await.unwrap();
    writer
        .write(vec![Bytes::copy_from_slice(data)])
        .await
        .unwrap();
    let expected = digest.clone();
    let ready = Box::pin(async move {
        writer.commit().await?;
        if verify {
            Ok(())
        } else {
            let computed = ocireg_oci::Digest::compute(ocireg_oci::Algorithm::Sha256, b"other");
            Err(ocireg_store::StoreError::DigestMismatch { expected, computed })
        }
    });
    let link = ("r/link".to_owned(), Bytes::from(digest.to_string()));
    driver
        .publish(Publication {
            from: "u/1/data",
            to: "b/blob",
            digest: &digest,
            size: data.len() as u64,
            ready,
            links: vec![link],
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_blob_is_replayed_only_from_bytes_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = vec![7u8; 100_000];
    let driver = FsDriver::open(root).await.unwrap();
    publish(&driver, &data, true).await.unwrap();
    assert_eq!(std::fs::read(root.join("b/blob")).unwrap(), data);
    drop(driver);
    let journal = std::fs::read(root.join(".journal")).unwrap();
    assert!(!journal.is_empty(), "the publication is journaled");
    let (blob, source, link) = (
        root.join("b/blob"),
        root.join("u/1/data"),
        root.join("r/link"),
    );
    let reopen = || async {
        std::fs::write(root.join(".journal"), &journal).unwrap();
        let _ = std::fs::remove_file(&link);
        let driver = FsDriver::open(root).await.unwrap();
        (
            content(&driver, "r/link").await,
            blob.exists(),
            source.exists(),
        )
    };
    let linked = Some(format!("sha256:{}", sha256_hex(&data)));

    // The rename and the link were lost: both are redone.
    std::fs::rename(&blob, &source).unwrap();
    assert_eq!(reopen().await, (linked.clone(), true, false));
    assert_eq!(std::fs::read(&blob).unwrap(), data);

    // The blob is in place and only the link was lost.
    assert_eq!(reopen().await, (linked, true, false));

    // The record is durable but the bytes never were: no blob, no link; the source stays.
    std::fs::rename(&blob, &source).unwrap();
    std::fs::write(&source, &data[..50_000]).unwrap();
    assert_eq!(reopen().await, (None, false, true));

    // Neither source nor blob: the link is dropped too.
    std::fs::remove_file(&source).unwrap();
    assert_eq!(reopen().await, (None, false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_whose_digest_did_not_match_never_appears() {
    let (dir, driver) = fresh_fs_driver().await;
    let root = dir.path();
    let r = publish(&driver, b"claimed bytes", false).await;
    assert!(
        matches!(r, Err(ocireg_store::StoreError::DigestMismatch { .. })),
        "{r:?}"
    );
    assert!(!root.join("b/blob").exists() && !root.join("r/link").exists());
    drop(driver);
    // The record was appended while the digest was being checked; replay verifies the source
    // (here: bytes that do not hash to the record's digest) and drops it.
    assert!(journal_len(root) > 0);
    std::fs::write(root.join("u/1/data"), b"tampered").unwrap();
    let driver = FsDriver::open(root).await.unwrap();
    assert_eq!(content(&driver, "b/blob").await, None);
    assert_eq!(content(&driver, "r/link").await, None);
    assert_eq!(journal_len(root), 0);
}

fn sha256_hex(data: &[u8]) -> String {
    ocireg_oci::Digest::compute(ocireg_oci::Algorithm::Sha256, data)
        .hex()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_checkpoints_the_journal_for_a_graceful_stop() {
    let (dir, driver) = fresh_fs_driver().await;
    let root = dir.path();
    put_groups(&driver, &[&[("r/tag", "v1")]]).await;
    publish(&driver, b"some bytes", true).await.unwrap();
    assert!(journal_len(root) > 0);
    driver.flush().await.unwrap();
    assert_eq!(journal_len(root), 0, "flush leaves nothing to replay");
    assert_eq!(content(&driver, "r/tag").await.as_deref(), Some("v1"));
    assert_eq!(
        content(&driver, "b/blob").await.as_deref(),
        Some("some bytes")
    );
}
