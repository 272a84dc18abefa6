//! Throughput smoke checks on the filesystem driver (ignored by default; run with
//! `cargo test -p ocireg-store --release -- --ignored perf --nocapture`).

use std::time::Instant;

use bytes::Bytes;
use futures_util::stream;
use ocireg_store::{ByteStream, Chunk};
use serde_json::json;

use crate::common::*;

fn frames(data: &Bytes, frame: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(frame)
        .map(|at| Ok(data.slice(at..data.len().min(at + frame))))
        .collect();
    Box::pin(stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn perf_blob_push() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let (mut mono, mut chunked) = (0f64, 0f64);
    for round in 0..3u64 {
        let data = Bytes::from(bytes(512 << 20, round));
        let d = sha256(&data);
        let t = Instant::now();
        store
            .blob_put(&repo("perf"), &d, frames(&data, 64 << 10), None)
            .await
            .unwrap();
        mono = mono.max(512.0 * 1.048576 / t.elapsed().as_secs_f64());

        let data = Bytes::from(bytes(512 << 20, round + 100));
        let d = sha256(&data);
        let r = repo("perf2");
        let t = Instant::now();
        let id = store.upload_start(&r, None).await.unwrap();
        let chunk = 8 << 20;
        for at in (0..data.len()).step_by(chunk) {
            let part = data.slice(at..at + chunk);
            store
                .upload_append(&r, &id, Chunk::new(frames(&part, 64 << 10)).at(at as u64))
                .await
                .unwrap();
        }
        store.upload_complete(&r, &id, &d, None).await.unwrap();
        chunked = chunked.max(512.0 * 1.048576 / t.elapsed().as_secs_f64());
    }
    println!("monolithic 512 MiB: best {mono:.0} MB/s; chunked (8 MiB): best {chunked:.0} MB/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn perf_manifests() {
    let mut h = Harness::fs(dedupe()).await;
    let store = h.open().await;
    let config = bytes(500, 1);
    push_blob(&store, "perf", &config).await;
    let t = Instant::now();
    for i in 0..200 {
        let m = image_manifest(
            &config,
            &[],
            json!({ "annotations": { "one": i.to_string() } }),
        );
        store
            .manifest_put(
                &repo("perf"),
                &tag(&format!("one{i}")),
                None,
                Bytes::from(m),
            )
            .await
            .unwrap();
    }
    println!(
        "manifest PUT x1: {:.0} ops/s",
        200.0 / t.elapsed().as_secs_f64()
    );
    let ops = 4000usize;
    let clients = 64usize;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..ops).step_by(clients) {
                let m = image_manifest(
                    &config,
                    &[],
                    json!({ "annotations": { "n": i.to_string() } }),
                );
                store
                    .manifest_put(&repo("perf"), &tag(&format!("t{i}")), None, Bytes::from(m))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!("manifest PUT x64: {:.0} ops/s", ops as f64 / s);

    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..ops * 5).step_by(clients) {
                store
                    .manifest_get(&repo("perf"), &tag(&format!("t{}", i % ops)))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!("manifest GET x64: {:.0} ops/s", (ops * 5) as f64 / s);

    let t = Instant::now();
    let tags = store.tags(&repo("perf"), None, None).await.unwrap();
    println!("tags list of {}: {:?}", tags.len(), t.elapsed());
    drop(store);
    let t = Instant::now();
    let store = h.open().await;
    println!("reopen with {} tags: {:?}", ops, t.elapsed());
    let t = Instant::now();
    assert_eq!(
        store.tags(&repo("perf"), None, None).await.unwrap().len(),
        ops + 200
    );
    println!("tags after reopen: {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn perf_breakdown() {
    let h = Harness::fs(dedupe()).await;
    let data = Bytes::from(bytes(512 << 20, 3));
    let t = Instant::now();
    let mut hasher = ocireg_oci::DigestHasher::new(ocireg_oci::Algorithm::Sha256);
    hasher.update(&data);
    println!("hash only: {:?}", t.elapsed());
    let t = Instant::now();
    let mut w = h.driver.writer("x/data", false).await.unwrap();
    for at in (0..data.len()).step_by(1 << 20) {
        w.write(vec![data.slice(at..at + (1 << 20))]).await.unwrap();
    }
    let t1 = t.elapsed();
    w.commit().await.unwrap();
    println!("write only: {:?}, with commit {:?}", t1, t.elapsed());
}
