//! Pushing an artifact: pack per the options, apply the overwrite rule (the same content under
//! the tag is a no-op, different content needs `allow_overwrite`), push the blobs (skipping
//! those present), then the manifest. A free tag gets the layer streamed to the registry while
//! it is packed; an upload that breaks there is redone from a packed file (full resume).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ocireg_oci::{media_types, Descriptor, Digest, Reference, RepoName, Tag};
use serde_json::Value;
use tokio::io::AsyncRead;

use super::chain;
use super::progress::{finish, CountingReader, Progress};
use crate::artifact::{
    annotations, compression_skip_reason, pack, pack_to_writer, pipe, Blob, PackOptions,
    PackedArtifact, PackedStream,
};
use crate::error::ClientError;
use crate::push::PushOutcome;
use crate::registry::Registry;
use crate::source::BlobSource;

/// Blocks of [`crate::artifact::PIPE_BLOCK`] bytes that may wait between the packer and the
/// upload.
const PIPE_DEPTH: usize = 8;

/// What to push where, under which overwrite rule.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The file or directory to pack.
    pub path: PathBuf,
    /// How to pack it.
    pub pack: PackOptions,
    /// The destination repository.
    pub repo: RepoName,
    /// The destination tag.
    pub tag: Tag,
    /// `push_policy.allow_overwrite`: whether a tag holding different content may be moved.
    pub allow_overwrite: bool,
    /// How the destination is named in messages (`host/repo:tag`).
    pub shown: String,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The manifest digest the tag points to.
    pub digest: Digest,
    /// The tag already held this content; nothing was pushed.
    pub unchanged: bool,
    /// How many blobs were uploaded (the others were present).
    pub blobs_uploaded: u32,
    /// The layer's descriptor.
    pub layer: Descriptor,
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

/// Whether two artifact manifests describe the same content: equal but for the creation time.
pub fn same_content(existing: &[u8], ours: &[u8]) -> bool {
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

/// Where a push goes and how it reports.
struct Target<'a> {
    reg: &'a Registry,
    req: &'a PushRequest,
    progress: &'a dyn Progress,
}

impl Target<'_> {
    /// The overwrite rule.
    async fn check_tag(&self, manifest: &Blob) -> Result<TagState, ClientError> {
        let (repo, r) = (&self.req.repo, Reference::Tag(self.req.tag.clone()));
        let Some(existing) = self.reg.head_manifest(repo, &r, &[]).await? else {
            return Ok(TagState::Push);
        };
        if existing.digest == manifest.descriptor.digest {
            return Ok(TagState::Unchanged(existing.digest));
        }
        if self.req.allow_overwrite {
            return Ok(TagState::Push);
        }
        let current = self
            .reg
            .get_manifest(repo, &Reference::Digest(existing.digest.clone()), &[])
            .await?;
        if same_content(&current.bytes, &manifest.bytes) {
            return Ok(TagState::Unchanged(existing.digest));
        }
        Err(ClientError::TagInUse {
            shown: self.req.shown.clone(),
            existing: existing.digest,
        })
    }

    async fn push_blob(&self, d: &Descriptor, source: BlobSource) -> Result<bool, ClientError> {
        let outcome = self
            .reg
            .push_blob(&self.req.repo, &d.digest, d.size, source)
            .await
            .map_err(|e| ClientError::context(format!("pushing blob {}", d.digest), e))?;
        Ok(outcome == PushOutcome::Uploaded)
    }

    /// Pushes the config blob and the manifest once the layer is in the registry (after the
    /// tag check).
    async fn finish_push(
        &self,
        config: &Blob,
        manifest: &Blob,
        layer: Descriptor,
        mut uploaded: u32,
    ) -> Result<PushReport, ClientError> {
        if let TagState::Unchanged(digest) = self.check_tag(manifest).await? {
            return Ok(PushReport {
                digest,
                unchanged: true,
                blobs_uploaded: uploaded,
                layer,
            });
        }
        let source = BlobSource::Bytes(Bytes::from(config.bytes.clone()));
        uploaded += u32::from(self.push_blob(&config.descriptor, source).await?);
        let digest = self
            .reg
            .put_manifest(
                &self.req.repo,
                &Reference::Tag(self.req.tag.clone()),
                media_types::OCI_MANIFEST,
                Bytes::from(manifest.bytes.clone()),
            )
            .await
            .map_err(|e| {
                ClientError::context(format!("pushing the manifest to {}", self.req.shown), e)
            })?;
        Ok(PushReport {
            digest,
            unchanged: false,
            blobs_uploaded: uploaded,
            layer,
        })
    }

    /// Packs into a temporary file, checks the tag, then pushes the blobs (skipping those the
    /// registry has; resumable chunked upload) and the manifest.
    async fn push_packed(&self) -> Result<PushReport, ClientError> {
        let (path, opts) = (&self.req.path, &self.req.pack);
        let work = tempfile::Builder::new()
            .prefix("ocireg-push-")
            .tempdir()
            .map_err(|e| ClientError::local_io("creating a temporary directory", e))?;
        self.progress
            .status(&format!("packing {} ...", path.display()));
        let packed: PackedArtifact = tokio::task::block_in_place(|| pack(path, opts, work.path()))?;
        let layer = packed.layer.descriptor.clone();
        if let TagState::Unchanged(digest) = self.check_tag(&packed.manifest).await? {
            return Ok(PushReport {
                digest,
                unchanged: true,
                blobs_uploaded: 0,
                layer,
            });
        }
        let meter = self.progress.meter("layer", layer.size);
        let source = match &meter {
            Some(m) => {
                let f = tokio::fs::File::open(&packed.layer.path)
                    .await
                    .map_err(|e| {
                        ClientError::local_io(format!("opening {}", packed.layer.path.display()), e)
                    })?;
                BlobSource::Reader(Box::new(CountingReader::new(f, m.clone())))
            }
            None => BlobSource::Path(packed.layer.path.clone()),
        };
        let outcome = self.push_blob(&layer, source).await;
        finish(meter.as_ref());
        let uploaded = u32::from(outcome?);
        self.finish_push(&packed.config, &packed.manifest, layer, uploaded)
            .await
    }

    /// Packs in a blocking thread straight into a streamed upload (no temporary layer file):
    /// the layer's digest and size are known when both end, and must agree; then the tag
    /// check, the config blob and the manifest.
    async fn push_streaming(&self) -> Result<PushReport, StreamFailure> {
        let (path, opts) = (&self.req.path, &self.req.pack);
        self.progress
            .status(&format!("packing and uploading {} ...", path.display()));
        let (writer, reader) = pipe(PIPE_DEPTH);
        let (src, o) = (path.clone(), opts.clone());
        let job = tokio::task::spawn_blocking(move || -> Result<PackedStream, ClientError> {
            let (packed, writer) = pack_to_writer(&src, &o, writer)?;
            writer.finish().map_err(|e| ClientError::Io {
                context: "cannot stream the layer".to_owned(),
                source: e,
            })?;
            Ok(packed)
        });
        let meter = self.progress.meter("layer", 0);
        if let Some(m) = &meter {
            m.set_total(tokio::task::block_in_place(|| estimate_size(path)));
        }
        let reader: Box<dyn AsyncRead + Send + Unpin> = match &meter {
            Some(m) => Box::new(CountingReader::new(reader, m.clone())),
            None => Box::new(reader),
        };
        let sent = self.reg.push_blob_streaming(&self.req.repo, reader).await;
        finish(meter.as_ref());
        let packed = job
            .await
            .map_err(|e| ClientError::task("the packing task failed", e))?;
        let (packed, (digest, size)) = match (packed, sent) {
            (Ok(p), Ok(s)) => (p, s),
            (Err(pe), Err(ue)) if is_broken_pipe(&pe) => return Err(upload_failure(ue)),
            (Err(pe), _) => return Err(StreamFailure::Fatal(pe)),
            (Ok(_), Err(ue)) => return Err(upload_failure(ue)),
        };
        if digest != packed.layer.digest || size != packed.layer.size {
            return Err(StreamFailure::Fatal(ClientError::Invalid(format!(
                "the streamed layer hashed to {digest} ({size} bytes) but the packer produced {} ({} bytes)",
                packed.layer.digest,
                packed.layer.size
            ))));
        }
        Ok(self
            .finish_push(&packed.config, &packed.manifest, packed.layer, 1)
            .await?)
    }
}

/// Why a streamed push failed: worth redoing through a packed file, or not.
enum StreamFailure {
    /// The upload broke in a way the file-based push (full resume) may get past.
    Upload(ClientError),
    /// Packing failed, the tag policy refused, or the registry refused: report it.
    Fatal(ClientError),
}

impl From<ClientError> for StreamFailure {
    fn from(e: ClientError) -> Self {
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

fn is_broken_pipe(e: &ClientError) -> bool {
    matches!(e, ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn upload_failure(e: ClientError) -> StreamFailure {
    let redo = worth_redoing(&e);
    let e = ClientError::context("streaming the layer", e);
    if redo {
        StreamFailure::Upload(e)
    } else {
        StreamFailure::Fatal(e)
    }
}

/// Sum of the sizes of the regular files under `path` (a progress estimate).
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

/// `req` with compression dropped when a sample of the content shows it would not pay
/// (already compressed or incompressible): the layer is then an uncompressed tar, and the
/// reason is recorded on it.
fn compression_decided(req: &PushRequest) -> PushRequest {
    let mut out = req.clone();
    if let Some(level) = req.pack.compression {
        let why = tokio::task::block_in_place(|| compression_skip_reason(&req.path, level));
        if let Some(why) = why {
            out.pack.compression = None;
            out.pack.compression_skipped = Some(why);
        }
    }
    out
}

/// Pushes `req.path` as an artifact to `reg`.
///
/// A tag already in use needs the packed manifest before anything is sent (the same content is
/// a no-op, different content may be refused): the artifact is packed to a file first.
/// Otherwise the layer is streamed to the registry while it is packed, and an upload that
/// breaks on the way is redone from a packed file.
pub async fn push_artifact(
    reg: &Registry,
    req: &PushRequest,
    progress: &dyn Progress,
) -> Result<PushReport, ClientError> {
    // A path that cannot be read fails before anything is asked of the registry (no upload
    // session is opened for it).
    if let Err(e) = std::fs::metadata(&req.path) {
        let what = format!("reading {}", req.path.display());
        return Err(ClientError::local_io(what, e));
    }
    let decided = compression_decided(req);
    let req = &decided;
    let t = Target { reg, req, progress };
    let tag_in_use = reg
        .head_manifest(&req.repo, &Reference::Tag(req.tag.clone()), &[])
        .await
        .map_err(|e| ClientError::context(format!("checking {}", req.shown), e))?
        .is_some();
    if tag_in_use {
        return t.push_packed().await;
    }
    match t.push_streaming().await {
        Ok(p) => Ok(p),
        Err(StreamFailure::Fatal(e)) => Err(e),
        Err(StreamFailure::Upload(e)) => {
            let why = chain(&e);
            progress.status(&format!(
                "streamed upload failed ({why}); packing to a file and pushing again"
            ));
            tracing::warn!(error = %why, "streamed upload failed; retrying from a packed file");
            t.push_packed().await
        }
    }
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
    fn which_upload_failures_are_redone_from_a_file() {
        assert!(worth_redoing(&ClientError::Protocol("x".into())));
        assert!(!worth_redoing(&ClientError::Auth("x".into())));
    }
}
