//! `store_micro`: throughput of the store library on the filesystem driver, with no HTTP in
//! between — blob pushes (monolithic and in 8 MiB chunks), manifest puts and gets (one client
//! and 64 concurrent ones), tag listing and reopening, and a write-path breakdown (hashing alone,
//! driver writes alone). Run it optimised:
//! `cargo run --release -p ocireg-bench --bin store_micro -- [--workload NAME] [--size-mib N]`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::stream;
use ocireg_oci::{Algorithm, Digest, Reference, RepoName};
use ocireg_store::{ByteStream, Chunk, Driver, FsDriver, Store, StoreOptions};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Blob pushes: whole, and in 8 MiB chunks.
    BlobPush,
    /// Manifest puts and gets, tag listing, reopening.
    Manifests,
    /// Hashing alone, then driver writes alone.
    Breakdown,
    /// All of the above.
    All,
}

#[derive(Parser, Debug)]
#[command(about = "Store micro-benchmarks on the filesystem driver")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value = "all")]
    workload: Workload,
    /// Blob size for the blob workloads, in MiB (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    size_mib: usize,
    /// Blob push rounds (the best is reported).
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Manifests the concurrent workload puts.
    #[arg(long, default_value_t = 4000)]
    manifests: usize,
    /// Where the store lives (a temp directory below it, removed at the end).
    #[arg(long, default_value = "/tmp")]
    workdir: std::path::PathBuf,
}

/// A store on a temporary directory, reopenable.
struct Bench {
    dir: tempfile::TempDir,
    opts: StoreOptions,
}

impl Bench {
    async fn open(&self) -> Result<Store> {
        let driver = FsDriver::open(self.dir.path()).await?;
        Ok(Store::open(Arc::new(driver), self.opts.clone()).await?)
    }
}

fn repo(name: &str) -> Result<RepoName> {
    name.parse().context("repository name")
}

fn tag(name: &str) -> Result<Reference> {
    Ok(Reference::Tag(name.parse().context("tag")?))
}

/// Deterministic pseudo-random bytes (the fixture the store's tests use).
fn bytes(len: usize, seed: u64) -> Bytes {
    ocireg_test_support::xorshift::bytes(len, seed).into()
}

/// The data as a stream of `frame`-byte pieces, as a request body arrives.
fn frames(data: &Bytes, frame: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(frame)
        .map(|at| Ok(data.slice(at..data.len().min(at + frame))))
        .collect();
    Box::pin(stream::iter(chunks))
}

/// MB/s for `mib` MiB moved in `secs`.
fn mbps(mib: usize, secs: f64) -> f64 {
    mib as f64 * 1.048576 / secs
}

async fn blob_push(b: &Bench, a: &Args) -> Result<()> {
    let store = b.open().await?;
    let len = a.size_mib << 20;
    let chunk = 8 << 20;
    let (mut mono, mut chunked) = (0f64, 0f64);
    for round in 0..a.rounds {
        let data = bytes(len, round);
        let d = Digest::compute(Algorithm::Sha256, &data);
        let t = Instant::now();
        store
            .blob_put(&repo("perf")?, &d, frames(&data, 64 << 10), None)
            .await?;
        mono = mono.max(mbps(a.size_mib, t.elapsed().as_secs_f64()));

        let data = bytes(len, round + 100);
        let d = Digest::compute(Algorithm::Sha256, &data);
        let r = repo("perf2")?;
        let t = Instant::now();
        let id = store.upload_start(&r, None).await?;
        for at in (0..data.len()).step_by(chunk) {
            let part = data.slice(at..data.len().min(at + chunk));
            store
                .upload_append(&r, &id, Chunk::new(frames(&part, 64 << 10)).at(at as u64))
                .await?;
        }
        store.upload_complete(&r, &id, &d, None).await?;
        chunked = chunked.max(mbps(a.size_mib, t.elapsed().as_secs_f64()));
    }
    println!(
        "blob push {} MiB: monolithic best {mono:.0} MB/s; chunked (8 MiB) best {chunked:.0} MB/s",
        a.size_mib
    );
    Ok(())
}

/// An image manifest over `config` with one annotation.
fn manifest(config: &[u8], key: &str, value: usize) -> Bytes {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::compute(Algorithm::Sha256, config).to_string(),
            "size": config.len(),
        },
        "layers": [],
        "annotations": { key: value.to_string() },
    });
    Bytes::from(m.to_string())
}

/// Runs `per_client(store, client)` on `clients` tasks at once; returns the seconds taken.
async fn concurrently<F, Fut>(store: &Store, clients: usize, per_client: F) -> Result<f64>
where
    F: Fn(Store, usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(per_client(store.clone(), c)))
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn manifests(b: &Bench, a: &Args) -> Result<()> {
    let store = b.open().await?;
    let config = bytes(500, 1);
    let cd = Digest::compute(Algorithm::Sha256, &config);
    store
        .blob_put(&repo("perf")?, &cd, frames(&config, 1 << 16), None)
        .await?;
    let t = Instant::now();
    for i in 0..200 {
        let m = manifest(&config, "one", i);
        store
            .manifest_put(&repo("perf")?, &tag(&format!("one{i}"))?, None, m)
            .await?;
    }
    println!(
        "manifest PUT x1: {:.0} ops/s",
        200.0 / t.elapsed().as_secs_f64()
    );
    let (ops, clients) = (a.manifests, 64usize);
    let secs = concurrently(&store, clients, |store, c| {
        let config = config.clone();
        async move {
            for i in (c..ops).step_by(clients) {
                let m = manifest(&config, "n", i);
                store
                    .manifest_put(&repo("perf")?, &tag(&format!("t{i}"))?, None, m)
                    .await?;
            }
            Ok(())
        }
    })
    .await?;
    println!("manifest PUT x64: {:.0} ops/s", ops as f64 / secs);
    let secs = concurrently(&store, clients, |store, c| async move {
        for i in (c..ops * 5).step_by(clients) {
            store
                .manifest_get(&repo("perf")?, &tag(&format!("t{}", i % ops))?)
                .await?;
        }
        Ok(())
    })
    .await?;
    println!("manifest GET x64: {:.0} ops/s", (ops * 5) as f64 / secs);
    let t = Instant::now();
    let tags = store.tags(&repo("perf")?, None, None).await?;
    println!("tags list of {}: {:?}", tags.len(), t.elapsed());
    drop(store);
    let t = Instant::now();
    let store = b.open().await?;
    println!("reopen with {ops} tags: {:?}", t.elapsed());
    let t = Instant::now();
    let n = store.tags(&repo("perf")?, None, None).await?.len();
    anyhow::ensure!(
        n == ops + 200,
        "{n} tags after reopen, expected {}",
        ops + 200
    );
    println!("tags after reopen: {:?}", t.elapsed());
    Ok(())
}

async fn breakdown(b: &Bench, a: &Args) -> Result<()> {
    let data = bytes(a.size_mib << 20, 3);
    let t = Instant::now();
    let mut hasher = ocireg_oci::DigestHasher::new(Algorithm::Sha256);
    hasher.update(&data);
    println!("hash only: {:?}", t.elapsed());
    let driver = FsDriver::open(b.dir.path()).await?;
    let t = Instant::now();
    let mut w = driver.writer("x/data", false).await?;
    for at in (0..data.len()).step_by(1 << 20) {
        w.write(vec![data.slice(at..data.len().min(at + (1 << 20)))])
            .await?;
    }
    let t1 = t.elapsed();
    w.commit().await?;
    println!("write only: {t1:?}, with commit {:?}", t.elapsed());
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = Args::parse();
    let run = |w: Workload| a.workload == w || a.workload == Workload::All;
    let fresh = || -> Result<Bench> {
        Ok(Bench {
            dir: tempfile::tempdir_in(&a.workdir).context("temp directory")?,
            opts: StoreOptions {
                dedupe: true,
                ..StoreOptions::default()
            },
        })
    };
    if run(Workload::BlobPush) {
        blob_push(&fresh()?, &a).await?;
    }
    if run(Workload::Manifests) {
        manifests(&fresh()?, &a).await?;
    }
    if run(Workload::Breakdown) {
        breakdown(&fresh()?, &a).await?;
    }
    Ok(())
}
