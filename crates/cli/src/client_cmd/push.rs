//! `ocireg push KIND PATH [NAME[:TAG]]`: the arguments and `push_policy` become a
//! [`PushRequest`]; `ocireg_client::workflow::push_artifact` packs and pushes; this prints.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use ocireg_client::artifact::{check_push_signing, namespace_for, ArtifactKind, PackOptions};
use ocireg_client::workflow::{artifact_name, push_artifact, render_tag, PushReport, PushRequest};
use ocireg_oci::{media_types, split_tag, RepoName, Tag};
use serde_json::json;
use time::OffsetDateTime;

use super::settings::Ctx;
use super::ui::{self, Ui};
use super::PushArgs;

pub(super) fn parse_annotations(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for a in list {
        let Some((k, v)) = a.split_once('=') else {
            bail!("--annotation {a:?}: expected KEY=VALUE");
        };
        if k.trim().is_empty() {
            bail!("--annotation {a:?}: empty key");
        }
        map.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(map)
}

/// The destination and packing options from the arguments and `push_policy` (everything but
/// the registry, which `shown` names once it is known).
fn request(ctx: &Ctx, a: &PushArgs, kind: &ArtifactKind) -> anyhow::Result<PushRequest> {
    let policy = &ctx.doc.push_policy;
    let ns = &ctx.doc.registry.namespaces;
    let namespace = namespace_for(
        kind,
        &ns.extensions,
        &ns.kcl_packages,
        &ns.platform_images,
        &ns.test_images,
        ns.custom.iter().flatten(),
    )?;
    let (name_arg, tag_arg) = match a.name.as_deref() {
        Some(s) => split_tag(s),
        None => ("", None),
    };
    let name = artifact_name(Some(name_arg), &a.path)?;
    let repo: RepoName = format!("{namespace}/{name}")
        .parse()
        .map_err(|e| anyhow::anyhow!("repository {namespace}/{name}: {e}"))?;
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let tag: Tag = match tag_arg {
        Some(t) => t.parse().map_err(|e| anyhow::anyhow!("tag {t:?}: {e}"))?,
        None if policy.auto_tag => render_tag(&policy.tag_format, a.version.as_deref(), now)?,
        None => Tag::latest(),
    };
    let compression = if policy.compression_enabled {
        Some(
            u32::try_from(policy.compression_level)
                .ok()
                .filter(|l| *l <= 9)
                .context("push_policy.compression_level must be 0-9")?,
        )
    } else {
        None
    };
    let mut pack = PackOptions::new(kind.clone(), name);
    pack.compression = compression;
    pack.version = a.version.clone();
    pack.created = Some(now);
    pack.annotations = parse_annotations(&a.annotations)?;
    Ok(PushRequest {
        path: a.path.clone(),
        pack,
        repo,
        tag,
        allow_overwrite: policy.allow_overwrite || a.force,
        shown: String::new(),
    })
}

/// Ctrl-C during a push: the push's future is dropped (its upload session with it), the session
/// is cancelled on the registry so its bytes are freed now, the progress line is cleared and
/// `interrupted` printed. Exit status 130, as a shell reports SIGINT.
async fn interrupted(reg: &ocireg_client::Registry) -> i32 {
    ui::clear_bars();
    let _ = tokio::time::timeout(Duration::from_secs(5), reg.cancel_abandoned_uploads()).await;
    eprintln!("interrupted");
    crate::exit::Exit::Interrupted.code()
}

/// Runs `ocireg push`.
pub(crate) async fn run(ctx: &Ctx, a: PushArgs) -> anyhow::Result<i32> {
    if let Some(t) = a.artifact_type.clone() {
        return super::push_files::run(ctx, a, t).await;
    }
    let ui = Ui::new(a.out);
    check_push_signing(ctx.doc.push_policy.require_signing)?;
    let kind = ArtifactKind::parse(&a.kind)?;
    let mut req = request(ctx, &a, &kind)?;
    let ep = ctx.configured();
    let reg = ctx.registry(&ep)?;
    req.shown = format!("{}/{}:{}", ep.host, req.repo, req.tag);
    let report = tokio::select! {
        report = push_artifact(&reg, &req, &ui) => report?,
        _ = tokio::signal::ctrl_c() => return Ok(interrupted(&reg).await),
    };
    let PushReport {
        digest,
        unchanged,
        blobs_uploaded,
        layer,
    } = report;
    let shown = &req.shown;
    let json = json!({
        "reference": format!("{shown}@{digest}"),
        "registry": ep.host,
        "repository": req.repo.as_str(),
        "tag": req.tag.as_str(),
        "digest": digest.to_string(),
        "mediaType": media_types::OCI_MANIFEST,
        "artifactType": kind.artifact_type(),
        "kind": kind.as_string(),
        "layer": {
            "digest": layer.digest.to_string(),
            "mediaType": layer.media_type,
            "size": layer.size,
        },
        "unchanged": unchanged,
        "blobsUploaded": blobs_uploaded,
    });
    let text = if unchanged {
        format!("{shown} already holds this content (unchanged)\ndigest: {digest}")
    } else {
        format!(
            "pushed {shown}\ndigest: {digest}\nsize: {} ({} layer)",
            ui::human(layer.size),
            layer.media_type
        )
    };
    ui.result(&json, &digest.to_string(), &text);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations() {
        assert!(parse_annotations(&["k".into()]).is_err());
        assert_eq!(parse_annotations(&["k=v=w".into()]).unwrap()["k"], "v=w");
    }
}
