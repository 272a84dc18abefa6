//! `ocireg copy` when one end is an OCI image layout directory, `oci:DIR[:TAG]` (the form
//! skopeo takes): the library's `copy_to_layout` / `copy_from_layout` copy; this prints.

use ocireg_client::layout::{parse_layout_ref, OciLayout};
use ocireg_client::workflow::{
    copy_from_layout, copy_to_layout, display_reference, LayoutCopyReport, RegistrySide,
};
use ocireg_oci::{Reference, Tag};
use serde_json::json;

use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::{self, Ui};
use super::CopyArgs;
use crate::exit::{coded, Exit};

fn usage(msg: String) -> anyhow::Error {
    coded(Exit::Usage, anyhow::anyhow!(msg))
}

/// Copies when SRC or DST is `oci:DIR[:TAG]`; `None` when neither is (a registry copy).
pub(crate) async fn run(ctx: &Ctx, a: &CopyArgs) -> anyhow::Result<Option<i32>> {
    let (src_layout, dst_layout) = (parse_layout_ref(&a.src), parse_layout_ref(&a.dst));
    let ui = Ui::new(a.out);
    let (report, src_shown, dst_shown) = match (src_layout, dst_layout) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(usage(
                "copying between two OCI layouts is not supported; one end must be a registry"
                    .into(),
            ))
        }
        (None, Some((dir, tag))) => {
            let src = parse_ref(&a.src).map_err(|e| coded(Exit::Usage, e))?;
            let (ep, reg) = ctx.connect(&src)?;
            let reference = src.reference();
            let side = RegistrySide {
                repo: src.repo().clone(),
                shown: display_reference(&ep.host, src.repo(), &reference),
                reference,
            };
            // The layout's name for the manifest: DST's tag, else SRC's.
            let tag = tag.or_else(|| src.tag().map(|t| t.as_str().to_owned()));
            let layout = OciLayout::create(&dir)?;
            let report = copy_to_layout(&reg, &side, &layout, tag.as_deref(), &ui).await?;
            let dst = match &tag {
                Some(t) => format!("oci:{}:{t}", dir.display()),
                None => format!("oci:{}", dir.display()),
            };
            (report, side.shown, dst)
        }
        (Some((dir, tag)), None) => {
            let dst = parse_ref(&a.dst).map_err(|e| coded(Exit::Usage, e))?;
            if dst.parsed.digest().is_some() {
                return Err(usage(format!(
                    "{:?}: copy from a layout to a tag (or to the repository, keeping the layout's tag)",
                    a.dst
                )));
            }
            let (ep, reg) = ctx.connect(&dst)?;
            let dst_tag: Tag = match (dst.tag(), &tag) {
                (Some(t), _) => t.clone(),
                (None, Some(t)) => t
                    .parse()
                    .map_err(|e| usage(format!("layout tag {t:?} is not a registry tag: {e}")))?,
                (None, None) => Tag::latest(),
            };
            let reference = Reference::Tag(dst_tag);
            let side = RegistrySide {
                repo: dst.repo().clone(),
                shown: display_reference(&ep.host, dst.repo(), &reference),
                reference,
            };
            let layout = OciLayout::open(&dir)?;
            let allow = a.force || ctx.doc.push_policy.allow_overwrite;
            let report = copy_from_layout(&layout, tag.as_deref(), &reg, &side, allow, &ui).await?;
            (report, a.src.clone(), side.shown)
        }
    };
    print(&ui, &report, &src_shown, &dst_shown);
    Ok(Some(Exit::Ok.code()))
}

fn print(ui: &Ui, c: &LayoutCopyReport, src: &str, dst: &str) {
    let digest = c
        .digest
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let json = json!({
        "source": src,
        "destination": dst,
        "digest": digest,
        "mediaType": c.media_type,
        "manifests": c.manifests,
        "blobs": { "copied": c.copied, "existed": c.existed },
        "bytesCopied": c.bytes,
    });
    let text = format!(
        "copied {src} -> {dst}\ndigest: {digest}\nblobs: {} copied ({}), {} already present",
        c.copied,
        ui::human(c.bytes),
        c.existed
    );
    ui.result(&json, &digest, &text);
}
