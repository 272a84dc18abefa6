//! `ocireg copy SRC DST`: the two references become a [`CopyRequest`];
//! `ocireg_client::workflow::copy_artifact` copies manifests and blobs; this prints.

use ocireg_client::workflow::{copy_artifact, display_reference, CopyRequest};
use ocireg_oci::Reference;
use serde_json::json;

use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::{self, Ui};
use super::CopyArgs;

/// Runs `ocireg copy SRC DST`.
pub(crate) async fn run(ctx: &Ctx, a: CopyArgs) -> anyhow::Result<i32> {
    if let Some(code) = super::copy_layout::run(ctx, &a).await? {
        return Ok(code);
    }
    let ui = Ui::new(a.out);
    let src = parse_ref(&a.src)?;
    let dst = parse_ref(&a.dst)?;
    let src_ep = ctx.endpoint_of(&src);
    let dst_ep = ctx.endpoint_of(&dst);
    let src_ref = src.reference();
    let dst_ref = match (dst.tag(), dst.parsed.digest(), src.tag()) {
        (Some(t), _, _) => Reference::Tag(t.clone()),
        (None, Some(d), _) => Reference::Digest(d.clone()),
        (None, None, Some(t)) => Reference::Tag(t.clone()),
        (None, None, None) => src_ref.clone(),
    };
    let same_registry = src_ep == dst_ep;
    let s = ctx.registry(&src_ep)?;
    let d = if same_registry {
        s.clone()
    } else {
        ctx.registry(&dst_ep)?
    };
    let req = CopyRequest {
        src_repo: src.repo().clone(),
        dst_repo: dst.repo().clone(),
        same_registry,
        src_shown: display_reference(&src_ep.host, src.repo(), &src_ref),
        dst_shown: display_reference(&dst_ep.host, dst.repo(), &dst_ref),
        src_ref,
        dst_ref,
        allow_overwrite: a.force || ctx.doc.push_policy.allow_overwrite,
    };
    let c = copy_artifact(&s, &d, &req, &ui).await?;
    let (shown_src, shown_dst, digest) = (&req.src_shown, &req.dst_shown, &c.digest);
    let json = json!({
        "source": shown_src,
        "destination": shown_dst,
        "digest": digest.to_string(),
        "mediaType": c.media_type,
        "manifests": c.manifests,
        "blobs": { "mounted": c.mounted, "streamed": c.streamed, "existed": c.existed },
        "bytesStreamed": c.bytes_streamed,
    });
    let text = format!(
        "copied {shown_src} -> {shown_dst}\ndigest: {digest}\nblobs: {} streamed ({}), {} mounted, {} already present",
        c.streamed,
        ui::human(c.bytes_streamed),
        c.mounted,
        c.existed
    );
    ui.result(&json, &digest.to_string(), &text);
    Ok(0)
}
