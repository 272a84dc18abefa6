//! Blob push (monolithic and chunked) and blob pull with sha256 verification.

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;

use super::{sync_disks, Blob, Ctx};
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

/// Pushes one blob per configured size (untimed), then pulls it repeatedly, verifying sha256.
pub async fn pull(ctx: &Ctx) -> Vec<Measure> {
    let plan = ctx.plan.clone();
    let (budget, min) = if plan.quick {
        (64 << 20, 1)
    } else {
        (1 << 30, 2)
    };
    let mut out = Vec::new();
    for (si, &size) in plan.pull_sizes.iter().enumerate() {
        let label = format!("blob pull {} + sha256 verify", size_label(size));
        let blob = Blob::random(size as usize, ctx.seed ^ 0xB10B ^ ((si as u64) << 40));
        let (digest, n) = (blob.digest.clone(), reps(budget, size, min, 10));
        if let Err(e) = ctx.reg.push_monolithic(REPO, blob.data, &blob.digest).await {
            ctx.errors.record("blob pull setup", &e);
            out.push(throughput(label, 0, &[], 0, n));
            continue;
        }
        sync_disks().await;
        let (mut times, mut ok) = (Vec::new(), 0usize);
        for _ in 0..n {
            let t0 = Instant::now();
            match ctx.reg.pull_blob(REPO, &digest, size).await {
                Ok(()) => {
                    times.push(t0.elapsed());
                    ok += 1;
                }
                Err(e) => ctx.errors.record("blob pull", &e),
            }
        }
        out.push(throughput(label, size * ok as u64, &times, ok, n));
    }
    out
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
