//! `ocireg tags`, `catalog`, `inspect` and `rm`.

use anyhow::Context;
use ocireg_client::workflow::display_reference as display;
use ocireg_client::ClientError;
use ocireg_oci::{ErrorCode, Reference};
use serde_json::{json, Value};

use super::refs::{parse_ref, parse_repo};
use super::settings::Ctx;
use super::ui::Ui;
use super::{CatalogArgs, RefArgs, TagsArgs};
use crate::exit::{coded, Exit};

/// Runs `ocireg tags REPO [--n N [--last TAG]]`.
pub(crate) async fn tags(ctx: &Ctx, a: TagsArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_repo(&a.repo)?;
    let (ep, reg) = ctx.connect(&r)?;
    let (tags, more) = match a.n {
        Some(n) => reg.tags_page(r.repo(), Some(n), a.last.as_deref()).await?,
        None => (reg.tags(r.repo()).await?, false),
    };
    let json = json!({
        "registry": ep.host,
        "repository": r.repo().as_str(),
        "tags": tags,
        "more": more,
    });
    let mut text = tags.join("\n");
    if more {
        if let Some(last) = tags.last() {
            text.push_str(&format!("\n(more: --last {last})"));
        }
    }
    ui.result(&json, &tags.join("\n"), &text);
    Ok(0)
}

/// Runs `ocireg catalog [REGISTRY]`.
pub(crate) async fn catalog(ctx: &Ctx, a: CatalogArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let ep = ctx.configured();
    let reg = ctx.registry(&ep)?;
    let repos = reg.catalog().await?;
    let json = json!({ "registry": ep.host, "repositories": repos });
    ui.result(&json, &repos.join("\n"), &repos.join("\n"));
    Ok(0)
}

fn descriptor_line(d: &Value) -> String {
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let mut line = format!(
        "{} {} {}",
        s("digest"),
        d.get("size").and_then(Value::as_u64).unwrap_or(0),
        s("mediaType")
    );
    if let Some(t) = d.get("artifactType").and_then(Value::as_str) {
        line.push_str(&format!(" artifactType={t}"));
    }
    if let Some(t) = d
        .get("annotations")
        .and_then(|a| a.get("org.opencontainers.image.title"))
        .and_then(Value::as_str)
    {
        line.push_str(&format!(" title={t}"));
    }
    if let Some(why) = d
        .get("annotations")
        .and_then(|a| a.get(ocireg_client::artifact::annotations::COMPRESSION_SKIPPED))
        .and_then(Value::as_str)
    {
        line.push_str(&format!(" (stored uncompressed: {why})"));
    }
    line
}

/// Runs `ocireg inspect REF`.
pub(crate) async fn inspect(ctx: &Ctx, a: RefArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference)?;
    let (ep, reg) = ctx.connect(&r)?;
    let reference = r.reference();
    let m = reg.get_manifest(r.repo(), &reference, &[]).await?;
    let body: Value = serde_json::from_slice(&m.bytes).context("the manifest is not JSON")?;
    let artifact_type = body
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| {
            body.get("config")
                .and_then(|c| c.get("mediaType"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned);
    let (referrers, referrers_error) = match reg.referrers(r.repo(), &m.digest, None).await {
        Ok(list) => (list, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let referrers_json = serde_json::to_value(&referrers)?;
    let shown = format!("{}/{}", ep.host, r.repo());
    let json = json!({
        "reference": format!("{shown}@{}", m.digest),
        "registry": ep.host,
        "repository": r.repo().as_str(),
        "tag": r.tag().map(|t| t.as_str()),
        "digest": m.digest.to_string(),
        "mediaType": m.media_type,
        "size": m.bytes.len(),
        "artifactType": artifact_type,
        "annotations": body.get("annotations").cloned().unwrap_or(Value::Null),
        "manifest": body,
        "referrers": referrers_json,
        "referrersError": referrers_error,
    });
    let mut text = vec![
        format!("reference:    {}", display(&ep.host, r.repo(), &reference)),
        format!("digest:       {}", m.digest),
        format!("mediaType:    {}", m.media_type),
        format!("size:         {}", m.bytes.len()),
        format!("artifactType: {}", artifact_type.as_deref().unwrap_or("-")),
    ];
    if let Some(c) = body.get("config") {
        text.push(format!("config:       {}", descriptor_line(c)));
    }
    for (key, title) in [("layers", "layers:"), ("manifests", "manifests:")] {
        if let Some(list) = body.get(key).and_then(Value::as_array) {
            text.push(title.to_owned());
            text.extend(list.iter().map(|d| format!("  - {}", descriptor_line(d))));
        }
    }
    if let Some(annots) = body.get("annotations").and_then(Value::as_object) {
        text.push("annotations:".to_owned());
        text.extend(
            annots
                .iter()
                .map(|(k, v)| format!("  {k}: {}", v.as_str().unwrap_or(""))),
        );
    }
    match &referrers_error {
        Some(e) => text.push(format!("referrers:    unavailable ({e})")),
        None if referrers.is_empty() => text.push("referrers:    none".to_owned()),
        None => {
            text.push("referrers:".to_owned());
            text.extend(
                referrers_json
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| format!("  - {}", descriptor_line(d))),
            );
        }
    }
    ui.result(&json, &m.digest.to_string(), &text.join("\n"));
    Ok(0)
}

/// Registries that cannot delete by tag answer 400/405 or `UNSUPPORTED`.
fn tag_delete_unsupported(e: &ClientError) -> bool {
    matches!(e.status(), Some(400 | 405)) || e.error_code() == Some(ErrorCode::Unsupported)
}

/// Runs `ocireg rm REF`: by tag it removes the tag (the manifest stays, with its other tags);
/// by digest it deletes the manifest and every tag on it. A registry that cannot remove a tag
/// alone gets the manifest the tag points to deleted by digest, and the output says so.
pub(crate) async fn rm(ctx: &Ctx, a: RefArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference)?;
    let (ep, reg) = ctx.connect(&r)?;
    let reference = r.reference();
    let shown = display(&ep.host, r.repo(), &reference);
    let Some(info) = reg.head_manifest(r.repo(), &reference, &[]).await? else {
        return Err(coded(Exit::NotFound, anyhow::anyhow!("{shown} not found")));
    };
    let by_digest = Reference::Digest(info.digest.clone());
    let manifest = display(&ep.host, r.repo(), &by_digest);
    let removed_tag = match &reference {
        Reference::Digest(_) => {
            reg.delete_manifest(r.repo(), &by_digest).await?;
            false
        }
        Reference::Tag(_) => match reg.delete_manifest(r.repo(), &reference).await {
            Ok(()) => true,
            Err(e) if tag_delete_unsupported(&e) => {
                ui.status(&format!(
                    "the registry cannot remove a tag alone; deleting manifest {} (all its tags)",
                    info.digest
                ));
                reg.delete_manifest(r.repo(), &by_digest).await?;
                false
            }
            Err(e) => return Err(e.into()),
        },
    };
    let (removed, by, text) = if removed_tag {
        (
            "tag",
            "tag",
            format!("removed tag {shown} (the manifest {} stays)", info.digest),
        )
    } else {
        (
            "manifest",
            "digest",
            format!("deleted manifest {manifest} and every tag on it"),
        )
    };
    let json = json!({
        "reference": shown,
        "digest": info.digest.to_string(),
        "removed": removed,
        "deletedBy": by,
    });
    ui.result(&json, &info.digest.to_string(), &text);
    Ok(0)
}
