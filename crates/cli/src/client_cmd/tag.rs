//! `ocireg tag REF NEWTAG...` (point more tags at a manifest without copying it) and
//! `ocireg digest REF` (resolve a reference to its manifest digest).

use anyhow::Context;
use clap::Args;
use ocireg_client::workflow::{display_reference, tag_manifest, TagRequest};
use ocireg_oci::Tag;
use serde_json::json;

use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::Ui;
use super::{ConnArgs, OutputArgs};
use crate::exit::{coded, Exit};

/// `ocireg tag REF NEWTAG...`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:
  ocireg tag team/app:1.2.0 stable latest
  ocireg tag 127.0.0.1:5000/team/app@sha256:<hex> 1.2
  ocireg tag team/app:1.2.1 stable --force     # move a tag that holds other content")]
pub struct TagArgs {
    /// The manifest to tag: `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The tags to add in the same repository.
    #[arg(value_name = "NEWTAG", required = true)]
    pub tags: Vec<String>,
    /// Move a tag even when it holds other content (overrides push_policy.allow_overwrite =
    /// false).
    #[arg(long)]
    pub force: bool,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg digest REF`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:
  ocireg digest team/app:1.2.0
  ocireg pull team/app@$(ocireg digest team/app:stable)")]
pub struct DigestArgs {
    /// `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Runs `ocireg tag`.
pub(crate) async fn tag(ctx: &Ctx, a: TagArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference).map_err(|e| coded(Exit::Usage, e))?;
    let mut tags = Vec::with_capacity(a.tags.len());
    for t in &a.tags {
        let tag: Tag = t
            .parse()
            .map_err(|e| coded(Exit::Usage, anyhow::anyhow!("tag {t:?}: {e}")))?;
        tags.push(tag);
    }
    let (ep, reg) = ctx.connect(&r)?;
    let req = TagRequest {
        repo: r.repo().clone(),
        source: r.reference(),
        tags,
        allow_overwrite: a.force || ctx.doc.push_policy.allow_overwrite,
        shown: format!("{}/{}", ep.host, r.repo()),
    };
    let report = tag_manifest(&reg, &req, &ui).await?;
    let digest = report.digest.to_string();
    let entries: Vec<_> = report
        .tags
        .iter()
        .map(|o| {
            json!({
                "tag": o.tag.as_str(),
                "unchanged": o.unchanged,
                "movedFrom": o.moved_from.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    let json = json!({
        "source": display_reference(&ep.host, r.repo(), &req.source),
        "repository": r.repo().as_str(),
        "registry": ep.host,
        "digest": digest,
        "mediaType": report.media_type,
        "tags": entries,
    });
    let lines: Vec<String> = report
        .tags
        .iter()
        .map(|o| {
            let shown = format!("{}:{}", req.shown, o.tag);
            match (&o.moved_from, o.unchanged) {
                (_, true) => format!("{shown} already points to {digest} (unchanged)"),
                (Some(old), _) => format!("tagged {shown} -> {digest} (moved from {old})"),
                (None, _) => format!("tagged {shown} -> {digest}"),
            }
        })
        .collect();
    ui.result(&json, &digest, &lines.join("\n"));
    Ok(Exit::Ok.code())
}

/// Runs `ocireg digest`: a `HEAD` of the manifest (a `GET` when the registry omits the digest
/// header), verified like every manifest fetch.
pub(crate) async fn digest(ctx: &Ctx, a: DigestArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference).map_err(|e| coded(Exit::Usage, e))?;
    let (ep, reg) = ctx.connect(&r)?;
    let reference = r.reference();
    let shown = display_reference(&ep.host, r.repo(), &reference);
    let info = reg
        .head_manifest(r.repo(), &reference, &[])
        .await
        .with_context(|| format!("resolving {shown}"))?
        .ok_or_else(|| coded(Exit::NotFound, anyhow::anyhow!("{shown} not found")))?;
    let digest = info.digest.to_string();
    let json = json!({
        "reference": shown,
        "digest": digest,
        "mediaType": info.media_type,
        "size": info.size,
    });
    ui.result(&json, &digest, &digest);
    Ok(Exit::Ok.code())
}
