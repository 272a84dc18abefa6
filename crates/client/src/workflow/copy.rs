//! Copying a manifest (an index with its child manifests) and its blobs. Within one registry
//! blobs are mounted across repositories; between registries they are streamed from the source
//! straight into the destination upload (one bounded pipe, nothing on disk), verified at both
//! ends.

use std::future::Future;
use std::pin::Pin;

use ocireg_oci::{Descriptor, Digest, Reference, RepoName};
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::progress::{finish, CountingReader, Progress};
use crate::error::ClientError;
use crate::registry::{Manifest, Registry};
use crate::source::BlobSource;

/// Size of the in-memory pipe between the download and the upload of a streamed blob.
const PIPE_BYTES: usize = 1 << 20;

/// What to copy where.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// The source repository.
    pub src_repo: RepoName,
    /// The source manifest.
    pub src_ref: Reference,
    /// The destination repository.
    pub dst_repo: RepoName,
    /// Where the manifest goes in the destination (a tag, or its digest).
    pub dst_ref: Reference,
    /// Source and destination are the same registry, so blobs may be mounted.
    pub same_registry: bool,
    /// How the source is named in messages.
    pub src_shown: String,
    /// How the destination is named in messages.
    pub dst_shown: String,
    /// Whether a destination tag holding other content may be moved (the push rule:
    /// `push_policy.allow_overwrite`, or `--force`).
    pub allow_overwrite: bool,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The digest of the copied manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Manifests pushed (the children of an index, and the manifest itself).
    pub manifests: u64,
    /// Blobs mounted from the source repository.
    pub mounted: u64,
    /// Blobs streamed from the source.
    pub streamed: u64,
    /// Blobs the destination already had.
    pub existed: u64,
    /// Bytes streamed.
    pub bytes_streamed: u64,
}

/// The two ends of a copy and what has been done.
struct Copier<'a> {
    src: &'a Registry,
    dst: &'a Registry,
    req: &'a CopyRequest,
    progress: &'a dyn Progress,
    report: CopyReport,
}

impl Copier<'_> {
    /// Streams one blob from the source into the destination.
    async fn stream(&mut self, d: &Descriptor) -> Result<(), ClientError> {
        let (mut w, r) = tokio::io::duplex(PIPE_BYTES);
        let src = self.src.clone();
        let repo = self.req.src_repo.clone();
        let digest = d.digest.clone();
        let download = tokio::spawn(async move {
            let res = src.pull_blob(&repo, &digest, &mut w).await;
            let _ = w.shutdown().await;
            res
        });
        let meter = self.progress.meter("blob", d.size);
        let reader: Box<dyn AsyncRead + Send + Unpin> = match &meter {
            Some(m) => Box::new(CountingReader::new(r, m.clone())),
            None => Box::new(r),
        };
        let pushed = self
            .dst
            .push_blob(
                &self.req.dst_repo,
                &d.digest,
                d.size,
                BlobSource::Reader(reader),
            )
            .await;
        finish(meter.as_ref());
        let pulled = download
            .await
            .map_err(|e| ClientError::task("the download task failed", e))?;
        let downloading = |e| ClientError::context(format!("downloading blob {}", d.digest), e);
        match (pulled, pushed) {
            (Err(e), _) if !matches!(e, ClientError::Io { .. }) => Err(downloading(e)),
            (_, Err(e)) => Err(ClientError::context(
                format!("uploading blob {}", d.digest),
                e,
            )),
            (Err(e), Ok(_)) => Err(downloading(e)),
            (Ok(_), Ok(_)) => Ok(()),
        }
    }

    /// Makes the destination hold one blob: already there, mounted, or streamed.
    async fn blob(&mut self, d: &Descriptor) -> Result<(), ClientError> {
        let dst_repo = &self.req.dst_repo;
        if self.dst.blob_exists(dst_repo, &d.digest).await? {
            self.report.existed += 1;
            return Ok(());
        }
        if self.req.same_registry
            && self
                .dst
                .mount_blob(dst_repo, &d.digest, &self.req.src_repo)
                .await?
        {
            self.report.mounted += 1;
            return Ok(());
        }
        self.stream(d).await?;
        self.report.streamed += 1;
        self.report.bytes_streamed += d.size;
        Ok(())
    }

    /// Copies everything `m` references (child manifests first, pushed by digest), not `m`.
    fn children<'a>(
        &'a mut self,
        m: &'a Manifest,
    ) -> Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send + 'a>> {
        Box::pin(async move {
            let parsed = ocireg_oci::parse_manifest(&m.bytes, Some(&m.media_type))
                .map_err(|e| ClientError::Invalid(format!("manifest {}: {e}", m.digest)))?;
            for child in parsed.manifest_refs() {
                let r = Reference::Digest(child.digest.clone());
                let cm = self.src.get_manifest(&self.req.src_repo, &r, &[]).await?;
                self.children(&cm).await?;
                self.dst
                    .put_manifest(&self.req.dst_repo, &r, &cm.media_type, cm.bytes.clone())
                    .await
                    .map_err(|e| {
                        ClientError::context(format!("pushing manifest {}", cm.digest), e)
                    })?;
                self.report.manifests += 1;
            }
            for b in parsed.blob_refs() {
                self.blob(b).await?;
            }
            Ok(())
        })
    }
}

/// The overwrite rule of `push` for the destination: a tag that holds another manifest is left
/// alone unless overwriting is allowed. Checked before any blob is copied.
async fn check_destination_tag(
    dst: &Registry,
    req: &CopyRequest,
    digest: &Digest,
) -> Result<(), ClientError> {
    if req.allow_overwrite || !matches!(req.dst_ref, Reference::Tag(_)) {
        return Ok(());
    }
    let existing = dst
        .head_manifest(&req.dst_repo, &req.dst_ref, &[])
        .await
        .map_err(|e| ClientError::context(format!("checking {}", req.dst_shown), e))?;
    match existing {
        Some(e) if e.digest != *digest => Err(ClientError::TagInUse {
            shown: req.dst_shown.clone(),
            existing: e.digest,
        }),
        _ => Ok(()),
    }
}

/// Copies `req.src_ref` of `src` to `req.dst_ref` of `dst`: child manifests and blobs first,
/// the manifest last.
pub async fn copy_artifact(
    src: &Registry,
    dst: &Registry,
    req: &CopyRequest,
    progress: &dyn Progress,
) -> Result<CopyReport, ClientError> {
    let m = src
        .get_manifest(&req.src_repo, &req.src_ref, &[])
        .await
        .map_err(|e| ClientError::context(format!("fetching {}", req.src_shown), e))?;
    let mut c = Copier {
        src,
        dst,
        req,
        progress,
        report: CopyReport {
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            manifests: 0,
            mounted: 0,
            streamed: 0,
            existed: 0,
            bytes_streamed: 0,
        },
    };
    check_destination_tag(dst, req, &m.digest).await?;
    c.children(&m).await?;
    let digest = dst
        .put_manifest(&req.dst_repo, &req.dst_ref, &m.media_type, m.bytes.clone())
        .await
        .map_err(|e| {
            ClientError::context(format!("pushing the manifest to {}", req.dst_shown), e)
        })?;
    let mut report = c.report;
    report.manifests += 1;
    report.digest = digest;
    Ok(report)
}
