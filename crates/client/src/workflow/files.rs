//! Generic artifacts made of plain files, as `oras push` and `oras attach` make them: an OCI
//! image manifest with an `artifactType`, the empty config (`{}`), one layer per file titled
//! with the file's name (`org.opencontainers.image.title`), and for an attachment a `subject`.
//! No creation time is recorded, so the same files give the same manifest digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ocireg_oci::{media_types, Algorithm, Descriptor, Digest, DigestHasher, Reference, RepoName};
use serde::Serialize;

use super::progress::{finish, CountingReader, Progress};
use crate::artifact::annotations;
use crate::error::ClientError;
use crate::push::PushOutcome;
use crate::registry::Registry;
use crate::source::BlobSource;

/// The media type of a file layer (what `oras push` gives a file without a type).
pub const FILE_LAYER_MEDIA_TYPE: &str = media_types::OCI_LAYER_TAR;

/// A generic artifact to push.
#[derive(Debug, Clone)]
pub struct FilesRequest {
    /// The destination repository.
    pub repo: RepoName,
    /// Where the manifest goes: a tag, or (for an attachment) its own digest.
    pub reference: Option<Reference>,
    /// The manifest's `artifactType`.
    pub artifact_type: String,
    /// The files, one layer each, in this order.
    pub files: Vec<PathBuf>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The manifest this one refers to (`oras attach`).
    pub subject: Option<Descriptor>,
    /// Whether a tag holding another manifest may be moved.
    pub allow_overwrite: bool,
    /// How the destination is named in messages.
    pub shown: String,
}

/// What a generic push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesReport {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// The layers pushed, in order.
    pub layers: Vec<Descriptor>,
    /// Blobs uploaded (the others were present).
    pub blobs_uploaded: u32,
    /// The tag already held this manifest.
    pub unchanged: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'static str,
    artifact_type: &'a str,
    config: Descriptor,
    layers: &'a [Descriptor],
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// The empty config descriptor (`{}`).
fn empty_config() -> Descriptor {
    Descriptor::new(
        media_types::OCI_EMPTY,
        Digest::compute(Algorithm::Sha256, media_types::OCI_EMPTY_JSON),
        media_types::OCI_EMPTY_JSON.len() as u64,
    )
}

/// The manifest bytes for `layers`.
pub fn files_manifest(
    artifact_type: &str,
    layers: &[Descriptor],
    subject: Option<&Descriptor>,
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<u8>, ClientError> {
    Ok(serde_json::to_vec(&ManifestJson {
        schema_version: 2,
        media_type: media_types::OCI_MANIFEST,
        artifact_type,
        config: empty_config(),
        layers,
        subject,
        annotations,
    })?)
}

/// The SHA-256 digest and size of a file's content (blocking).
pub(crate) fn hash_file(path: &Path) -> Result<(Digest, u64), ClientError> {
    use std::io::Read;
    let io = |e| ClientError::local_io(format!("reading {}", path.display()), e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let size = hasher.bytes_hashed();
    Ok((hasher.finish(), size))
}

/// Hashes one file into its layer descriptor (a regular file only: a directory is packed by
/// `push KIND PATH`). Two files with the same name would clash when pulled: refused.
fn describe_file(path: &Path) -> Result<Descriptor, ClientError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ClientError::local_io(format!("reading {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(ClientError::UnsupportedSource {
            path: path.to_path_buf(),
            reason: "not a regular file (push a directory as KIND PATH)".into(),
        });
    }
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        ClientError::UnsupportedSource {
            path: path.to_path_buf(),
            reason: "the file name is not valid UTF-8".into(),
        }
    })?;
    let (digest, size) = hash_file(path)?;
    let mut d = Descriptor::new(FILE_LAYER_MEDIA_TYPE, digest, size);
    d.annotations = Some(BTreeMap::from([(
        annotations::TITLE.to_owned(),
        name.to_owned(),
    )]));
    Ok(d)
}

/// The layer descriptors of `files`, in order; two files of one name are refused.
pub fn describe_files(files: &[PathBuf]) -> Result<Vec<Descriptor>, ClientError> {
    let mut names = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let d = describe_file(f)?;
        let title = d
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::TITLE))
            .cloned()
            .unwrap_or_default();
        if !names.insert(title.clone()) {
            return Err(ClientError::InvalidOption(format!(
                "two files are named {title:?}; each layer is titled by its file name"
            )));
        }
        out.push(d);
    }
    Ok(out)
}

/// Pushes `req.files` as a generic artifact: the layers (skipping blobs present), the empty
/// config, then the manifest under `req.reference` (its digest when none). A tag holding another
/// manifest is refused unless `req.allow_overwrite`; checked before anything is uploaded.
pub async fn push_files(
    reg: &Registry,
    req: &FilesRequest,
    progress: &dyn Progress,
) -> Result<FilesReport, ClientError> {
    if req.files.is_empty() {
        return Err(ClientError::InvalidOption("no files to push".into()));
    }
    let layers = tokio::task::block_in_place(|| describe_files(&req.files))?;
    let manifest = files_manifest(
        &req.artifact_type,
        &layers,
        req.subject.as_ref(),
        &req.annotations,
    )?;
    let digest = Digest::compute(Algorithm::Sha256, &manifest);
    let reference = req
        .reference
        .clone()
        .unwrap_or_else(|| Reference::Digest(digest.clone()));
    if let Reference::Tag(_) = &reference {
        let existing = reg
            .head_manifest(&req.repo, &reference, &[])
            .await
            .map_err(|e| ClientError::context(format!("checking {}", req.shown), e))?;
        match existing {
            Some(e) if e.digest == digest => {
                return Ok(FilesReport {
                    digest,
                    size: manifest.len() as u64,
                    layers,
                    blobs_uploaded: 0,
                    unchanged: true,
                })
            }
            Some(e) if !req.allow_overwrite => {
                return Err(ClientError::TagInUse {
                    shown: req.shown.clone(),
                    existing: e.digest,
                })
            }
            _ => {}
        }
    }
    let mut uploaded = 0u32;
    for (d, path) in layers.iter().zip(&req.files) {
        let meter = progress.meter(&format!("{}", path.display()), d.size);
        let source = match &meter {
            Some(m) => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| ClientError::local_io(format!("opening {}", path.display()), e))?;
                BlobSource::Reader(Box::new(CountingReader::new(f, m.clone())))
            }
            None => BlobSource::Path(path.clone()),
        };
        let outcome = reg.push_blob(&req.repo, &d.digest, d.size, source).await;
        finish(meter.as_ref());
        let outcome =
            outcome.map_err(|e| ClientError::context(format!("pushing {}", path.display()), e))?;
        uploaded += u32::from(outcome == PushOutcome::Uploaded);
    }
    let cfg = empty_config();
    let outcome = reg
        .push_blob(
            &req.repo,
            &cfg.digest,
            cfg.size,
            BlobSource::Bytes(Bytes::from_static(media_types::OCI_EMPTY_JSON)),
        )
        .await
        .map_err(|e| ClientError::context("pushing the empty config", e))?;
    uploaded += u32::from(outcome == PushOutcome::Uploaded);
    let size = manifest.len() as u64;
    let digest = reg
        .put_manifest(
            &req.repo,
            &reference,
            media_types::OCI_MANIFEST,
            Bytes::from(manifest),
        )
        .await
        .map_err(|e| ClientError::context(format!("pushing the manifest to {}", req.shown), e))?;
    Ok(FilesReport {
        digest,
        size,
        layers,
        blobs_uploaded: uploaded,
        unchanged: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_shape_and_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, b"hello").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a.txt"), b"x").unwrap();
        let layers = describe_files(std::slice::from_ref(&a)).unwrap();
        assert_eq!(layers[0].size, 5);
        assert_eq!(
            layers[0].digest,
            Digest::compute(Algorithm::Sha256, b"hello")
        );
        let subject = Descriptor::new(
            media_types::OCI_MANIFEST,
            Digest::compute(Algorithm::Sha256, b"s"),
            1,
        );
        let m = files_manifest("x/y", &layers, Some(&subject), &BTreeMap::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["artifactType"], "x/y");
        assert_eq!(v["config"]["mediaType"], media_types::OCI_EMPTY);
        assert_eq!(v["layers"][0]["annotations"][annotations::TITLE], "a.txt");
        assert_eq!(v["subject"]["digest"], subject.digest.to_string());
        assert!(v.get("annotations").is_none());
        let parsed = ocireg_oci::parse_manifest(&m, None).unwrap();
        assert_eq!(parsed.subject.unwrap().digest, subject.digest);
        let err = describe_files(&[a, sub.join("a.txt")]).unwrap_err();
        assert!(err.to_string().contains("two files are named"), "{err}");
        assert!(describe_files(&[sub]).is_err());
    }
}
