//! `ocireg push KIND PATH [NAME[:TAG]]`: pack per `push_policy`, apply the overwrite and
//! signing policies, push the blobs (skipping those present), then the manifest.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use ocireg_client::artifact::{
    annotations, check_push_signing, namespace_for, pack, pack_to_writer, pipe, ArtifactError,
    ArtifactKind, Blob, PackOptions, PackedArtifact, PackedStream,
};
use ocireg_client::{BlobSource, ClientError, PushOutcome, Registry};
use ocireg_oci::{media_types, Descriptor, Digest, Reference, RepoName, Tag};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::io::AsyncRead;

use super::refs::{render_tag, sanitize_component, split_name_tag};
use super::settings::Ctx;
use super::ui::{self, CountingReader, Ui};
use super::PushArgs;

/// Blocks of [`ocireg_client::artifact::PIPE_BLOCK`] bytes that may wait between the packer
/// and the upload.
const PIPE_DEPTH: usize = 8;

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
    manifest: &Blob,
    allow_overwrite: bool,
    shown: &str,
) -> anyhow::Result<TagState> {
    let r = Reference::Tag(tag.clone());
    let Some(existing) = reg.head_manifest(repo, &r, &[]).await? else {
        return Ok(TagState::Push);
    };
    if existing.digest == manifest.descriptor.digest {
        return Ok(TagState::Unchanged(existing.digest));
    }
    if allow_overwrite {
        return Ok(TagState::Push);
    }
    let current = reg
        .get_manifest(repo, &Reference::Digest(existing.digest.clone()), &[])
        .await?;
    if same_content(&current.bytes, &manifest.bytes) {
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

/// Where a push goes and under which policy.
struct Target<'a> {
    reg: &'a Registry,
    repo: &'a RepoName,
    tag: &'a Tag,
    allow_overwrite: bool,
    shown: &'a str,
    ui: &'a Ui,
}

/// What a push did.
struct Pushed {
    digest: Digest,
    unchanged: bool,
    uploaded: u32,
    layer: Descriptor,
}

/// Why a streamed push failed: worth redoing through a packed file, or not.
enum StreamFailure {
    /// The upload broke in a way the file-based push (full resume) may get past.
    Upload(anyhow::Error),
    /// Packing failed, the tag policy refused, or the registry refused: report it.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for StreamFailure {
    fn from(e: anyhow::Error) -> Self {
        StreamFailure::Fatal(e)
    }
}

/// Transport failures that a fresh, file-based upload may get past.
fn worth_redoing(e: &ClientError) -> bool {
    match e {
        ClientError::Connection { .. }
        | ClientError::Timeout { .. }
        | ClientError::Protocol(_)
        | ClientError::Io { .. } => true,
        ClientError::Registry(r) => r.status >= 500 || matches!(r.status, 404 | 416 | 429),
        _ => false,
    }
}

fn is_broken_pipe(e: &ArtifactError) -> bool {
    matches!(e, ArtifactError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Sum of the sizes of the regular files under `path` (a progress-bar estimate).
fn estimate_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| estimate_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Pushes the config blob and the manifest once the layer is in the registry (after the tag
/// check).
async fn finish_push(
    t: &Target<'_>,
    config: &Blob,
    manifest: &Blob,
    layer: Descriptor,
    mut uploaded: u32,
) -> anyhow::Result<Pushed> {
    let state = check_tag(t.reg, t.repo, t.tag, manifest, t.allow_overwrite, t.shown).await?;
    if let TagState::Unchanged(digest) = state {
        return Ok(Pushed {
            digest,
            unchanged: true,
            uploaded,
            layer,
        });
    }
    let source = BlobSource::Bytes(Bytes::from(config.bytes.clone()));
    uploaded += u32::from(
        push_blob(t.reg, t.repo, &config.descriptor, source).await? == PushOutcome::Uploaded,
    );
    let digest = t
        .reg
        .put_manifest(
            t.repo,
            &Reference::Tag(t.tag.clone()),
            media_types::OCI_MANIFEST,
            Bytes::from(manifest.bytes.clone()),
        )
        .await
        .with_context(|| format!("pushing the manifest to {}", t.shown))?;
    Ok(Pushed {
        digest,
        unchanged: false,
        uploaded,
        layer,
    })
}

/// Packs into a temporary file, checks the tag, then pushes the blobs (skipping those the
/// registry has; resumable chunked upload) and the manifest.
async fn push_packed(t: &Target<'_>, path: &Path, opts: &PackOptions) -> anyhow::Result<Pushed> {
    let work = tempfile::Builder::new()
        .prefix("ocireg-push-")
        .tempdir()
        .context("creating a temporary directory")?;
    t.ui.status(&format!("packing {} ...", path.display()));
    let packed: PackedArtifact = tokio::task::block_in_place(|| pack(path, opts, work.path()))?;
    let layer = packed.layer.descriptor.clone();
    let state = check_tag(
        t.reg,
        t.repo,
        t.tag,
        &packed.manifest,
        t.allow_overwrite,
        t.shown,
    )
    .await?;
    if let TagState::Unchanged(digest) = state {
        return Ok(Pushed {
            digest,
            unchanged: true,
            uploaded: 0,
            layer,
        });
    }
    let bar = t.ui.bar(layer.size, "layer");
    let source = match &bar {
        Some(b) => {
            let f = tokio::fs::File::open(&packed.layer.path)
                .await
                .with_context(|| format!("opening {}", packed.layer.path.display()))?;
            BlobSource::Reader(Box::new(CountingReader::new(f, b.clone())))
        }
        None => BlobSource::Path(packed.layer.path.clone()),
    };
    let outcome = push_blob(t.reg, t.repo, &layer, source).await;
    ui::finish(bar.as_ref());
    let uploaded = u32::from(outcome? == PushOutcome::Uploaded);
    finish_push(t, &packed.config, &packed.manifest, layer, uploaded).await
}

/// Packs in a blocking thread straight into a streamed upload (no temporary layer file): the
/// layer's digest and size are known when both end, and must agree; then the tag check, the
/// config blob and the manifest.
async fn push_streaming(
    t: &Target<'_>,
    path: &Path,
    opts: &PackOptions,
) -> Result<Pushed, StreamFailure> {
    t.ui.status(&format!("packing and uploading {} ...", path.display()));
    let (writer, reader) = pipe(PIPE_DEPTH);
    let (src, o) = (path.to_path_buf(), opts.clone());
    let job = tokio::task::spawn_blocking(move || -> Result<PackedStream, ArtifactError> {
        let (packed, writer) = pack_to_writer(&src, &o, writer)?;
        writer.finish().map_err(|e| ArtifactError::Io {
            context: "cannot stream the layer".to_owned(),
            source: e,
        })?;
        Ok(packed)
    });
    let bar = t.ui.bar(0, "layer");
    if let Some(b) = &bar {
        b.set_length(tokio::task::block_in_place(|| estimate_size(path)));
    }
    let reader: Box<dyn AsyncRead + Send + Unpin> = match &bar {
        Some(b) => Box::new(CountingReader::new(reader, b.clone())),
        None => Box::new(reader),
    };
    let sent = t.reg.push_blob_streaming(t.repo, reader).await;
    ui::finish(bar.as_ref());
    let packed = job.await.context("the packing task failed")?;
    let (packed, (digest, size)) = match (packed, sent) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(pe), Err(ue)) if is_broken_pipe(&pe) => {
            return Err(upload_failure(ue));
        }
        (Err(pe), _) => return Err(StreamFailure::Fatal(pe.into())),
        (Ok(_), Err(ue)) => return Err(upload_failure(ue)),
    };
    if digest != packed.layer.digest || size != packed.layer.size {
        return Err(StreamFailure::Fatal(anyhow::anyhow!(
            "the streamed layer hashed to {digest} ({size} bytes) but the packer produced {} ({} bytes)",
            packed.layer.digest,
            packed.layer.size
        )));
    }
    Ok(finish_push(t, &packed.config, &packed.manifest, packed.layer, 1).await?)
}

fn upload_failure(e: ClientError) -> StreamFailure {
    let redo = worth_redoing(&e);
    let e = anyhow::Error::new(e).context("streaming the layer");
    if redo {
        StreamFailure::Upload(e)
    } else {
        StreamFailure::Fatal(e)
    }
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

    let target = Target {
        reg: &reg,
        repo: &repo,
        tag: &tag,
        allow_overwrite: policy.allow_overwrite,
        shown: &shown,
        ui: &ui,
    };
    // A tag already in use needs the packed manifest before anything is sent (same content is
    // a no-op, different content may be refused): pack to a file first. Otherwise stream the
    // layer to the registry while packing it.
    let tag_in_use = reg
        .head_manifest(&repo, &Reference::Tag(tag.clone()), &[])
        .await
        .with_context(|| format!("checking {shown}"))?
        .is_some();
    let pushed = if tag_in_use {
        push_packed(&target, &a.path, &opts).await?
    } else {
        match push_streaming(&target, &a.path, &opts).await {
            Ok(p) => p,
            Err(StreamFailure::Fatal(e)) => return Err(e),
            Err(StreamFailure::Upload(e)) => {
                ui.status(&format!(
                    "streamed upload failed ({e:#}); packing to a file and pushing again"
                ));
                tracing::warn!(error = %format!("{e:#}"), "streamed upload failed; retrying from a packed file");
                push_packed(&target, &a.path, &opts).await?
            }
        }
    };
    let Pushed {
        digest,
        unchanged,
        uploaded,
        layer,
    } = pushed;
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
            "digest": layer.digest.to_string(),
            "mediaType": layer.media_type,
            "size": layer.size,
        },
        "unchanged": unchanged,
        "blobsUploaded": uploaded,
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
