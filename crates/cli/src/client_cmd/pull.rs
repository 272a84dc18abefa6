//! `ocireg pull REF [-o DIR]`: the reference, `pull_policy` and the cache become a
//! [`PullRequest`]; `ocireg_client::workflow::pull_artifact` resolves, fetches and unpacks;
//! this prints.

use std::path::PathBuf;

use ocireg_client::workflow::{
    display_reference, pull_artifact, PullReport, PullRequest, SetAside,
};
use serde_json::json;

use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::{self, Ui};
use super::PullArgs;

/// Runs `ocireg pull`.
pub(crate) async fn run(ctx: &Ctx, a: PullArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference)?;
    let ep = ctx.endpoint_of(&r);
    let reference = r.reference();
    let shown = display_reference(&ep.host, r.repo(), &reference);
    let dest = match a.output {
        Some(d) => d,
        None => PathBuf::from(r.repo().components().last().unwrap_or("artifact")),
    };
    let req = PullRequest {
        registry: ep.host.clone(),
        repo: r.repo().clone(),
        reference,
        policy: ctx.doc.pull_policy.policy,
        dest,
    };
    let cache = ctx.cache()?;
    let aside = if a.force {
        Some(SetAside::new(&req.dest)?)
    } else {
        None
    };
    let mut connect = || ctx.registry(&ep).map_err(Into::into);
    let PullReport {
        digest,
        manifest_cached,
        layer_cached,
        unpacked: report,
        artifact_type,
        kind,
        cache: stats,
    } = pull_artifact(&req, &cache, &mut connect, &ui).await?;
    if let Some(aside) = aside {
        aside.commit()?;
    }
    let dest = &req.dest;
    let json = json!({
        "reference": format!("{}/{}@{digest}", ep.host, r.repo()),
        "registry": ep.host,
        "repository": r.repo().as_str(),
        "tag": r.tag().map(|t| t.as_str()),
        "digest": digest.to_string(),
        "artifactType": artifact_type,
        "kind": kind.map(|k| k.as_string()),
        "output": dest.display().to_string(),
        "files": report.files,
        "directories": report.directories,
        "symlinks": report.symlinks,
        "bytes": report.bytes,
        "policy": req.policy.as_str(),
        "cached": { "manifest": manifest_cached, "layer": layer_cached },
        "cache": {
            "dir": cache.root().display().to_string(),
            "hits": stats.hits, "misses": stats.misses,
            "expired": stats.expired, "corrupt": stats.corrupt,
        },
    });
    let from = match (manifest_cached, layer_cached) {
        (true, true) => " (from cache)",
        (false, true) => " (layer from cache)",
        _ => "",
    };
    let text = format!(
        "pulled {shown}{from}\ndigest: {digest}\nunpacked into {}: {} files, {} directories, {}",
        dest.display(),
        report.files,
        report.directories,
        ui::human(report.bytes)
    );
    ui.result(&json, &digest.to_string(), &text);
    Ok(0)
}
