//! Blob push (monolithic and chunked) and blob pull with sha256 verification.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::json;

use super::{sync_disks, Blob, Ctx};
use crate::pagecache;
use crate::report::Measure;
use crate::stats::mb_per_s;

const REPO: &str = "bench/blobs";

/// Human size: `1 MiB`, `512 MiB`, `64 KiB`.
pub fn size_label(b: u64) -> String {
    if b >= 1 << 30 && b % (1 << 30) == 0 {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b % (1 << 10) == 0 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

fn reps(budget: u64, size: u64, min: u64, max: u64) -> u64 {
    (budget / size.max(1)).clamp(min, max)
}

fn throughput(
    workload: String,
    bytes: u64,
    times: &[Duration],
    ok: usize,
    attempted: u64,
) -> Measure {
    let total: Duration = times.iter().sum();
    let value = (ok > 0).then(|| mb_per_s(bytes, total));
    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    Measure::new(workload, "MB/s", true, value)
        .with(json!({"repetitions": attempted, "ok": ok, "secs": secs}))
}

/// Pushes every configured size, monolithic then chunked; one measure per (size, mode).
pub async fn push(ctx: &Ctx) -> Vec<Measure> {
    let plan = ctx.plan.clone();
    let min = if plan.quick { 1 } else { 2 };
    let mut out = Vec::new();
    for (si, &size) in plan.push_sizes.iter().enumerate() {
        for chunked in [false, true] {
            let n = reps(plan.push_budget, size, min, 50);
            let (mut times, mut ok) = (Vec::new(), 0usize);
            for rep in 0..n {
                let seed = ctx.seed ^ ((si as u64) << 40) ^ ((chunked as u64) << 32) ^ rep;
                let blob = Blob::random(size as usize, seed);
                sync_disks().await;
                let t0 = Instant::now();
                let res = if chunked {
                    ctx.reg
                        .push_chunked(
                            REPO,
                            blob.data.clone(),
                            &blob.digest,
                            plan.chunk_size as usize,
                        )
                        .await
                } else {
                    ctx.reg
                        .push_monolithic(REPO, blob.data.clone(), &blob.digest)
                        .await
                };
                let took = t0.elapsed();
                drop(blob.data);
                let res = match res {
                    Ok(()) => ctx.reg.head_blob(REPO, &blob.digest).await.and_then(|len| {
                        ensure!(
                            len == size,
                            "HEAD after push: Content-Length {len}, expected {size}"
                        );
                        Ok(())
                    }),
                    Err(e) => Err(e),
                };
                match res {
                    Ok(()) => {
                        times.push(took);
                        ok += 1;
                    }
                    Err(e) => ctx.errors.record("blob push", &e),
                }
            }
            let mode = if chunked {
                format!("chunked ({} PATCH)", size_label(plan.chunk_size))
            } else {
                "monolithic".to_string()
            };
            let label = format!("blob push {}, {mode}", size_label(size));
            out.push(throughput(label, size * ok as u64, &times, ok, n));
        }
    }
    out
}

/// The page cache state a timed pull starts from.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Right after the push (and a `sync`): whatever the server kept cached while writing.
    AfterPush,
    /// The blob's files dropped from the page cache.
    Cold,
    /// The blob's files read into the page cache.
    Warm,
}

impl Start {
    const ALL: [Start; 3] = [Start::AfterPush, Start::Cold, Start::Warm];

    fn label(self) -> &'static str {
        match self {
            Start::AfterPush => "right after push",
            Start::Cold => "cold (page cache dropped)",
            Start::Warm => "warm (in page cache)",
        }
    }

    /// Puts the blob's files in this state; right after the push they are left alone.
    fn prepare(self, files: &[std::path::PathBuf]) -> std::io::Result<()> {
        match self {
            Start::AfterPush => Ok(()),
            Start::Cold => pagecache::drop_from_cache(files),
            Start::Warm => pagecache::load_into_cache(files),
        }
    }
}

/// The timed pulls from one start state.
#[derive(Default)]
struct Pulls {
    times: Vec<Duration>,
    cpu_secs: f64,
    attempted: u64,
}

/// Per configured size, pushes new blobs (untimed) and pulls each one three times with sha256
/// verification: right after its push, cold and warm. Each start state gives two measures:
/// throughput, and the server's CPU seconds per GB sent (from its /proc times around each pull).
pub async fn pull(ctx: &Ctx) -> Vec<Measure> {
    let plan = ctx.plan.clone();
    let (budget, min) = if plan.quick {
        (64 << 20, 1)
    } else {
        (1 << 30, 2)
    };
    let mut out = Vec::new();
    for (si, &size) in plan.pull_sizes.iter().enumerate() {
        let mut pulls: [Pulls; 3] = Default::default();
        for rep in 0..reps(budget, size, min, 4) {
            let seed = ctx.seed ^ 0xB10B ^ ((si as u64) << 40) ^ (rep << 32);
            if let Err(e) = pull_one_blob(ctx, size, seed, &mut pulls).await {
                ctx.errors.record("blob pull", &e);
            }
        }
        for (start, p) in Start::ALL.into_iter().zip(pulls) {
            let label = format!(
                "blob pull {} + sha256 verify, {}",
                size_label(size),
                start.label()
            );
            let (ok, bytes) = (p.times.len(), size * p.times.len() as u64);
            #[allow(clippy::cast_precision_loss)]
            let per_gb = (ok > 0).then(|| p.cpu_secs / (bytes as f64 / 1e9));
            out.push(throughput(label.clone(), bytes, &p.times, ok, p.attempted));
            out.push(Measure::new(label, "server CPU s/GB", false, per_gb));
        }
    }
    out
}

/// Pushes one blob, then pulls it from each start state in turn.
async fn pull_one_blob(ctx: &Ctx, size: u64, seed: u64, pulls: &mut [Pulls; 3]) -> Result<()> {
    let blob = Blob::random(size as usize, seed);
    ctx.reg
        .push_monolithic(REPO, blob.data, &blob.digest)
        .await
        .context("push before the pulls")?;
    sync_disks().await;
    let hex = blob.digest.trim_start_matches("sha256:");
    let files = pagecache::blob_files(&ctx.server.root, hex, size)?;
    ensure!(
        !files.is_empty(),
        "the pushed blob's file is not under the storage root"
    );
    for (start, acc) in Start::ALL.into_iter().zip(pulls.iter_mut()) {
        acc.attempted += 1;
        start
            .prepare(&files)
            .with_context(|| format!("page cache {start:?}"))?;
        let cpu0 = ctx.server.cpu_secs()?;
        let t0 = Instant::now();
        ctx.reg.pull_blob(REPO, &blob.digest, size).await?;
        acc.times.push(t0.elapsed());
        acc.cpu_secs += ctx.server.cpu_secs()? - cpu0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_reps() {
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(512 << 20), "512 MiB");
        assert_eq!(size_label(2 << 30), "2 GiB");
        assert_eq!(size_label(1000), "1000 B");
        assert_eq!(reps(256 << 20, 1 << 20, 2, 50), 50);
        assert_eq!(reps(256 << 20, 512 << 20, 2, 50), 2);
        assert_eq!(reps(256 << 20, 64 << 20, 2, 50), 4);
    }
}
