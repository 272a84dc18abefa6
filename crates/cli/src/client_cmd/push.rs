//! `ocireg push KIND PATH [NAME[:TAG]]`: pack per `push_policy`, apply the overwrite and
//! signing policies, push the blobs (skipping those present), then the manifest.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use ocireg_client::artifact::{
    annotations, check_push_signing, namespace_for, pack, ArtifactKind, PackOptions, PackedArtifact,
};
use ocireg_client::{BlobSource, PushOutcome, Registry};
use ocireg_oci::{media_types, Descriptor, Digest, Reference, RepoName, Tag};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::refs::{render_tag, sanitize_component, split_name_tag};
use super::settings::Ctx;
use super::ui::{self, CountingReader, Ui};
use super::PushArgs;

/// The repository name below the namespace: NAME as given (validated), else PATH's file name
/// sanitised to the name grammar.
fn artifact_name(given: Option<&str>, path: &Path) -> anyhow::Result<String> {
    if let Some(n) = given.filter(|n| !n.is_empty()) {
        if !RepoName::is_valid(n) {
            bail!(
                "NAME {n:?} is not a valid repository name (lowercase [a-z0-9] components separated by '.', '_', '__' or '-', joined by '/')"
            );
        }
        return Ok(n.to_owned());
    }
    let base = match path.file_name() {
        Some(f) => f.to_string_lossy().into_owned(),
        None => std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    sanitize_component(&base).with_context(|| {
        format!(
            "cannot derive a repository name from {}; give NAME",
            path.display()
        )
    })
}

fn parse_annotations(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
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

/// The manifest as JSON minus what changes with the creation time alone (config digest and
/// size, the `created` annotation): two artifacts with equal views have the same content.
fn content_view(manifest: &[u8]) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(manifest).ok()?;
    let obj = v.as_object_mut()?;
    if let Some(cfg) = obj.get_mut("config").and_then(Value::as_object_mut) {
        cfg.remove("digest");
        cfg.remove("size");
    }
    if let Some(a) = obj.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove(annotations::CREATED);
    }
    Some(v)
}

/// Same artifact content: equal [`content_view`]s.
fn same_content(existing: &[u8], ours: &[u8]) -> bool {
    match (content_view(existing), content_view(ours)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// What the registry holds under the tag, judged against the packed artifact.
enum TagState {
    /// Free (or overwriting is allowed): push.
    Push,
    /// Already there with this digest (the same content): nothing to do.
    Unchanged(Digest),
}

async fn check_tag(
    reg: &Registry,
    repo: &RepoName,
    tag: &Tag,
    packed: &PackedArtifact,
    allow_overwrite: bool,
    shown: &str,
) -> anyhow::Result<TagState> {
    let r = Reference::Tag(tag.clone());
    let Some(existing) = reg.head_manifest(repo, &r, &[]).await? else {
        return Ok(TagState::Push);
    };
    if existing.digest == packed.manifest.descriptor.digest {
        return Ok(TagState::Unchanged(existing.digest));
    }
    if allow_overwrite {
        return Ok(TagState::Push);
    }
    let current = reg
        .get_manifest(repo, &Reference::Digest(existing.digest.clone()), &[])
        .await?;
    if same_content(&current.bytes, &packed.manifest.bytes) {
        return Ok(TagState::Unchanged(existing.digest));
    }
    bail!(
        "{shown} already points to {} with different content and push_policy.allow_overwrite is false; push under another tag, or set allow_overwrite = true",
        existing.digest
    )
}

async fn push_blob(
    reg: &Registry,
    repo: &RepoName,
    d: &Descriptor,
    source: BlobSource,
) -> anyhow::Result<PushOutcome> {
    reg.push_blob(repo, &d.digest, d.size, source)
        .await
        .with_context(|| format!("pushing blob {}", d.digest))
}

/// Runs `ocireg push`.
pub(crate) async fn run(ctx: &Ctx, a: PushArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let policy = &ctx.doc.push_policy;
    check_push_signing(policy.require_signing)?;
    let kind = ArtifactKind::parse(&a.kind)?;
    let ns = &ctx.doc.registry.namespaces;
    let namespace = namespace_for(
        &kind,
        &ns.extensions,
        &ns.kcl_packages,
        &ns.platform_images,
        &ns.test_images,
        ns.custom.iter().flatten(),
    )?;
    let (name_arg, tag_arg) = match a.name.as_deref() {
        Some(s) => split_name_tag(s),
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
        None => "latest".parse().context("tag latest")?,
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
    let mut opts = PackOptions::new(kind.clone(), name.clone());
    opts.compression = compression;
    opts.version = a.version.clone();
    opts.created = Some(now);
    opts.annotations = parse_annotations(&a.annotations)?;

    let ep = ctx.configured();
    let reg = ctx.registry(&ep)?;
    let shown = format!("{}/{repo}:{tag}", ep.host);

    let work = tempfile::Builder::new()
        .prefix("ocireg-push-")
        .tempdir()
        .context("creating a temporary directory")?;
    ui.status(&format!("packing {} ...", a.path.display()));
    let packed = tokio::task::block_in_place(|| pack(&a.path, &opts, work.path()))?;

    let (digest, unchanged, uploaded) =
        match check_tag(&reg, &repo, &tag, &packed, policy.allow_overwrite, &shown).await? {
            TagState::Unchanged(d) => (d, true, 0u32),
            TagState::Push => {
                let layer = &packed.layer.descriptor;
                let bar = ui.bar(layer.size, "layer");
                let source = match &bar {
                    Some(b) => {
                        let f = tokio::fs::File::open(&packed.layer.path)
                            .await
                            .with_context(|| format!("opening {}", packed.layer.path.display()))?;
                        BlobSource::Reader(Box::new(CountingReader::new(f, b.clone())))
                    }
                    None => BlobSource::Path(packed.layer.path.clone()),
                };
                let mut uploaded = 0;
                let outcome = push_blob(&reg, &repo, layer, source).await;
                ui::finish(bar.as_ref());
                uploaded += u32::from(outcome? == PushOutcome::Uploaded);
                let cfg = &packed.config;
                let source = BlobSource::Bytes(Bytes::from(cfg.bytes.clone()));
                uploaded += u32::from(
                    push_blob(&reg, &repo, &cfg.descriptor, source).await? == PushOutcome::Uploaded,
                );
                let d = reg
                    .put_manifest(
                        &repo,
                        &Reference::Tag(tag.clone()),
                        media_types::OCI_MANIFEST,
                        Bytes::from(packed.manifest.bytes.clone()),
                    )
                    .await
                    .with_context(|| format!("pushing the manifest to {shown}"))?;
                (d, false, uploaded)
            }
        };
    let json = json!({
        "reference": format!("{shown}@{digest}"),
        "registry": ep.host,
        "repository": repo.as_str(),
        "tag": tag.as_str(),
        "digest": digest.to_string(),
        "mediaType": media_types::OCI_MANIFEST,
        "artifactType": kind.artifact_type(),
        "kind": kind.as_string(),
        "layer": {
            "digest": packed.layer.descriptor.digest.to_string(),
            "mediaType": packed.layer.descriptor.media_type,
            "size": packed.layer.descriptor.size,
        },
        "unchanged": unchanged,
        "blobsUploaded": uploaded,
    });
    let text = if unchanged {
        format!("{shown} already holds this content (unchanged)\ndigest: {digest}")
    } else {
        format!(
            "pushed {shown}\ndigest: {digest}\nsize: {} ({} layer)",
            ui::human(packed.layer.descriptor.size),
            packed.layer.descriptor.media_type
        )
    };
    ui.result(&json, &digest.to_string(), &text);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_time_alone_is_not_new_content() {
        let a = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:1","size":1},"layers":[{"digest":"sha256:9"}],"annotations":{"org.opencontainers.image.created":"2020-01-01T00:00:00Z","x":"1"}}"#;
        let b = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:2","size":2},"layers":[{"digest":"sha256:9"}],"annotations":{"org.opencontainers.image.created":"2021-01-01T00:00:00Z","x":"1"}}"#;
        let c = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:2","size":2},"layers":[{"digest":"sha256:8"}],"annotations":{"x":"1"}}"#;
        assert!(same_content(a, b));
        assert!(!same_content(a, c));
        assert!(!same_content(a, b"not json"));
    }

    #[test]
    fn names() {
        assert_eq!(
            artifact_name(None, Path::new("/x/My Ext")).unwrap(),
            "my-ext"
        );
        assert_eq!(artifact_name(Some("a/b"), Path::new("/x")).unwrap(), "a/b");
        assert!(artifact_name(Some("A"), Path::new("/x")).is_err());
        assert!(parse_annotations(&["k".into()]).is_err());
        assert_eq!(parse_annotations(&["k=v=w".into()]).unwrap()["k"], "v=w");
    }
}
