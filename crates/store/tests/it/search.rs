//! `Store::search`: filters, cursor semantics, read filtering, and metadata loaded lazily from
//! storage once after a reopen (then served from the index), over both drivers.

use bytes::Bytes;
use ocireg_store::{paths, SearchQuery};
use serde_json::json;

use crate::common::*;

/// Pushes an image manifest with `annotations` under `tags` (the first put by tag, the others
/// moving onto the same digest).
async fn push(
    store: &ocireg_store::Store,
    name: &str,
    tags: &[&str],
    seed: u64,
    annotations: serde_json::Value,
) -> ocireg_oci::Digest {
    let config = bytes(200, seed);
    let layer = bytes(3000, seed + 1);
    push_blob(store, name, &config).await;
    push_blob(store, name, &layer).await;
    let manifest = image_manifest(&config, &[&layer], json!({ "annotations": annotations }));
    let mut digest = None;
    for t in tags {
        let put = store
            .manifest_put(&repo(name), &tag(t), None, Bytes::from(manifest.clone()))
            .await
            .unwrap();
        digest = Some(put.digest);
    }
    digest.unwrap()
}

fn query(f: impl FnOnce(&mut SearchQuery)) -> SearchQuery {
    let mut q = SearchQuery {
        n: 100,
        ..SearchQuery::default()
    };
    f(&mut q);
    q
}

#[tokio::test]
async fn metadata_is_loaded_once_and_cursors_are_stable() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let x1 = push(&store, "a/x", &["v1", "stable"], 10, json!({"k": "1"})).await;
        let x2 = push(
            &store,
            "a/x",
            &["v2"],
            20,
            json!({"k": "2", "only": "here"}),
        )
        .await;
        let y = push(&store, "b/y", &["v1"], 30, json!({"k": "1"})).await;
        drop(store);

        // A restart: the index knows no metadata; search reads it from storage.
        let store = h.open().await;
        let all = |_: &str| true;
        let page = store
            .search(
                &query(|q| q.annotations = vec![("k".into(), Some("1".into()))]),
                &all,
            )
            .await
            .unwrap();
        let found: Vec<(&str, &ocireg_oci::Digest)> = page
            .hits
            .iter()
            .map(|h| (h.repository.as_str(), &h.digest))
            .collect();
        assert_eq!(found, [("a/x", &x1), ("b/y", &y)], "{}", h.name());
        assert_eq!(page.hits[0].tags, ["stable", "v1"]);
        assert_eq!(
            page.hits[0].media_type,
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            page.hits[0].artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(page.next.is_none());

        // The metadata now lives in the index: with the stored bytes gone, search still answers.
        for d in [&x1, &x2, &y] {
            h.driver.delete(&paths::shared_data(d)).await.unwrap();
        }
        let page = store
            .search(
                &query(|q| q.annotations = vec![("only".into(), None)]),
                &all,
            )
            .await
            .unwrap();
        assert_eq!(page.hits.len(), 1);
        assert_eq!(page.hits[0].digest, x2);
        assert_eq!(page.hits[0].annotations["only"], "here");

        // Cursors: strictly after `repo@digest`; a bare repository name starts at that repository.
        let first = store.search(&query(|q| q.n = 1), &all).await.unwrap();
        assert_eq!(first.hits.len(), 1);
        let cursor = first.next.clone().unwrap();
        assert_eq!(cursor, first.hits[0].cursor());
        let rest = store
            .search(&query(|q| q.last = Some(cursor)), &all)
            .await
            .unwrap();
        assert_eq!(rest.hits.len(), 2);
        assert!(rest
            .hits
            .iter()
            .all(|h| h.cursor() > first.hits[0].cursor()));
        let from_b = store
            .search(&query(|q| q.last = Some("b/y".into())), &all)
            .await
            .unwrap();
        assert_eq!(from_b.hits.len(), 1);
        assert_eq!(from_b.hits[0].repository, "b/y");
        let none = store
            .search(&query(|q| q.last = Some("zzz".into())), &all)
            .await
            .unwrap();
        assert!(none.hits.is_empty() && none.next.is_none());

        // Tags: exact and prefix; read filtering.
        let t = store
            .search(&query(|q| q.tag = Some("v*".into())), &all)
            .await
            .unwrap();
        assert_eq!(t.hits.len(), 3);
        let t = store
            .search(&query(|q| q.tag = Some("stable".into())), &all)
            .await
            .unwrap();
        assert_eq!(t.hits.len(), 1);
        let only_b = |r: &str| r.starts_with("b/");
        let t = store.search(&query(|_| {}), &only_b).await.unwrap();
        assert_eq!(t.hits.len(), 1);
        assert_eq!(t.hits[0].repository, "b/y");
    }
}

#[tokio::test]
async fn unreadable_or_deleted_manifests_are_skipped() {
    for mut h in Harness::both(dedupe()).await {
        let store = h.open().await;
        let gone = push(&store, "r/one", &["a"], 40, json!({})).await;
        let kept = push(&store, "r/two", &["b"], 50, json!({})).await;
        let deleted = push(&store, "r/three", &["c"], 60, json!({})).await;
        drop(store);
        let store = h.open().await;
        // Bytes missing behind the store's back: skipped, not an error.
        h.driver.delete(&paths::shared_data(&gone)).await.unwrap();
        store
            .manifest_delete(&repo("r/three"), &by_digest(&deleted))
            .await
            .unwrap();
        let page = store.search(&query(|_| {}), &|_: &str| true).await.unwrap();
        let digests: Vec<_> = page.hits.iter().map(|h| h.digest.clone()).collect();
        assert_eq!(digests, [kept], "{}", h.name());
        // n = 0: nothing, no cursor.
        let page = store
            .search(&query(|q| q.n = 0), &|_: &str| true)
            .await
            .unwrap();
        assert!(page.hits.is_empty() && page.next.is_none());
    }
}
