//! Garbage collection across replicas: stores over clones of one shared in-memory driver stand
//! for `ocireg serve` processes on one bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use ocireg_oci::{Algorithm, Digest, Reference, RepoName};
use ocireg_store::{
    paths, ByteStream, Driver, GcOptions, GcReport, MemoryDriver, Store, StoreError, StoreOptions,
};
use serde_json::json;

async fn replicas(n: usize) -> (MemoryDriver, Vec<Store>) {
    let driver = MemoryDriver::shared_by_replicas();
    let mut stores = Vec::new();
    for _ in 0..n {
        let replica: Arc<dyn Driver> = Arc::new(driver.clone());
        // Trust a look at the lease that found no run for 2 ms, well below every test's wait:
        // the requests here take the short path between runs.
        let opts = StoreOptions {
            no_gc_seen_ttl: Duration::from_millis(2),
            ..StoreOptions::default()
        };
        stores.push(Store::open(replica, opts).await.unwrap());
    }
    (driver, stores)
}

fn opts(grace: Duration, wait: Duration) -> GcOptions {
    GcOptions {
        grace_period: grace,
        tombstone_wait: wait,
        delete_untagged: true,
        ..GcOptions::default()
    }
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

fn body(data: &[u8]) -> ByteStream {
    Box::pin(stream::iter(vec![Ok(Bytes::copy_from_slice(data))]))
}

async fn push_blob(store: &Store, name: &str, data: &[u8]) -> Result<Digest, StoreError> {
    let d = sha256(data);
    store.blob_put(&repo(name), &d, body(data), None).await?;
    Ok(d)
}

async fn exists(driver: &MemoryDriver, key: &str) -> bool {
    match driver.stat(key).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("stat {key}: {e}"),
    }
}

fn removed(report: &GcReport, d: &Digest) -> bool {
    report.blobs.iter().any(|b| b.digest == d.to_string())
}

fn blob_of(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn two_runs_started_at_once_one_runs_one_skips() {
    let (_driver, s) = replicas(2).await;
    push_blob(&s[1], "team/app", b"unreferenced").await.unwrap();
    let o = opts(Duration::ZERO, Duration::from_millis(300));
    let (a, b) = tokio::join!(s[0].gc(&o), s[1].gc(&o));
    let (a, b) = (a.unwrap(), b.unwrap());
    let skipped: Vec<&GcReport> = [&a, &b]
        .into_iter()
        .filter(|r| r.skipped_lease_held_by.is_some())
        .collect();
    assert_eq!(skipped.len(), 1, "{a:?}\n{b:?}");
    let ran = if a.skipped_lease_held_by.is_none() {
        &a
    } else {
        &b
    };
    assert!(removed(ran, &sha256(b"unreferenced")), "{ran:?}");
    assert!(skipped[0].blobs.is_empty() && skipped[0].tombstoned == 0);
    // The lease was released: the next run is not skipped.
    let again = s[1].gc(&o).await.unwrap();
    assert_eq!(again.skipped_lease_held_by, None);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_respected() {
    let (driver, s) = replicas(1).await;
    let o = opts(Duration::ZERO, Duration::from_millis(10));
    let far = 4_000_000_000_000u64;
    let live = json!({"holder": "live replica", "expires_unix_ms": far});
    driver
        .put_content(&paths::gc_lease(), Bytes::from(live.to_string()))
        .await
        .unwrap();
    let report = s[0].gc(&o).await.unwrap();
    assert_eq!(
        report.skipped_lease_held_by.as_deref(),
        Some("live replica")
    );

    let dead = json!({"holder": "dead replica", "expires_unix_ms": 1});
    driver
        .put_content(&paths::gc_lease(), Bytes::from(dead.to_string()))
        .await
        .unwrap();
    // The dead runner left a claimed tombstone behind.
    let left = sha256(b"left behind");
    let stone = json!({"run": "dead replica", "state": "deleting"});
    driver
        .put_content(&paths::gc_tombstone(&left), Bytes::from(stone.to_string()))
        .await
        .unwrap();
    let report = s[0].gc(&o).await.unwrap();
    assert_eq!(report.skipped_lease_held_by, None);
    assert!(!exists(&driver, &paths::gc_tombstone(&left)).await);
    let lease: serde_json::Value =
        serde_json::from_slice(&driver.get_content(&paths::gc_lease()).await.unwrap()).unwrap();
    assert_ne!(lease["holder"], "dead replica");
    assert_eq!(lease["expires_unix_ms"], 0, "released: {lease}");
}

#[tokio::test]
async fn a_blob_pushed_through_another_replica_goes_after_the_grace_period() {
    let (driver, s) = replicas(2).await;
    let (a, b) = (&s[0], &s[1]);
    let d = push_blob(b, "team/app", b"pushed via b").await.unwrap();
    let o = opts(Duration::from_millis(400), Duration::from_millis(20));
    let young = a.gc(&o).await.unwrap();
    assert!(young.blobs.is_empty(), "{young:?}");
    assert!(young.kept_young >= 1, "{young:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = a.gc(&o).await.unwrap();
    assert!(removed(&report, &d), "{report:?}");
    assert_eq!(report.tombstoned, 1);
    assert!(!exists(&driver, &paths::shared_data(&d)).await);
    assert!(!exists(&driver, &paths::layer_link("team/app", &d)).await);
    assert!(!exists(&driver, &paths::gc_tombstone(&d)).await);
    // B's own index still had the link: its next use finds it gone.
    let err = b.blob_stat(&repo("team/app"), &d).await.unwrap_err();
    assert!(matches!(err, StoreError::BlobUnknown { .. }), "{err:?}");
}

#[tokio::test]
async fn a_dry_run_reports_without_a_lease_or_tombstones() {
    let (driver, s) = replicas(2).await;
    let d = push_blob(&s[1], "team/app", b"would go").await.unwrap();
    let dry = GcOptions {
        dry_run: true,
        ..opts(Duration::ZERO, Duration::from_secs(3600))
    };
    let report = s[0].gc(&dry).await.unwrap();
    assert!(report.dry_run && removed(&report, &d), "{report:?}");
    assert_eq!(report.links.len(), 1);
    assert!(exists(&driver, &paths::shared_data(&d)).await);
    assert!(!exists(&driver, &paths::gc_lease()).await);
    assert!(driver.walk(paths::GC).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reuse_during_the_wait_cancels_and_a_removal_under_way_is_waited_out() {
    let (driver, s) = replicas(2).await;
    let (a, b) = (s[0].clone(), &s[1]);
    let d = push_blob(b, "team/app", b"reused").await.unwrap();
    let o = opts(Duration::ZERO, Duration::from_millis(400));
    let run = tokio::spawn(async move { a.gc(&o).await.unwrap() });
    let stone = paths::gc_tombstone(&d);
    let started = Instant::now();
    while !exists(&driver, &stone).await {
        assert!(started.elapsed() < Duration::from_secs(5), "no tombstone");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A client checks the blob (HEAD) through B while the run waits.
    assert_eq!(b.blob_stat(&repo("team/app"), &d).await.unwrap(), 6);
    let report = run.await.unwrap();
    assert_eq!((report.tombstoned, report.reused), (1, 1), "{report:?}");
    assert!(report.blobs.is_empty() && report.links.is_empty());
    assert!(exists(&driver, &paths::shared_data(&d)).await);
    assert!(!exists(&driver, &stone).await);

    // A digest whose removal is under way (the lease held, its tombstone claimed) is waited
    // out, never half used: the request goes on once the run removed the digest's objects and
    // its tombstone, and finds it gone.
    let far = std::time::SystemTime::now() + Duration::from_secs(60);
    let far = far
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let lease = json!({"holder": "x", "expires_unix_ms": far});
    driver
        .put_content(&paths::gc_lease(), Bytes::from(lease.to_string()))
        .await
        .unwrap();
    let claimed = json!({"run": "x", "state": "deleting"});
    driver
        .put_content(&stone, Bytes::from(claimed.to_string()))
        .await
        .unwrap();
    let b2 = b.clone();
    let d2 = d.clone();
    let stat = tokio::spawn(async move { b2.blob_stat(&repo("team/app"), &d2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stat.is_finished(),
        "answered while the removal was under way"
    );
    for key in [
        paths::layer_link("team/app", &d),
        paths::shared_data(&d),
        stone,
    ] {
        driver.delete(&key).await.unwrap();
    }
    let err = stat.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::BlobUnknown { .. }), "{err:?}");
}

#[tokio::test]
async fn a_commit_a_mount_and_a_manifest_put_through_another_replica_each_cancel() {
    let (driver, s) = replicas(2).await;
    let (a, b) = (s[0].clone(), &s[1]);
    let app = repo("team/app");
    let x = push_blob(b, "team/app", b"committed again").await.unwrap();
    let y = push_blob(b, "team/app", b"mounted").await.unwrap();
    let z = push_blob(b, "team/app", b"{}").await.unwrap();
    let o = opts(Duration::ZERO, Duration::from_millis(400));
    let run = tokio::spawn(async move { a.gc(&o).await.unwrap() });
    let started = Instant::now();
    for d in [&x, &y, &z] {
        while !exists(&driver, &paths::gc_tombstone(d)).await {
            assert!(started.elapsed() < Duration::from_secs(5), "no tombstone");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    push_blob(b, "team/app", b"committed again").await.unwrap();
    assert!(b
        .blob_mount(&repo("team/other"), &y, Some(&app))
        .await
        .unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": z.to_string(), "size": 2},
        "layers": [],
    });
    let tag = Reference::Tag("v1".parse().unwrap());
    b.manifest_put(&app, &tag, None, Bytes::from(manifest.to_string()))
        .await
        .unwrap();
    let report = run.await.unwrap();
    assert_eq!((report.tombstoned, report.reused), (3, 3), "{report:?}");
    assert!(
        report.blobs.is_empty() && report.links.is_empty(),
        "{report:?}"
    );
    for d in [&x, &y, &z] {
        assert!(exists(&driver, &paths::shared_data(d)).await);
        assert!(exists(&driver, &paths::layer_link("team/app", d)).await);
    }
    assert!(exists(&driver, &paths::layer_link("team/other", &y)).await);
}

/// What one pusher acknowledged and still expects: tag → (manifest digest, blobs).
type Expected = BTreeMap<String, (Digest, Vec<Vec<u8>>)>;

/// Pushes images into `name` until `stop`, reusing a small pool of blobs, moving tags,
/// unlinking blobs and deleting manifests; returns what should still be there.
async fn pusher(store: Store, name: &'static str, seed: u8, stop: Arc<AtomicBool>) -> Expected {
    let pool: Vec<Vec<u8>> = (0..6).map(|i| blob_of(seed + i, 2000)).collect();
    let r = repo(name);
    let mut expected = Expected::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let picked = [&pool[i % 6], &pool[(i + 1) % 6], &pool[(i + 3) % 6]];
        let mut ready = true;
        for data in picked {
            let reused = store.blob_stat(&r, &sha256(data)).await.is_ok();
            if !reused && push_blob(&store, name, data).await.is_err() {
                ready = false;
            }
        }
        if !ready {
            tokio::task::yield_now().await;
            continue;
        }
        let layers: Vec<_> = picked[1..].iter().map(|l| descriptor(l)).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(picked[0]).to_string(), "size": picked[0].len()},
            "layers": layers,
            "annotations": {"variant": (i % 4).to_string()},
        });
        let tag = format!("t{}", i % 3);
        let reference = Reference::Tag(tag.parse().unwrap());
        let put = store
            .manifest_put(&r, &reference, None, Bytes::from(manifest.to_string()))
            .await;
        match put {
            Ok(put) => {
                let blobs = picked.iter().map(|b| b.to_vec()).collect();
                expected.insert(tag, (put.digest, blobs));
            }
            Err(e) => assert!(
                matches!(e, StoreError::ManifestBlobUnknown { .. }) || e.retry_after().is_some(),
                "{e:?}"
            ),
        }
        if i % 5 == 0 {
            // Unlink a blob no expected manifest references.
            let used = |d: &Digest| {
                expected
                    .values()
                    .any(|(_, blobs)| blobs.iter().any(|b| sha256(b) == *d))
            };
            if let Some(d) = pool.iter().map(|b| sha256(b)).find(|d| !used(d)) {
                let _ = store.blob_delete(&r, &d).await;
            }
        }
        if i % 7 == 0 {
            if let Some((_, (d, _))) = expected.pop_first() {
                let _ = store
                    .manifest_delete(&r, &Reference::Digest(d.clone()))
                    .await;
                expected.retain(|_, (other, _)| *other != d);
            }
        }
        tokio::task::yield_now().await;
    }
    expected
}

fn descriptor(data: &[u8]) -> serde_json::Value {
    json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
           "digest": sha256(data).to_string(), "size": data.len()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn acknowledged_pushes_survive_gc_racing_on_another_replica() {
    let (driver, s) = replicas(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    // The wait must outlast a request's storage work, or the proof in `gc_shared` does not
    // hold: 2 ms lost a link now and then in a debug build on a busy machine.
    let o = opts(Duration::ZERO, Duration::from_millis(20));
    let gc = {
        let (a, o, stop) = (s[0].clone(), o.clone(), stop.clone());
        tokio::spawn(async move {
            let mut totals = (0usize, 0usize, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let r = a.gc(&o).await.unwrap();
                totals.0 += r.blobs.len() + r.links.len() + r.manifests.len();
                totals.1 += 1;
                totals.2 += r.reused;
                totals.3.extend(r.errors);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            totals
        })
    };
    let b = tokio::spawn(pusher(s[1].clone(), "b/app", 0, stop.clone()));
    let c = tokio::spawn(pusher(s[2].clone(), "c/app", 100, stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut removals, runs, reused, errors) = gc.await.unwrap();
    let pushed = [
        ("b/app", &s[1], b.await.unwrap()),
        ("c/app", &s[2], c.await.unwrap()),
    ];
    // Two more runs after the last push: whatever they could take, they took.
    for _ in 0..2 {
        let r = s[0].gc(&o).await.unwrap();
        assert!(r.errors.is_empty(), "{r:?}");
        removals += r.blobs.len() + r.links.len() + r.manifests.len();
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert!(runs > 10 && removals > 0, "{runs} runs removed {removals}");
    eprintln!("{runs} runs, {removals} removals, {reused} reused");
    for (name, store, expected) in pushed {
        assert!(!expected.is_empty(), "{name} acknowledged nothing");
        for (tag, (digest, blobs)) in expected {
            let got = store
                .manifest_get(&repo(name), &Reference::Tag(tag.parse().unwrap()))
                .await
                .unwrap();
            assert_eq!(got.digest, digest, "{name}:{tag}");
            assert!(exists(&driver, &paths::revision_link(name, &digest)).await);
            assert!(exists(&driver, &paths::shared_data(&digest)).await);
            for data in blobs {
                let d = sha256(&data);
                assert!(
                    exists(&driver, &paths::layer_link(name, &d)).await,
                    "{name}:{tag} {d}"
                );
                let read = store.blob_read(&repo(name), &d, None).await.unwrap();
                let bytes = collect(read.body).await;
                assert_eq!(bytes, data, "{name}:{tag} {d}");
            }
        }
    }
}

async fn collect(mut s: ByteStream) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}
