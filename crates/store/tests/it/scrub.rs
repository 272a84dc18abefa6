//! Scrub: corrupt objects are found with their repositories, quarantined, never served again
//! (also after a restart); intact objects keep being served; the read rate is bounded.

use std::time::Instant;

use bytes::Bytes;
use ocireg_oci::Digest;
use ocireg_store::{paths, ScrubOptions, ScrubReport, Store, StoreError, StoreOptions};

use crate::common::*;

fn flip(data: &Bytes) -> Bytes {
    let mut v = data.to_vec();
    let at = v.len() / 2;
    v[at] ^= 0x55;
    Bytes::from(v)
}

/// Flips one byte of the object at `key` in place.
async fn corrupt(h: &Harness, key: &str) {
    let data = h.driver.get_content(key).await.unwrap();
    h.driver.put_content(key, flip(&data)).await.unwrap();
}

fn unlimited() -> ScrubOptions {
    ScrubOptions {
        rate_bytes_per_sec: 0,
    }
}

/// What [`corrupt_blobs_and_manifests_are_reported_quarantined_and_never_served`] pushes.
struct Pushed {
    shared_layer: Vec<u8>,
    /// A layer in team/a and team/b, one shared copy (corrupted).
    shared: Digest,
    /// The manifest of the image tagged v1 in team/a (corrupted).
    m_a: Digest,
    /// The manifest of the image tagged v1 in other/c (left intact).
    m_b: Digest,
    /// A blob only in other/c (corrupted).
    lonely: Digest,
    /// A blob only in other/c (left intact).
    intact: Digest,
}

async fn push_all(store: &Store) -> Pushed {
    let shared_layer = bytes(20_000, 7);
    let shared = push_blob(store, "team/a", &shared_layer).await;
    push_blob(store, "team/b", &shared_layer).await;
    let (m_a, _) = push_image(store, "team/a", "v1", 100).await;
    let (m_b, _) = push_image(store, "other/c", "v1", 200).await;
    let lonely = push_blob(store, "other/c", &bytes(3000, 9)).await;
    let intact = push_blob(store, "other/c", &bytes(4000, 10)).await;
    Pushed {
        shared_layer,
        shared,
        m_a,
        m_b,
        lonely,
        intact,
    }
}

/// The report names the three corrupt objects with their repositories, and each was moved to
/// quarantine.
async fn check_report(h: &Harness, report: &ScrubReport, p: &Pushed) {
    assert!(report.objects_checked >= 9, "{report:?}");
    assert_eq!(report.findings.len(), 3, "{}: {report:?}", h.name());
    let find = |d: &Digest| {
        report
            .findings
            .iter()
            .find(|f| f.expected == *d)
            .unwrap_or_else(|| panic!("{d} not reported"))
    };
    assert_eq!(find(&p.shared).repositories, ["team/a", "team/b"]);
    assert_eq!(find(&p.lonely).repositories, ["other/c"]);
    assert_eq!(find(&p.m_a).repositories, ["team/a"]);
    for d in [&p.shared, &p.lonely, &p.m_a] {
        let f = find(d);
        assert!(f.actual.as_ref().is_some_and(|a| a != d));
        let to = f.quarantined_to.as_deref().unwrap();
        assert!(to.starts_with("quarantine/"), "{to}");
        h.driver.stat(to).await.unwrap();
        assert!(h.driver.stat(&paths::shared_data(d)).await.is_err());
    }
}

/// The quarantined objects are unknown; everything else is still served.
async fn check_served(store: &Store, p: &Pushed, label: &str) {
    for (name, d) in [
        ("team/a", &p.shared),
        ("team/b", &p.shared),
        ("other/c", &p.lonely),
    ] {
        assert!(
            matches!(
                store.blob_stat(&repo(name), d).await,
                Err(StoreError::BlobUnknown { .. })
            ),
            "{label} {name} {d}"
        );
        assert!(matches!(
            store.blob_read(&repo(name), d, None).await,
            Err(StoreError::BlobUnknown { .. })
        ));
    }
    for reference in [tag("v1"), by_digest(&p.m_a)] {
        assert!(matches!(
            store.manifest_get(&repo("team/a"), &reference).await,
            Err(StoreError::ManifestUnknown { .. })
        ));
    }
    store
        .manifest_get(&repo("other/c"), &tag("v1"))
        .await
        .unwrap();
    assert_eq!(
        read_blob(store, "other/c", &p.intact).await,
        bytes(4000, 10)
    );
    assert_eq!(
        store
            .manifest_get(&repo("other/c"), &by_digest(&p.m_b))
            .await
            .unwrap()
            .digest,
        p.m_b
    );
}

#[tokio::test]
async fn corrupt_blobs_and_manifests_are_reported_quarantined_and_never_served() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let p = push_all(&store).await;
        // Served once so the manifest is cached: scrub must evict it.
        store
            .manifest_get(&repo("team/a"), &tag("v1"))
            .await
            .unwrap();

        for d in [&p.shared, &p.lonely, &p.m_a] {
            corrupt(&h, &paths::shared_data(d)).await;
        }
        let report = store.scrub(&unlimited()).await.unwrap();
        check_report(&h, &report, &p).await;
        let stats = store.stats();
        assert_eq!(ocireg_store::StoreStats::get(&stats.scrub_mismatches), 3);
        assert_eq!(ocireg_store::StoreStats::get(&stats.scrub_runs), 1);

        check_served(&store, &p, &format!("{} reopen=false", h.name())).await;
        let reopened = h.open().await;
        check_served(&reopened, &p, &format!("{} reopen=true", h.name())).await;

        // A second run finds nothing new; pushing the content again restores it.
        let store = h.open().await;
        let again = store.scrub(&unlimited()).await.unwrap();
        assert!(again.findings.is_empty(), "{again:?}");
        push_blob(&store, "team/b", &p.shared_layer).await;
        assert_eq!(read_blob(&store, "team/a", &p.shared).await, p.shared_layer);
    }
}

#[tokio::test]
async fn per_repository_copies_are_scrubbed_separately() {
    let opts = StoreOptions {
        dedupe: false,
        ..Default::default()
    };
    for mut h in Harness::both(opts).await {
        let store = h.open().await;
        let data = bytes(5000, 3);
        let d = push_blob(&store, "x/one", &data).await;
        push_blob(&store, "x/two", &data).await;
        corrupt(&h, &paths::local_data("x/one", &d)).await;
        let report = store.scrub(&unlimited()).await.unwrap();
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.findings[0].repositories, ["x/one"]);
        assert!(matches!(
            store.blob_stat(&repo("x/one"), &d).await,
            Err(StoreError::BlobUnknown { .. })
        ));
        assert_eq!(read_blob(&store, "x/two", &d).await, data);
        // Quarantined bytes no longer count as stored.
        assert_eq!(store.usage().total_bytes, 5000);
    }
}

#[tokio::test]
async fn read_rate_is_bounded() {
    let mut h = Harness::memory(dedupe()).await;
    let store = h.open().await;
    let mut total = 0u64;
    for seed in 0..4 {
        let data = bytes(256 * 1024, seed);
        total += data.len() as u64;
        push_blob(&store, "r/x", &data).await;
    }
    let rate = 2 << 20; // 1 MiB takes half a second
    let t = Instant::now();
    let report = store
        .scrub(&ScrubOptions {
            rate_bytes_per_sec: rate,
        })
        .await
        .unwrap();
    let elapsed = t.elapsed().as_secs_f64();
    assert_eq!(report.bytes_checked, total);
    let expected = total as f64 / rate as f64;
    assert!(elapsed >= expected * 0.9, "{elapsed} < {expected}");
    assert!(elapsed < expected + 5.0, "{elapsed}");
    // Unbounded is much faster.
    let t = Instant::now();
    store.scrub(&unlimited()).await.unwrap();
    assert!(t.elapsed().as_secs_f64() < expected * 0.5);
}
