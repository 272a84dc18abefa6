//! The mixed run: N clients, each loop pushes a small random blob and a manifest referencing it,
//! then pulls a random existing manifest and its blob, verifying both.

use std::sync::{Arc, RwLock};

use anyhow::{anyhow, Result};
use serde_json::json;

use super::{Blob, Ctx};
use crate::clients::{self, Op, Until};
use crate::http::{manifest, Registry};
use crate::report::Measure;
use crate::stats::{latency, sha256_digest, Rng};

const REPOS: usize = 8;
const MIN_BLOB: usize = 1 << 10;
const MAX_BLOB: usize = 64 << 10;
/// Requests per loop iteration: POST + PUT blob, PUT manifest, GET manifest, GET blob.
const REQUESTS_PER_LOOP: f64 = 5.0;

/// A pushed manifest with its one layer.
#[derive(Clone, Debug)]
struct Entry {
    repo: String,
    tag: String,
    digest: String,
    blob: String,
    size: u64,
}

fn repo(i: usize) -> String {
    format!("mixed/r{}", i % REPOS)
}

async fn push_one(
    reg: &Registry,
    repo: &str,
    config: &Blob,
    tag: &str,
    seed: u64,
) -> Result<Entry> {
    let mut rng = Rng::new(seed);
    let blob = Blob::random(MIN_BLOB + rng.below(MAX_BLOB - MIN_BLOB), seed);
    reg.push_monolithic(repo, blob.data.clone(), &blob.digest)
        .await?;
    let body = manifest(config.desc(), &[blob.desc()], tag);
    let digest = sha256_digest(&body);
    reg.put_manifest(repo, tag, body, &digest).await?;
    Ok(Entry {
        repo: repo.to_string(),
        tag: tag.to_string(),
        digest,
        blob: blob.digest,
        size: blob.size,
    })
}

/// Runs the mixed workload for the planned duration.
pub async fn run(ctx: &Ctx) -> Vec<Measure> {
    let plan = ctx.plan.clone();
    let config = Arc::new(Blob::config(ctx.seed ^ 4));
    let entries: Arc<RwLock<Vec<Entry>>> = Arc::new(RwLock::new(Vec::new()));
    for r in 0..REPOS {
        let seeded = async {
            ctx.reg
                .push_monolithic(&repo(r), config.data.clone(), &config.digest)
                .await?;
            push_one(
                &ctx.reg,
                &repo(r),
                &config,
                "seed",
                ctx.seed ^ 0x5eed ^ r as u64,
            )
            .await
        };
        match seeded.await {
            Ok(e) => {
                if let Ok(mut v) = entries.write() {
                    v.push(e);
                }
            }
            Err(e) => ctx.errors.record("mixed setup", &e),
        }
    }
    let (reg, seed, cfg, ents) = (ctx.reg.clone(), ctx.seed, config.clone(), entries.clone());
    let op: Op<()> = Arc::new(move |c, i| {
        let (reg, cfg, ents) = (reg.clone(), cfg.clone(), ents.clone());
        Box::pin(async move {
            let s = seed ^ ((c as u64) << 40) ^ ((i as u64) << 8) ^ 0xA11;
            let e = push_one(&reg, &repo(c), &cfg, &format!("c{c}-{i}"), s).await?;
            let pick = {
                let mut v = ents.write().map_err(|_| anyhow!("lock poisoned"))?;
                v.push(e);
                v[Rng::new(s ^ 0xF00).below(v.len())].clone()
            };
            reg.get_manifest(&pick.repo, &pick.tag, &pick.digest)
                .await?;
            reg.pull_blob(&pick.repo, &pick.blob, pick.size).await
        })
    });
    let until = Until::Timed {
        duration: plan.mixed_duration,
        max_ops: 10_000_000,
    };
    let mut p = clients::run(plan.mixed_clients, until, ctx.errors.clone(), "mixed", op).await;
    let l = latency(&mut p.latencies);
    let label = format!(
        "mixed: {} clients push+pull, {:.0} s",
        plan.mixed_clients,
        plan.mixed_duration.as_secs_f64()
    );
    let any = !p.ok.is_empty();
    let ops = p.ops_per_sec();
    vec![
        Measure::new(label.clone(), "loops/s (5 requests each)", true, any.then_some(ops))
            .with(json!({"ok": p.ok.len(), "errors": p.errors, "secs": p.elapsed.as_secs_f64(), "requests_per_sec": ops * REQUESTS_PER_LOOP})),
        Measure::new(label.clone(), "p99 loop ms", false, any.then_some(l.p99_ms)),
        Measure::new(label, "errors", false, Some(p.errors as f64)),
    ]
}
