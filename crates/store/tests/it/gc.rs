//! Garbage collection: mark (tags, index children, referrers, untagged), sweep (links, shared
//! and per-repository data), grace period, dry run, stale uploads, and a concurrent push race.
//! On the filesystem driver, with file times set back to make objects "old".

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ocireg_oci::{Digest, ErrorCode, Reference, RepoName};
use ocireg_store::{paths, Chunk, GcOptions, GcReport, Store, StoreOptions, StoreStats};
use serde_json::json;

use crate::common::*;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const HOUR: Duration = Duration::from_secs(3600);

fn opts(delete_untagged: bool) -> GcOptions {
    GcOptions {
        dry_run: false,
        grace_period: HOUR,
        delete_untagged,
        upload_ttl: 24 * HOUR,
        ..GcOptions::default()
    }
}

/// Sets the modification time of every file below `dir` back by `by`.
fn age_files(dir: &Path, by: Duration) {
    let when = SystemTime::now() - by;
    if dir.is_file() {
        let f = std::fs::File::options().write(true).open(dir).unwrap();
        f.set_modified(when).unwrap();
        return;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let f = std::fs::File::options().write(true).open(&p).unwrap();
                f.set_modified(when).unwrap();
            }
        }
    }
}

/// Makes everything in storage two hours old and reopens the store (a restart: no recent uses).
async fn aged(h: &mut Harness) -> Store {
    age_files(h.dir.as_ref().unwrap().path(), 2 * HOUR);
    h.open().await
}

/// Deletes the manifest `reference` in `r`, ages the storage past the grace period and runs
/// GC (`opts(delete_untagged)`) on a reopened store; returns that store and the report.
async fn delete_then_collect(
    h: &mut Harness,
    store: &Store,
    r: &RepoName,
    reference: &Reference,
    delete_untagged: bool,
) -> (Store, GcReport) {
    store.manifest_delete(r, reference).await.unwrap();
    let store = aged(h).await;
    let report = store.gc(&opts(delete_untagged)).await.unwrap();
    (store, report)
}

fn root(h: &Harness) -> &Path {
    h.dir.as_ref().unwrap().path()
}

fn exists(h: &Harness, key: &str) -> bool {
    root(h).join(key).exists()
}

fn removed_blobs(r: &GcReport) -> BTreeSet<(String, String, u64)> {
    r.blobs
        .iter()
        .map(|b| (b.digest.clone(), b.repo.clone(), b.bytes))
        .collect()
}

fn removed_links(r: &GcReport) -> BTreeSet<(String, String)> {
    r.links
        .iter()
        .map(|l| (l.repo.clone(), l.digest.clone()))
        .collect()
}

fn removed_manifests(r: &GcReport) -> BTreeSet<(String, String)> {
    r.manifests
        .iter()
        .map(|m| (m.repo.clone(), m.digest.clone()))
        .collect()
}

fn shared(d: &Digest, len: usize) -> (String, String, u64) {
    (d.to_string(), "shared".into(), len as u64)
}

/// Pushes config + layers and a manifest tagged `tag_name`, or by its own digest when `None`;
/// returns (digest, bytes).
async fn put_image(
    store: &Store,
    name: &str,
    tag_name: Option<&str>,
    config: &[u8],
    layers: &[&[u8]],
    extra: serde_json::Value,
) -> (Digest, Vec<u8>) {
    push_blob(store, name, config).await;
    for l in layers {
        push_blob(store, name, l).await;
    }
    let m = image_manifest(config, layers, extra);
    let reference = tag_name.map_or_else(|| by_digest(&sha256(&m)), tag);
    let put = store
        .manifest_put(&repo(name), &reference, None, Bytes::from(m.clone()))
        .await
        .unwrap();
    (put.digest, m)
}

async fn readable(store: &Store, name: &str, data: &[u8]) -> bool {
    match store.blob_read(&repo(name), &sha256(data), None).await {
        Ok(read) => collect(read.body).await == data,
        Err(_) => false,
    }
}

#[tokio::test]
async fn shared_blobs_survive_while_any_repository_links_them() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let (s, ca, ua, cb, ub) = (
        bytes(7000, 1),
        bytes(100, 2),
        bytes(3000, 3),
        bytes(101, 4),
        bytes(3001, 5),
    );
    let (ma, ma_bytes) = put_image(&store, "a", Some("v1"), &ca, &[&s, &ua], json!({})).await;
    put_image(&store, "b", Some("v1"), &cb, &[&s, &ub], json!({})).await;
    let (store, report) =
        delete_then_collect(&mut h, &store, &repo("a"), &by_digest(&ma), false).await;
    let expected_links: BTreeSet<_> = [&ca, &s, &ua]
        .iter()
        .map(|d| ("a".to_owned(), sha256(d).to_string()))
        .collect();
    assert_eq!(removed_links(&report), expected_links);
    let expected_blobs: BTreeSet<_> = [
        shared(&sha256(&ca), ca.len()),
        shared(&sha256(&ua), ua.len()),
        shared(&ma, ma_bytes.len()),
    ]
    .into_iter()
    .collect();
    assert_eq!(removed_blobs(&report), expected_blobs);
    assert_eq!(
        report.bytes_freed,
        (ca.len() + ua.len() + ma_bytes.len()) as u64
    );
    assert!(report.manifests.is_empty() && report.errors.is_empty());
    // b is intact, byte for byte; a no longer sees the shared blob.
    for data in [&s, &cb, &ub] {
        assert!(readable(&store, "b", data).await);
    }
    store.manifest_get(&repo("b"), &tag("v1")).await.unwrap();
    let err = store.blob_stat(&repo("a"), &sha256(&s)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUnknown));
    assert!(exists(&h, &paths::shared_data(&sha256(&s))));
    assert!(!exists(&h, &paths::shared_data(&sha256(&ua))));
    assert!(!exists(&h, &paths::layer_link("a", &sha256(&s))));
    let st = store.stats();
    assert_eq!(StoreStats::get(&st.gc_runs), 1);
    assert_eq!(StoreStats::get(&st.gc_blobs_removed), 3);
    assert_eq!(StoreStats::get(&st.gc_bytes_freed), report.bytes_freed);
    // A second run finds nothing; the state survives a restart.
    let again = store.gc(&opts(false)).await.unwrap();
    assert!(again.blobs.is_empty() && again.links.is_empty());
    let store = h.open().await;
    assert!(readable(&store, "b", &s).await);
    assert!(store.blob_stat(&repo("a"), &sha256(&s)).await.is_err());
}

#[tokio::test]
async fn index_children_live_through_their_index() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let blobs: Vec<Vec<u8>> = (0..6).map(|i| bytes(500 + i, 10 + i as u64)).collect();
    let (m1, m1b) = put_image(&store, "idx", None, &blobs[0], &[&blobs[1]], json!({})).await;
    let (m2, m2b) = put_image(&store, "idx", None, &blobs[2], &[&blobs[3]], json!({})).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": m1.to_string(), "size": m1b.len()},
            {"mediaType": OCI_MANIFEST, "digest": m2.to_string(), "size": m2b.len()},
        ],
    }))
    .unwrap();
    store
        .manifest_put(
            &repo("idx"),
            &tag("multi"),
            None,
            Bytes::from(index.clone()),
        )
        .await
        .unwrap();
    // An unrelated untagged manifest.
    let (m3, lone) = put_image(&store, "idx", None, &blobs[4], &[&blobs[5]], json!({})).await;
    let store = aged(&mut h).await;
    let report = store.gc(&opts(true)).await.unwrap();
    assert_eq!(
        removed_manifests(&report),
        [("idx".to_owned(), m3.to_string())].into_iter().collect()
    );
    let expected: BTreeSet<_> = [
        shared(&sha256(&blobs[4]), blobs[4].len()),
        shared(&sha256(&blobs[5]), blobs[5].len()),
        shared(&m3, lone.len()),
    ]
    .into_iter()
    .collect();
    assert_eq!(removed_blobs(&report), expected);
    for d in &blobs[..4] {
        assert!(readable(&store, "idx", d).await);
    }
    for m in [&m1, &m2] {
        store
            .manifest_get(&repo("idx"), &by_digest(m))
            .await
            .unwrap();
    }
    // Untag the index: everything goes.
    let (store, report) =
        delete_then_collect(&mut h, &store, &repo("idx"), &tag("multi"), true).await;
    assert_eq!(report.manifests.len(), 3, "{report:?}");
    assert_eq!(report.blobs.len(), 4 + 3);
    assert!(store.catalog(None, None).await.unwrap().is_empty());
    assert!(h.keys("blobs").await.is_empty());
    assert!(h.keys("repositories").await.is_empty());
}

#[tokio::test]
async fn referrers_of_live_manifests_stay() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let (img, img_bytes) = put_image(
        &store,
        "ref",
        Some("v1"),
        &bytes(200, 30),
        &[&bytes(900, 31)],
        json!({}),
    )
    .await;
    let sig_blob = bytes(64, 32);
    let subject = json!({"subject": {"mediaType": OCI_MANIFEST, "digest": img.to_string(), "size": img_bytes.len()}, "artifactType": "application/vnd.example.sig"});
    let (sig_d, _) = put_image(&store, "ref", None, b"{}", &[&sig_blob], subject).await;
    let store = aged(&mut h).await;
    let report = store.gc(&opts(true)).await.unwrap();
    assert!(
        report.manifests.is_empty() && report.blobs.is_empty(),
        "{report:?}"
    );
    assert!(readable(&store, "ref", &sig_blob).await);
    let listed = store.referrers(&repo("ref"), &img, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, sig_d);
    // Without a tag on the subject, the signature goes with it.
    let (store, report) = delete_then_collect(&mut h, &store, &repo("ref"), &tag("v1"), true).await;
    let expected: BTreeSet<_> = [
        ("ref".to_owned(), img.to_string()),
        ("ref".to_owned(), sig_d.to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(removed_manifests(&report), expected);
    assert!(store
        .referrers(&repo("ref"), &img, None)
        .await
        .unwrap()
        .is_empty());
    assert!(h.keys("repositories").await.is_empty());
    // Still consistent after a restart.
    let store = h.open().await;
    assert!(store.catalog(None, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn untagged_manifests_are_kept_unless_asked() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let (config, layer) = (bytes(150, 40), bytes(2500, 41));
    let (d, m) = put_image(&store, "u", None, &config, &[&layer], json!({})).await;
    let store = aged(&mut h).await;
    let report = store.gc(&opts(false)).await.unwrap();
    assert!(report.blobs.is_empty() && report.manifests.is_empty());
    assert_eq!(report.live_manifests, 1);
    assert_eq!(report.live_links, 2);
    assert!(readable(&store, "u", &layer).await);
    store
        .manifest_get(&repo("u"), &by_digest(&d))
        .await
        .unwrap();
    // Just fetched by digest: in use for the grace period.
    let report = store.gc(&opts(true)).await.unwrap();
    assert!(report.manifests.is_empty());
    let store = h.open().await;
    let report = store.gc(&opts(true)).await.unwrap();
    assert_eq!(report.manifests.len(), 1);
    assert_eq!(report.blobs.len(), 3);
    assert_eq!(
        report.bytes_freed,
        (config.len() + layer.len() + m.len()) as u64
    );
    let err = store
        .manifest_get(&repo("u"), &by_digest(&d))
        .await
        .unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::ManifestUnknown | ErrorCode::NameUnknown)
    ));
    assert_eq!(
        StoreStats::get(&store.stats().gc_manifests_removed),
        1,
        "manifest counter"
    );
}

#[tokio::test]
async fn grace_period_and_recent_use_protect_unreferenced_blobs() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let data = bytes(4096, 50);
    let d = push_blob(&store, "g", &data).await;
    // Fresh: kept (link and data).
    let store = h.open().await;
    let report = store.gc(&opts(false)).await.unwrap();
    assert!(report.blobs.is_empty() && report.links.is_empty());
    assert_eq!(report.kept_young, 1, "the link (its data is still linked)");
    // Old, but a client just checked it (HEAD): kept for the grace period.
    let store = aged(&mut h).await;
    store.blob_stat(&repo("g"), &d).await.unwrap();
    let report = store.gc(&opts(false)).await.unwrap();
    assert!(report.links.is_empty(), "{report:?}");
    // Old and unused: removed.
    let store = h.open().await;
    let report = store.gc(&opts(false)).await.unwrap();
    assert_eq!(
        removed_links(&report),
        [("g".to_owned(), d.to_string())].into_iter().collect()
    );
    assert_eq!(
        removed_blobs(&report),
        [shared(&d, data.len())].into_iter().collect()
    );
    assert!(!exists(&h, &paths::shared_data(&d)));
    // Pushing again works.
    push_blob(&store, "g", &data).await;
    assert!(readable(&store, "g", &data).await);
    // A zero grace period removes at once (nothing references it).
    let store = h.open().await;
    let zero = GcOptions {
        grace_period: Duration::ZERO,
        ..opts(false)
    };
    let report = store.gc(&zero).await.unwrap();
    assert_eq!(report.blobs.len(), 1);
}

#[tokio::test]
async fn dedupe_off_removes_each_copy() {
    let mut h = Harness::fs(StoreOptions {
        dedupe: false,
        ..StoreOptions::default()
    })
    .await;
    let store = h.open().await;
    let (config, layer) = (bytes(120, 60), bytes(10_000, 61));
    let mut manifests = Vec::new();
    for name in ["x", "y"] {
        let (d, m) = put_image(&store, name, Some("v1"), &config, &[&layer], json!({})).await;
        manifests.push((name, d, m));
    }
    // Two copies of the layer on disk, none shared.
    assert_eq!(h.keys("blobs").await.len(), 0);
    assert!(exists(&h, &paths::local_data("x", &sha256(&layer))));
    assert!(exists(&h, &paths::local_data("y", &sha256(&layer))));
    // y keeps its image; x's goes.
    let (_, dx, mx) = &manifests[0];
    let (store, report) =
        delete_then_collect(&mut h, &store, &repo("x"), &by_digest(dx), false).await;
    let expected: BTreeSet<_> = [
        (
            sha256(&config).to_string(),
            "x".to_owned(),
            config.len() as u64,
        ),
        (
            sha256(&layer).to_string(),
            "x".to_owned(),
            layer.len() as u64,
        ),
        (dx.to_string(), "x".to_owned(), mx.len() as u64),
    ]
    .into_iter()
    .collect();
    assert_eq!(removed_blobs(&report), expected);
    assert!(readable(&store, "y", &layer).await);
    // Now y's too: its copies are freed separately.
    let (_, dy, my) = &manifests[1];
    let (_, report) = delete_then_collect(&mut h, &store, &repo("y"), &by_digest(dy), false).await;
    assert_eq!(report.blobs.len(), 3);
    assert!(report.blobs.iter().all(|b| b.repo == "y"));
    assert_eq!(
        report.bytes_freed,
        (config.len() + layer.len() + my.len()) as u64
    );
    assert!(h.keys("repositories").await.is_empty());
}

#[tokio::test]
async fn dry_run_changes_nothing_and_predicts_the_real_run() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let (d1, _) = push_image(&store, "p", "v1", 70).await;
    push_image(&store, "p", "v2", 72).await;
    push_image(&store, "q", "v1", 74).await;
    push_blob(&store, "q", &bytes(333, 76)).await;
    store
        .manifest_delete(&repo("p"), &by_digest(&d1))
        .await
        .unwrap();
    store.manifest_delete(&repo("q"), &tag("v1")).await.unwrap();
    let r = repo("q");
    let id = store.upload_start(&r, None).await.unwrap();
    store
        .upload_append(&r, &id, Chunk::new(body(&bytes(1000, 77))))
        .await
        .unwrap();
    // The session's last write may still be in flight: let it land before the files age.
    store.close_uploads().await;
    let store = aged(&mut h).await;
    let before = h.keys("").await;
    let real_opts = GcOptions {
        upload_ttl: HOUR,
        ..opts(true)
    };
    let dry = store
        .gc(&GcOptions {
            dry_run: true,
            ..real_opts.clone()
        })
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        h.keys("").await,
        before,
        "a dry run must not change storage"
    );
    assert_eq!(StoreStats::get(&store.stats().gc_runs), 0);
    assert!(!dry.blobs.is_empty(), "{dry:?}");
    assert!(!dry.manifests.is_empty(), "{dry:?}");
    assert_eq!(dry.uploads.len(), 1, "{dry:?}");
    let snapshot = store.snapshot();
    let real = store.gc(&real_opts).await.unwrap();
    assert_ne!(store.snapshot(), snapshot);
    assert_eq!(removed_blobs(&dry), removed_blobs(&real));
    assert_eq!(removed_links(&dry), removed_links(&real));
    assert_eq!(removed_manifests(&dry), removed_manifests(&real));
    assert_eq!(dry.uploads, real.uploads);
    assert_eq!(dry.bytes_freed, real.bytes_freed);
    store.manifest_get(&repo("p"), &tag("v2")).await.unwrap();
}

#[tokio::test]
async fn stale_upload_sessions_are_purged() {
    let h = Harness::fs(dedupe()).await;
    let store = Store::open(h.driver.clone(), h.opts.clone()).await.unwrap();
    let watch = std::sync::Arc::new(crate::blobs::OpenSessions::default());
    store.watch_uploads(watch.clone());
    let r = repo("up");
    let stale = store.upload_start(&r, Some("stale")).await.unwrap();
    store
        .upload_append(&r, &stale, Chunk::new(body(&bytes(1000, 80))))
        .await
        .unwrap();
    let fresh = store.upload_start(&r, Some("fresh")).await.unwrap();
    store
        .upload_append(&r, &fresh, Chunk::new(body(&bytes(500, 81))))
        .await
        .unwrap();
    store.close_uploads().await;
    age_files(&root(&h).join(paths::upload("up", &stale)), 2 * HOUR);
    let ttl = GcOptions {
        upload_ttl: HOUR,
        ..opts(false)
    };
    let report = store.gc(&ttl).await.unwrap();
    assert_eq!(report.uploads.len(), 1, "{report:?}");
    assert_eq!(report.uploads[0].id, stale);
    assert_eq!(watch.owners(), ["fresh"]);
    assert!(report.uploads[0].bytes >= 1000);
    assert_eq!(report.bytes_freed, report.uploads[0].bytes);
    let err = store.upload_offset(&r, &stale).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
    let err = store
        .upload_append(&r, &stale, Chunk::new(body(b"more")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
    assert_eq!(store.upload_offset(&r, &fresh).await.unwrap(), 500);
    assert!(!exists(&h, &paths::upload("up", &stale)));
    assert_eq!(StoreStats::get(&store.stats().gc_uploads_removed), 1);
}

/// One image pushed by [`push_until`]: repository, tag and the blobs it needs (none once it
/// was untagged).
type PushedImage = (String, String, Vec<Vec<u8>>);

/// Runs GC with `grace` in a loop until `until`; returns how many runs there were.
async fn gc_until(store: Store, grace: Duration, until: std::time::Instant) -> u32 {
    let mut runs = 0u32;
    while std::time::Instant::now() < until {
        let o = GcOptions {
            grace_period: grace,
            ..opts(true)
        };
        store.gc(&o).await.unwrap();
        runs += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runs
}

/// Pusher `p` pushes images reusing `shared_layers` until `until`, untagging every other one
/// right away.
async fn push_until(
    store: Store,
    p: u64,
    shared_layers: Vec<Vec<u8>>,
    until: std::time::Instant,
) -> Vec<PushedImage> {
    let mut pushed: Vec<PushedImage> = Vec::new();
    let mut i = 0u64;
    while std::time::Instant::now() < until {
        let config = bytes(100, 1000 + p * 100_000 + i);
        let unique = bytes(700, 2000 + p * 100_000 + i);
        let sl = &shared_layers[(i % 4) as usize];
        let name = format!("r{}", i % 2);
        let t = format!("p{p}-{i}");
        push_blob(&store, &name, &config).await;
        push_blob(&store, &name, sl).await;
        push_blob(&store, &name, &unique).await;
        let m = image_manifest(&config, &[sl, &unique], json!({}));
        store
            .manifest_put(&repo(&name), &tag(&t), None, Bytes::from(m))
            .await
            .unwrap();
        pushed.push((name, t, vec![config, sl.clone(), unique]));
        if i % 2 == 1 {
            store
                .manifest_delete(
                    &repo(&pushed[pushed.len() - 2].0),
                    &tag(&pushed[pushed.len() - 2].1),
                )
                .await
                .unwrap();
            let gone = pushed.len() - 2;
            pushed[gone].2.clear();
        }
        i += 1;
    }
    pushed
}

/// Pushers reuse shared blobs and put manifests while a deleter untags and GC runs in a loop
/// with a short grace period: no push may fail, and every tagged image stays whole. The grace
/// period is what protects a blob between its upload and the manifest that references it, so it
/// must exceed that gap even on a loaded machine (a few hundred milliseconds did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_never_lose_blobs() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let grace = Duration::from_millis(1500);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let shared_layers: Vec<Vec<u8>> = (0..4).map(|i| bytes(2000, 90 + i)).collect();
    let gc_task = tokio::spawn(gc_until(store.clone(), grace, until));
    let pushers: Vec<_> = (0..3u64)
        .map(|p| tokio::spawn(push_until(store.clone(), p, shared_layers.clone(), until)))
        .collect();
    let mut tagged = Vec::new();
    for p in pushers {
        tagged.extend(p.await.unwrap().into_iter().filter(|x| !x.2.is_empty()));
    }
    assert!(gc_task.await.unwrap() > 3);
    assert!(tagged.len() > 10);
    for (name, t, blobs) in &tagged {
        store.manifest_get(&repo(name), &tag(t)).await.unwrap();
        for b in blobs {
            assert!(readable(&store, name, b).await, "{name}:{t} lost a blob");
        }
    }
    // After the grace period, one more run leaves only what the tagged images use.
    tokio::time::sleep(grace * 2).await;
    let store = h.open().await;
    store
        .gc(&GcOptions {
            grace_period: grace,
            ..opts(true)
        })
        .await
        .unwrap();
    let mut wanted: BTreeSet<Digest> = BTreeSet::new();
    for (name, t, blobs) in &tagged {
        wanted.insert(
            store
                .manifest_get(&repo(name), &tag(t))
                .await
                .unwrap()
                .digest,
        );
        wanted.extend(blobs.iter().map(|b| sha256(b)));
    }
    let on_disk: BTreeSet<Digest> = h
        .keys("blobs")
        .await
        .iter()
        .map(|k| {
            format!("sha256:{}", k.rsplit('/').next().unwrap())
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(on_disk, wanted);
}
