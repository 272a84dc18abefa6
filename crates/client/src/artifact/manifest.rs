//! The artifact config blob (JSON) and the OCI image manifest that ties config and layer.

use std::collections::BTreeMap;

use ocireg_oci::{media_types, Algorithm, Descriptor, Digest};
use serde::{Deserialize, Serialize};

use super::kinds::{annotations, ArtifactKind};
use super::{ClientError, Result};

/// Version of the config JSON layout described in `docs/artifacts.md`.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

/// The config blob of an artifact: what it is and what its layer holds. Serialised compactly
/// with fields in declaration order, so equal inputs give equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactConfig {
    /// Layout version, [`CONFIG_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The kind as written on the command line: `extension`, `custom:foo`, ...
    pub kind: String,
    /// The key of a `custom:KEY` kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key: Option<String>,
    /// Artifact name.
    pub name: String,
    /// Artifact version, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Creation time (RFC 3339, UTC), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `"file"` when a single file was packed, `"directory"` for a directory.
    pub source: String,
    /// Number of regular files in the layer.
    pub files: u64,
    /// Number of directories in the layer (the packed directory itself not counted).
    pub directories: u64,
    /// Number of symlinks in the layer.
    pub symlinks: u64,
    /// Sum of the regular files' sizes in bytes.
    pub total_size: u64,
    /// How the layer is encoded.
    pub layer: LayerInfo,
}

/// Layer facts recorded in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// The layer's media type.
    pub media_type: String,
    /// `"none"` or `"gzip"`.
    pub compression: String,
    /// The gzip level (0-9), when compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u32>,
    /// Why the layer is uncompressed although compression was enabled (it would not pay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_skipped: Option<String>,
    /// Digest of the uncompressed tar stream (stable across gzip implementations).
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream in bytes.
    pub tar_size: u64,
}

impl ArtifactConfig {
    /// Serialises the config to its canonical compact JSON bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Parses config bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ArtifactConfig> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'static str,
    artifact_type: &'static str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 1],
    annotations: &'a BTreeMap<String, String>,
}

/// The manifest annotations: ours first (title, version, created, kind, custom key), then the
/// caller's, which may override the `org.opencontainers.image.*` ones but not the reserved
/// `dev.provisioning.artifact.*` keys.
pub(crate) fn manifest_annotations(
    kind: &ArtifactKind,
    name: &str,
    version: Option<&str>,
    created: Option<&str>,
    extra: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    out.insert(annotations::TITLE.to_owned(), name.to_owned());
    if let Some(v) = version {
        out.insert(annotations::VERSION.to_owned(), v.to_owned());
    }
    if let Some(c) = created {
        out.insert(annotations::CREATED.to_owned(), c.to_owned());
    }
    out.insert(annotations::KIND.to_owned(), kind.as_string());
    if let Some(key) = kind.custom_key() {
        out.insert(annotations::CUSTOM_KEY.to_owned(), key.to_owned());
    }
    for (k, v) in extra {
        if k.is_empty() {
            return Err(ClientError::InvalidOption(
                "annotation keys must not be empty".to_owned(),
            ));
        }
        if k.starts_with(annotations::RESERVED_PREFIX) {
            return Err(ClientError::InvalidOption(format!(
                "annotation {k:?} uses the reserved prefix {:?}",
                annotations::RESERVED_PREFIX
            )));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// Builds the image manifest bytes and their descriptor (with `artifactType`).
pub(crate) fn build_manifest(
    kind: &ArtifactKind,
    config: &Descriptor,
    layer: &Descriptor,
    annotations: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, Descriptor)> {
    let json = ManifestJson {
        schema_version: 2,
        media_type: media_types::OCI_MANIFEST,
        artifact_type: kind.artifact_type(),
        config,
        layers: [layer],
        annotations,
    };
    let bytes = serde_json::to_vec(&json)?;
    let mut desc = Descriptor::new(
        media_types::OCI_MANIFEST,
        Digest::compute(Algorithm::Sha256, &bytes),
        bytes.len() as u64,
    );
    desc.artifact_type = Some(kind.artifact_type().to_owned());
    Ok((bytes, desc))
}
