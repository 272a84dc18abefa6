//! `ocireg copy SRC DST`: copies a manifest (an index with its child manifests) and its blobs.
//! Within one registry blobs are mounted across repositories; between registries they are
//! streamed from the source straight into the destination upload (one bounded pipe, nothing on
//! disk), verified at both ends.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use ocireg_client::{BlobSource, Manifest, Registry};
use ocireg_oci::{Descriptor, Reference, RepoName};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::refs::{display, parse_ref};
use super::settings::Ctx;
use super::ui::{self, CountingReader, Ui};
use super::CopyArgs;

/// Size of the in-memory pipe between the download and the upload of a streamed blob.
const PIPE_BYTES: usize = 1 << 20;

/// The two ends of a copy.
struct Copier {
    src: Registry,
    src_repo: RepoName,
    dst: Registry,
    dst_repo: RepoName,
    same_registry: bool,
    ui: Ui,
    mounted: u64,
    streamed: u64,
    existed: u64,
    bytes: u64,
    manifests: u64,
}

impl Copier {
    /// Streams one blob from the source into the destination.
    async fn stream(&mut self, d: &Descriptor) -> anyhow::Result<()> {
        let (mut w, r) = tokio::io::duplex(PIPE_BYTES);
        let src = self.src.clone();
        let repo = self.src_repo.clone();
        let digest = d.digest.clone();
        let download = tokio::spawn(async move {
            let res = src.pull_blob(&repo, &digest, &mut w).await;
            let _ = w.shutdown().await;
            res
        });
        let bar = self.ui.bar(d.size, "blob");
        let reader: Box<dyn AsyncRead + Send + Unpin> = match &bar {
            Some(b) => Box::new(CountingReader::new(r, b.clone())),
            None => Box::new(r),
        };
        let pushed = self
            .dst
            .push_blob(
                &self.dst_repo,
                &d.digest,
                d.size,
                BlobSource::Reader(reader),
            )
            .await;
        ui::finish(bar.as_ref());
        let pulled = download.await.context("the download task failed")?;
        match (pulled, pushed) {
            (Err(e), _) if !matches!(e, ocireg_client::ClientError::Io { .. }) => {
                Err(e).with_context(|| format!("downloading blob {}", d.digest))
            }
            (_, Err(e)) => Err(e).with_context(|| format!("uploading blob {}", d.digest)),
            (Err(e), Ok(_)) => Err(e).with_context(|| format!("downloading blob {}", d.digest)),
            (Ok(_), Ok(_)) => Ok(()),
        }
    }

    /// Makes the destination hold one blob: already there, mounted, or streamed.
    async fn blob(&mut self, d: &Descriptor) -> anyhow::Result<()> {
        if self.dst.blob_exists(&self.dst_repo, &d.digest).await? {
            self.existed += 1;
            return Ok(());
        }
        if self.same_registry
            && self
                .dst
                .mount_blob(&self.dst_repo, &d.digest, &self.src_repo)
                .await?
        {
            self.mounted += 1;
            return Ok(());
        }
        self.stream(d).await?;
        self.streamed += 1;
        self.bytes += d.size;
        Ok(())
    }

    /// Copies everything `m` references (child manifests first, pushed by digest), not `m`.
    fn children<'a>(
        &'a mut self,
        m: &'a Manifest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>> {
        Box::pin(async move {
            let parsed = ocireg_oci::parse_manifest(&m.bytes, Some(&m.media_type))
                .map_err(|e| anyhow::anyhow!("manifest {}: {e}", m.digest))?;
            for child in parsed.manifest_refs() {
                let r = Reference::Digest(child.digest.clone());
                let cm = self.src.get_manifest(&self.src_repo, &r, &[]).await?;
                self.children(&cm).await?;
                self.dst
                    .put_manifest(&self.dst_repo, &r, &cm.media_type, cm.bytes.clone())
                    .await
                    .with_context(|| format!("pushing manifest {}", cm.digest))?;
                self.manifests += 1;
            }
            for b in parsed.blob_refs() {
                self.blob(b).await?;
            }
            Ok(())
        })
    }
}

/// Runs `ocireg copy SRC DST`.
pub(crate) async fn run(ctx: &Ctx, a: CopyArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let src = parse_ref(&a.src)?;
    let dst = parse_ref(&a.dst)?;
    let src_ep = ctx.endpoint(src.registry.as_deref(), src.scheme);
    let dst_ep = ctx.endpoint(dst.registry.as_deref(), dst.scheme);
    let src_ref = src.reference()?;
    let dst_ref = match (&dst.tag, &dst.digest, &src.tag) {
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
    let m = s
        .get_manifest(&src.repo, &src_ref, &[])
        .await
        .with_context(|| format!("fetching {}", display(&src_ep.host, &src.repo, &src_ref)))?;
    let mut c = Copier {
        src: s,
        src_repo: src.repo.clone(),
        dst: d,
        dst_repo: dst.repo.clone(),
        same_registry,
        ui,
        mounted: 0,
        streamed: 0,
        existed: 0,
        bytes: 0,
        manifests: 0,
    };
    c.children(&m).await?;
    let shown_dst = display(&dst_ep.host, &dst.repo, &dst_ref);
    let digest = c
        .dst
        .put_manifest(&dst.repo, &dst_ref, &m.media_type, m.bytes.clone())
        .await
        .with_context(|| format!("pushing the manifest to {shown_dst}"))?;
    c.manifests += 1;
    let shown_src = display(&src_ep.host, &src.repo, &src_ref);
    let json = json!({
        "source": shown_src,
        "destination": shown_dst,
        "digest": digest.to_string(),
        "mediaType": m.media_type,
        "manifests": c.manifests,
        "blobs": { "mounted": c.mounted, "streamed": c.streamed, "existed": c.existed },
        "bytesStreamed": c.bytes,
    });
    let text = format!(
        "copied {shown_src} -> {shown_dst}\ndigest: {digest}\nblobs: {} streamed ({}), {} mounted, {} already present",
        c.streamed,
        ui::human(c.bytes),
        c.mounted,
        c.existed
    );
    ui.result(&json, &digest.to_string(), &text);
    Ok(0)
}
