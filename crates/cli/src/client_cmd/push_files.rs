//! `ocireg push --artifact-type TYPE REF FILE...`: plain files as a generic artifact, one layer
//! per file titled with its name, like `oras push` (the KIND PATH form packs a tree instead).

use std::path::PathBuf;

use ocireg_client::artifact::check_push_signing;
use ocireg_client::workflow::{push_files, FilesRequest};
use ocireg_oci::{media_types, Reference, Tag};
use serde_json::json;

use super::push::parse_annotations;
use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::{self, Ui};
use super::PushArgs;
use crate::exit::{coded, Exit};

/// Runs the generic form of `ocireg push` (`a.artifact_type` is set): the first positional is
/// the reference, the others are the files.
pub(crate) async fn run(ctx: &Ctx, a: PushArgs, artifact_type: String) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    check_push_signing(ctx.doc.push_policy.require_signing)?;
    let r = parse_ref(&a.kind).map_err(|e| coded(Exit::Usage, e))?;
    if r.parsed.digest().is_some() {
        return Err(coded(
            Exit::Usage,
            anyhow::anyhow!("{:?}: push to a tag, not a digest", a.kind),
        ));
    }
    let mut files: Vec<PathBuf> = vec![a.path.clone()];
    files.extend(a.name.iter().map(PathBuf::from));
    files.extend(a.files.iter().cloned());
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        return Err(coded(
            Exit::Unreadable,
            anyhow::anyhow!("{} does not exist", missing.display()),
        ));
    }
    let annotations = parse_annotations(&a.annotations).map_err(|e| coded(Exit::Usage, e))?;
    let (ep, reg) = ctx.connect(&r)?;
    let tag = r.tag().cloned().unwrap_or_else(Tag::latest);
    let shown = format!("{}/{}:{tag}", ep.host, r.repo());
    let req = FilesRequest {
        repo: r.repo().clone(),
        reference: Some(Reference::Tag(tag.clone())),
        artifact_type: artifact_type.clone(),
        files,
        annotations,
        subject: None,
        allow_overwrite: a.force || ctx.doc.push_policy.allow_overwrite,
        shown: shown.clone(),
    };
    let report = push_files(&reg, &req, &ui).await?;
    let digest = report.digest.to_string();
    let json = json!({
        "reference": format!("{shown}@{digest}"),
        "registry": ep.host,
        "repository": r.repo().as_str(),
        "tag": tag.as_str(),
        "digest": digest,
        "mediaType": media_types::OCI_MANIFEST,
        "artifactType": artifact_type,
        "layers": report.layers,
        "unchanged": report.unchanged,
        "blobsUploaded": report.blobs_uploaded,
    });
    let total: u64 = report.layers.iter().map(|l| l.size).sum();
    let text = if report.unchanged {
        format!("{shown} already holds this content (unchanged)\ndigest: {digest}")
    } else {
        format!(
            "pushed {shown}\ndigest: {digest}\nfiles: {} ({})",
            report.layers.len(),
            ui::human(total)
        )
    };
    ui.result(&json, &digest, &text);
    Ok(Exit::Ok.code())
}
