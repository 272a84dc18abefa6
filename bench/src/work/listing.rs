//! A large tag list and a large catalog: untimed setup, then timed full and paginated listings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use bytes::Bytes;
use serde_json::json;

use super::{base_image, Blob, Ctx};
use crate::clients::{self, Op, Until};
use crate::http::{manifest, Listing};
use crate::report::Measure;
use crate::stats::sha256_digest;

const TAG_REPO: &str = "bench/tags";
const CATALOG_BASE: &str = "bench/catalog-base";
const CATALOG_PREFIX: &str = "cat/";
/// Upper bound on any setup phase.
const SETUP_TIMEOUT: Duration = Duration::from_secs(900);

fn setup_measure(label: String, p_ok: usize, total: usize, secs: f64) -> Measure {
    let rate = (p_ok > 0 && secs > 0.0).then(|| p_ok as f64 / secs);
    Measure::new(label, "setup ops/s", true, rate)
        .with(json!({"ok": p_ok, "wanted": total, "secs": secs}))
}

/// The image a listing setup shares: a config and a layer in `repo`, and a manifest naming
/// them (`note` keeps its bytes apart from other workloads').
struct SetupImage {
    config: Blob,
    layer: Blob,
    body: Bytes,
    digest: Arc<String>,
}

/// Pushes the [`SetupImage`] (from `seed`) into `repo`; `None` once a failure is recorded as
/// the `note` setup's.
async fn setup_image(ctx: &Ctx, repo: &str, seed: u64, note: &str) -> Option<SetupImage> {
    let (config, layer) = match base_image(ctx, repo, seed).await {
        Ok(b) => b,
        Err(e) => {
            ctx.errors.record(&format!("{note} setup"), &e);
            return None;
        }
    };
    let body = manifest(config.desc(), &[layer.desc()], note);
    let digest = Arc::new(sha256_digest(&body));
    Some(SetupImage {
        config,
        layer,
        body,
        digest,
    })
}

/// The untimed setup: `op` once for each index `0..total` by the plan's setup clients. Returns
/// what it created, sorted, and the setup's measure.
async fn run_setup(
    ctx: &Ctx,
    what: &'static str,
    label: String,
    total: usize,
    op: Op<String>,
) -> (Vec<String>, Measure) {
    let until = Until::Each {
        total,
        timeout: SETUP_TIMEOUT,
    };
    let p = clients::run(
        ctx.plan.setup_concurrency,
        until,
        ctx.errors.clone(),
        what,
        op,
    )
    .await;
    let secs = p.elapsed.as_secs_f64();
    let mut created = p.ok;
    created.sort();
    let measure = setup_measure(label, created.len(), total, secs);
    (created, measure)
}

/// Checks that `items` has no duplicates and that its entries with `prefix` are exactly
/// `expected` (sorted); returns whether `items` came in lexical order (reported, not an error:
/// Distribution 2.8 returns tags in storage order).
fn verify(items: &[String], prefix: &str, expected: &[String]) -> Result<bool> {
    let sorted = items.windows(2).all(|w| w[0] <= w[1]);
    let mut got: Vec<&String> = items.iter().filter(|s| s.starts_with(prefix)).collect();
    got.sort_unstable();
    let all = got.len();
    got.dedup();
    ensure!(
        got.len() == all,
        "listing has {} duplicate entries",
        all - got.len()
    );
    ensure!(
        got.len() == expected.len() && got.iter().zip(expected).all(|(a, b)| *a == b),
        "listing has {} matching entries, expected {}",
        got.len(),
        expected.len()
    );
    Ok(sorted)
}

/// Times `list` up to `reps` times within `budget`; one measure (median, milliseconds).
async fn timed_listing<F, Fut>(
    ctx: &Ctx,
    label: String,
    what: &'static str,
    expected: &[String],
    prefix: &str,
    list: F,
) -> Measure
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Listing>>,
{
    let plan = &ctx.plan;
    let t_all = Instant::now();
    let (mut times, mut pages, mut ignored_n, mut lexical) = (Vec::new(), 0usize, false, true);
    for _ in 0..plan.listing_reps {
        if !times.is_empty() && t_all.elapsed() > plan.listing_budget {
            break;
        }
        let t0 = Instant::now();
        let res = list().await;
        let took = t0.elapsed();
        match res.and_then(|l| verify(&l.items, prefix, expected).map(|s| (l, s))) {
            Ok((l, in_order)) => {
                lexical &= in_order;
                times.push(took.as_secs_f64());
                pages = l.pages;
                ignored_n |= l.ignored_n;
            }
            Err(e) => ctx.errors.record(what, &e),
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).map(|s| s * 1e3);
    Measure::new(label, "ms", false, median).with(json!({
        "secs": times,
        "pages": pages,
        "server_ignored_n": ignored_n,
        "lexically_sorted": lexical,
        "entries": expected.len(),
    }))
}

/// Times `list` in full (`None`) and in pages of the plan's page size, one measure each.
async fn full_and_paged<F, Fut>(
    ctx: &Ctx,
    what: &'static str,
    expected: &[String],
    prefix: &str,
    label: impl Fn(Option<usize>) -> String,
    list: F,
) -> Vec<Measure>
where
    F: Fn(Option<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<Listing>>,
{
    let mut out = Vec::new();
    for n in [None, Some(ctx.plan.page_size)] {
        out.push(timed_listing(ctx, label(n), what, expected, prefix, || list(n)).await);
    }
    out
}

/// Creates `plan.tags` tags on one manifest, then times `tags/list` in full and with n=1000.
pub async fn tags(ctx: &Ctx) -> Vec<Measure> {
    let total = ctx.plan.tags;
    let Some(SetupImage { body, digest, .. }) = setup_image(ctx, TAG_REPO, 2, "tags").await else {
        return Vec::new();
    };
    let reg = ctx.reg.clone();
    let op: Op<String> = Arc::new(move |_c, i| {
        let (reg, body, digest) = (reg.clone(), body.clone(), digest.clone());
        Box::pin(async move {
            let tag = format!("t{i:05}");
            reg.put_manifest(TAG_REPO, &tag, body, &digest).await?;
            Ok(tag)
        })
    });
    let label = format!("tag listing setup: {total} tag PUTs, 16 clients");
    let (expected, setup) = run_setup(ctx, "tags setup", label, total, op).await;
    let path = format!("/v2/{TAG_REPO}/tags/list");
    let max_pages = total + 10;
    let label = |n: Option<usize>| match n {
        None => format!("tags/list of {total} tags, full"),
        Some(n) => format!("tags/list of {total} tags, n={n} pages"),
    };
    let mut out = vec![setup];
    out.extend(
        full_and_paged(ctx, "tags/list", &expected, "", label, |n| {
            ctx.reg.list_all(&path, "tags", n, max_pages)
        })
        .await,
    );
    out
}

/// Creates `plan.repos` repositories (mount config + layer, PUT one manifest each), then
/// times `_catalog` in full (server's default page size, following Link) and with n=1000.
pub async fn catalog(ctx: &Ctx) -> Vec<Measure> {
    let total = ctx.plan.repos;
    let Some(image) = setup_image(ctx, CATALOG_BASE, 3, "catalog").await else {
        return Vec::new();
    };
    let (body, digest) = (image.body, image.digest);
    let (config, layer) = (Arc::new(image.config), Arc::new(image.layer));
    let reg = ctx.reg.clone();
    let op: Op<String> = Arc::new(move |_c, i| {
        let (reg, body, digest, config, layer) = (
            reg.clone(),
            body.clone(),
            digest.clone(),
            config.clone(),
            layer.clone(),
        );
        Box::pin(async move {
            let repo = format!("{CATALOG_PREFIX}r{i:05}");
            reg.mount_or_push(&repo, CATALOG_BASE, &config.digest, &config.data)
                .await?;
            reg.mount_or_push(&repo, CATALOG_BASE, &layer.digest, &layer.data)
                .await?;
            reg.put_manifest(&repo, "v1", body, &digest).await?;
            Ok(repo)
        })
    });
    let label = format!("catalog setup: {total} repos (2 mounts + 1 manifest each)");
    let (expected, setup) = run_setup(ctx, "catalog setup", label, total, op).await;
    if expected.is_empty() {
        ctx.errors
            .record("catalog", &anyhow!("no repository was created"));
    }
    let max_pages = total + 1000;
    let label = |n: Option<usize>| match n {
        None => format!("_catalog of {total} repos, full (default page size)"),
        Some(n) => format!("_catalog of {total} repos, n={n} pages"),
    };
    let mut out = vec![setup];
    out.extend(
        full_and_paged(ctx, "_catalog", &expected, CATALOG_PREFIX, label, |n| {
            ctx.reg
                .list_all("/v2/_catalog", "repositories", n, max_pages)
        })
        .await,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn verification() {
        let exp = s(&["cat/a", "cat/b"]);
        assert!(verify(&s(&["a", "cat/a", "cat/b", "z"]), "cat/", &exp).unwrap());
        assert!(!verify(&s(&["cat/b", "cat/a", "a"]), "cat/", &exp).unwrap());
        assert!(verify(&s(&["cat/a", "cat/a", "cat/b"]), "cat/", &exp).is_err());
        assert!(verify(&s(&["cat/a"]), "cat/", &exp).is_err());
        assert!(verify(&s(&["cat/a", "cat/c"]), "cat/", &exp).is_err());
    }
}
