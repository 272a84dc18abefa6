//! Copying between a registry and an OCI image layout directory (`oci:DIR:TAG`), both ways:
//! manifests with their children and blobs, each blob verified against its digest (downloads
//! while streaming into the layout, uploads by the registry and, for small blobs, by us).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use ocireg_oci::{Descriptor, Digest, Reference, RepoName};

use super::progress::{finish, CountingReader, Progress};
use crate::error::ClientError;
use crate::layout::OciLayout;
use crate::registry::Registry;
use crate::source::BlobSource;

/// The registry side of a layout copy.
#[derive(Debug, Clone)]
pub struct RegistrySide {
    /// The repository.
    pub repo: RepoName,
    /// The manifest (source) or where it goes (destination: a tag, or its digest).
    pub reference: Reference,
    /// How it is named in messages.
    pub shown: String,
}

/// What a layout copy did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayoutCopyReport {
    /// The digest of the copied manifest.
    pub digest: Option<Digest>,
    /// Its media type.
    pub media_type: String,
    /// Manifests written (an index's children and the manifest itself).
    pub manifests: u64,
    /// Blobs copied.
    pub copied: u64,
    /// Blobs the destination already had.
    pub existed: u64,
    /// Bytes copied.
    pub bytes: u64,
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send + 'a>>;

struct ToLayout<'a> {
    reg: &'a Registry,
    repo: &'a RepoName,
    layout: &'a OciLayout,
    progress: &'a dyn Progress,
    report: LayoutCopyReport,
}

impl ToLayout<'_> {
    async fn blob(&mut self, d: &Descriptor) -> Result<(), ClientError> {
        if self.layout.has_blob(d) {
            self.report.existed += 1;
            return Ok(());
        }
        let path = self.layout.blob_path(&d.digest);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ClientError::local_io(format!("creating {}", dir.display()), e))?;
        }
        let meter = self.progress.meter("blob", d.size);
        let res = self
            .reg
            .pull_blob_to_file(self.repo, &d.digest, &path)
            .await;
        finish(meter.as_ref());
        let n =
            res.map_err(|e| ClientError::context(format!("downloading blob {}", d.digest), e))?;
        if n != d.size {
            let _ = std::fs::remove_file(&path);
            return Err(ClientError::SizeMismatch {
                what: format!("blob {}", d.digest),
                expected: d.size,
                actual: n,
            });
        }
        self.report.copied += 1;
        self.report.bytes += n;
        Ok(())
    }

    /// Writes the manifest `digest` (fetched from the registry), its children and its blobs;
    /// returns its media type and size.
    fn manifest<'a>(&'a mut self, reference: &'a Reference, out: &'a mut Descriptor) -> Step<'a> {
        Box::pin(async move {
            let m = self.reg.get_manifest(self.repo, reference, &[]).await?;
            let parsed = ocireg_oci::parse_manifest(&m.bytes, Some(&m.media_type))
                .map_err(|e| ClientError::Invalid(format!("manifest {}: {e}", m.digest)))?;
            for child in parsed.manifest_refs() {
                let mut cd = child.clone();
                self.manifest(&Reference::Digest(child.digest.clone()), &mut cd)
                    .await?;
            }
            for b in parsed.blob_refs() {
                self.blob(b).await?;
            }
            self.layout.write_blob(&m.digest, &m.bytes)?;
            self.report.manifests += 1;
            *out = Descriptor::new(m.media_type.clone(), m.digest.clone(), m.bytes.len() as u64);
            Ok(())
        })
    }
}

/// Copies `src` of `reg` into the layout, listed in its `index.json` under `tag` (untagged
/// when `None`).
pub async fn copy_to_layout(
    reg: &Registry,
    src: &RegistrySide,
    layout: &OciLayout,
    tag: Option<&str>,
    progress: &dyn Progress,
) -> Result<LayoutCopyReport, ClientError> {
    let mut c = ToLayout {
        reg,
        repo: &src.repo,
        layout,
        progress,
        report: LayoutCopyReport::default(),
    };
    let mut desc = Descriptor::new("", Digest::compute(ocireg_oci::Algorithm::Sha256, b""), 0);
    c.manifest(&src.reference, &mut desc)
        .await
        .map_err(|e| ClientError::context(format!("copying {}", src.shown), e))?;
    let mut report = c.report;
    report.digest = Some(desc.digest.clone());
    report.media_type = desc.media_type.clone();
    layout.set_ref(tag, desc)?;
    Ok(report)
}

struct FromLayout<'a> {
    reg: &'a Registry,
    repo: &'a RepoName,
    layout: &'a OciLayout,
    progress: &'a dyn Progress,
    report: LayoutCopyReport,
}

impl FromLayout<'_> {
    async fn blob(&mut self, d: &Descriptor) -> Result<(), ClientError> {
        if self.reg.blob_exists(self.repo, &d.digest).await? {
            self.report.existed += 1;
            return Ok(());
        }
        let path = self.layout.blob_path(&d.digest);
        let meter = self.progress.meter("blob", d.size);
        let source = match &meter {
            Some(m) => {
                let f = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| ClientError::local_io(format!("opening {}", path.display()), e))?;
                BlobSource::Reader(Box::new(CountingReader::new(f, m.clone())))
            }
            None => BlobSource::Path(path.clone()),
        };
        let res = self
            .reg
            .push_blob(self.repo, &d.digest, d.size, source)
            .await;
        finish(meter.as_ref());
        res.map_err(|e| ClientError::context(format!("uploading blob {}", d.digest), e))?;
        self.report.copied += 1;
        self.report.bytes += d.size;
        Ok(())
    }

    /// Uploads everything manifest `bytes` references (children by digest), not the manifest.
    fn children<'a>(
        &'a mut self,
        digest: &'a Digest,
        bytes: &'a [u8],
        media_type: &'a str,
    ) -> Step<'a> {
        Box::pin(async move {
            let parsed = ocireg_oci::parse_manifest(bytes, Some(media_type))
                .map_err(|e| ClientError::Invalid(format!("manifest {digest}: {e}")))?;
            for child in parsed.manifest_refs() {
                let cb = self.layout.read_blob(&child.digest)?;
                self.children(&child.digest, &cb, &child.media_type).await?;
                self.reg
                    .put_manifest(
                        self.repo,
                        &Reference::Digest(child.digest.clone()),
                        &child.media_type,
                        Bytes::from(cb),
                    )
                    .await?;
                self.report.manifests += 1;
            }
            for b in parsed.blob_refs() {
                self.blob(b).await?;
            }
            Ok(())
        })
    }
}

/// Copies the manifest `tag` names in the layout (the only one when `None`) to `dst` of
/// `reg`. A destination tag holding another manifest is refused unless `allow_overwrite`
/// (the `push` rule), checked before any blob is uploaded.
pub async fn copy_from_layout(
    layout: &OciLayout,
    tag: Option<&str>,
    reg: &Registry,
    dst: &RegistrySide,
    allow_overwrite: bool,
    progress: &dyn Progress,
) -> Result<LayoutCopyReport, ClientError> {
    let desc = layout.resolve(tag)?;
    let bytes = layout.read_blob(&desc.digest)?;
    if let (Reference::Tag(_), false) = (&dst.reference, allow_overwrite) {
        let existing = reg
            .head_manifest(&dst.repo, &dst.reference, &[])
            .await
            .map_err(|e| ClientError::context(format!("checking {}", dst.shown), e))?;
        if let Some(e) = existing.filter(|e| e.digest != desc.digest) {
            return Err(ClientError::TagInUse {
                shown: dst.shown.clone(),
                existing: e.digest,
            });
        }
    }
    let mut c = FromLayout {
        reg,
        repo: &dst.repo,
        layout,
        progress,
        report: LayoutCopyReport::default(),
    };
    c.children(&desc.digest, &bytes, &desc.media_type).await?;
    let digest = reg
        .put_manifest(
            &dst.repo,
            &dst.reference,
            &desc.media_type,
            Bytes::from(bytes),
        )
        .await
        .map_err(|e| ClientError::context(format!("pushing the manifest to {}", dst.shown), e))?;
    let mut report = c.report;
    report.manifests += 1;
    report.digest = Some(digest);
    report.media_type = desc.media_type;
    Ok(report)
}
