//! `ocireg copy SRC DST`: the two references become a [`CopyRequest`];
//! `ocireg_client::workflow::copy_artifact` copies manifests and blobs; this prints.

use ocireg_client::workflow::{copy_artifact, display_reference, CopyRequest};
use ocireg_oci::Reference;
use serde_json::json;

use super::refs::parse_ref;
use super::settings::{Ctx, Endpoint};
use super::ui::{self, Ui};
use super::CopyArgs;
use crate::exit::{self, coded, Exit};
use ocireg_client::{ClientError, Registry};

/// An auth refusal during a copy names the side that refused: the source is asked again for
/// the manifest (pull); if it answers, the destination refused (push).
async fn which_side_refused(
    src: &Registry,
    req: &CopyRequest,
    src_ep: &Endpoint,
    dst_ep: &Endpoint,
    err: ClientError,
) -> anyhow::Error {
    let err = anyhow::Error::from(err);
    if exit::code_of(&err) != Exit::AuthRefused {
        return err;
    }
    let source_refuses = match src.head_manifest(&req.src_repo, &req.src_ref, &[]).await {
        Ok(_) => false,
        Err(e) => exit::code_of(&anyhow::Error::from(e)) == Exit::AuthRefused,
    };
    if source_refuses {
        err.context(format!(
            "the source registry {} refused access to {}",
            src_ep.host, req.src_shown
        ))
    } else {
        err.context(format!(
            "the destination registry {} refused the push to {}",
            dst_ep.host, req.dst_shown
        ))
    }
}

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
    if ctx.credentials.is_some() && !same_registry {
        return Err(coded(
            Exit::Usage,
            anyhow::anyhow!(
                "-u gives one registry's credentials, and {} and {} are two: log in to each (ocireg login) instead",
                src_ep.host,
                dst_ep.host
            ),
        ));
    }
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
    let c = match copy_artifact(&s, &d, &req, &ui).await {
        Ok(c) => c,
        Err(e) => return Err(which_side_refused(&s, &req, &src_ep, &dst_ep, e).await),
    };
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
