//! Manifest PUT by tag, GET by tag and GET by digest at several concurrency levels.

use std::sync::Arc;

use serde_json::json;

use super::{base_image, Ctx};
use crate::clients::{self, Op, Phase, Until};
use crate::http::manifest;
use crate::report::Measure;
use crate::stats::{latency, sha256_digest, Rng};

const REPO: &str = "bench/manifests";

fn measures<T>(label: String, p: &mut Phase<T>) -> Vec<Measure> {
    let l = latency(&mut p.latencies);
    let any = !p.ok.is_empty();
    let detail = json!({"ok": p.ok.len(), "errors": p.errors, "secs": p.elapsed.as_secs_f64(), "max_ms": l.max_ms});
    vec![
        Measure::new(label.clone(), "ops/s", true, any.then(|| p.ops_per_sec())).with(detail),
        Measure::new(label.clone(), "p50 ms", false, any.then_some(l.p50_ms)),
        Measure::new(label, "p99 ms", false, any.then_some(l.p99_ms)),
    ]
}

/// One timed phase of `op` by `level` clients; its measures go to `out` as `what` (e.g.
/// `manifest GET by tag`).
async fn timed_phase<T: Send + 'static>(
    ctx: &Ctx,
    level: usize,
    what: &'static str,
    op: Op<T>,
    out: &mut Vec<Measure>,
) -> Phase<T> {
    let until = Until::Timed {
        duration: ctx.plan.manifest_phase,
        max_ops: ctx.plan.manifest_max_ops,
    };
    let mut p = clients::run(level, until, ctx.errors.clone(), what, op).await;
    out.extend(measures(format!("{what}, {level} clients"), &mut p));
    p
}

/// For each level: a PUT phase of distinct manifests under distinct tags, then a GET phase of
/// random tags from that PUT phase and one of the same manifests by digest, each GET verified
/// against its digest. By tag, a registry on shared storage revalidates the tag; by digest the
/// manifest is immutable.
pub async fn run(ctx: &Ctx) -> Vec<Measure> {
    let plan = ctx.plan.clone();
    let (config, layer) = match base_image(ctx, REPO, 1).await {
        Ok(b) => b,
        Err(e) => {
            ctx.errors.record("manifest setup", &e);
            return Vec::new();
        }
    };
    let (cfg, lay) = (Arc::new(config), Arc::new(layer));
    let mut out = Vec::new();
    for &level in &plan.levels {
        let (reg, cfg, lay) = (ctx.reg.clone(), cfg.clone(), lay.clone());
        let put: Op<(String, String)> = Arc::new(move |c, i| {
            let (reg, cfg, lay) = (reg.clone(), cfg.clone(), lay.clone());
            Box::pin(async move {
                let tag = format!("l{level}-c{c}-{i}");
                let body = manifest(cfg.desc(), &[lay.desc()], &tag);
                let digest = sha256_digest(&body);
                reg.put_manifest(REPO, &tag, body, &digest).await?;
                Ok((tag, digest))
            })
        });
        let mut p = timed_phase(ctx, level, "manifest PUT by tag", put, &mut out).await;
        let pushed = Arc::new(std::mem::take(&mut p.ok));
        if pushed.is_empty() {
            ctx.errors.record(
                "manifest GET",
                &anyhow::anyhow!("no manifest was pushed at level {level}"),
            );
            continue;
        }
        for by_digest in [false, true] {
            let (reg, seed, pushed) = (ctx.reg.clone(), ctx.seed, pushed.clone());
            let get: Op<()> = Arc::new(move |c, i| {
                let (reg, pushed) = (reg.clone(), pushed.clone());
                Box::pin(async move {
                    let mut rng = Rng::new(seed ^ ((c as u64) << 32) ^ i as u64);
                    let (tag, digest) = &pushed[rng.below(pushed.len())];
                    let reference = if by_digest { digest } else { tag };
                    reg.get_manifest(REPO, reference, digest).await
                })
            });
            let what = if by_digest {
                "manifest GET by digest"
            } else {
                "manifest GET by tag"
            };
            timed_phase(ctx, level, what, get, &mut out).await;
        }
    }
    out
}
