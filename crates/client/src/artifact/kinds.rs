//! Artifact kinds, their `artifactType` and config media types, the annotation keys, and the
//! kind → namespace mapping.

use std::fmt;
use std::str::FromStr;

use super::{ClientError, Result};

/// `artifactType` of every `custom:KEY` artifact (the key travels in an annotation).
pub const CUSTOM_ARTIFACT_TYPE: &str = "application/vnd.provisioning.custom.v1";
/// Config media type of every `custom:KEY` artifact.
pub const CUSTOM_CONFIG_MEDIA_TYPE: &str = "application/vnd.provisioning.custom.config.v1+json";

/// Annotation keys written on artifact manifests.
pub mod annotations {
    /// Standard: human-readable title (the artifact name; on the layer, its file name).
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// Standard: version of the packaged software.
    pub const VERSION: &str = "org.opencontainers.image.version";
    /// Standard: creation time, RFC 3339.
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// The artifact kind as given on the command line (`extension`, `custom:foo`, ...).
    pub const KIND: &str = "dev.provisioning.artifact.kind";
    /// The key of a `custom:KEY` kind.
    pub const CUSTOM_KEY: &str = "dev.provisioning.artifact.custom-key";
    /// On a layer stored uncompressed although compression was enabled: why (it would not pay).
    pub const COMPRESSION_SKIPPED: &str = "dev.provisioning.artifact.compression-skipped";
    /// Prefix reserved for this module's own annotations; callers may not set keys under it.
    pub const RESERVED_PREFIX: &str = "dev.provisioning.artifact.";
}

/// What an artifact is; decides its namespace, `artifactType` and config media type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArtifactKind {
    /// Providers, taskservs, clusters.
    Extension,
    /// A KCL package.
    KclPackage,
    /// A platform service image (orchestrator, control-center, ...).
    PlatformImage,
    /// A test environment image.
    TestImage,
    /// A user-defined kind, mapped through `namespaces.custom[KEY]`.
    Custom(String),
}

impl ArtifactKind {
    /// Parses `extension`, `kcl-package`, `platform-image`, `test-image` or `custom:KEY`
    /// (KEY: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`).
    pub fn parse(s: &str) -> Result<ArtifactKind> {
        match s {
            "extension" => Ok(ArtifactKind::Extension),
            "kcl-package" => Ok(ArtifactKind::KclPackage),
            "platform-image" => Ok(ArtifactKind::PlatformImage),
            "test-image" => Ok(ArtifactKind::TestImage),
            other => match other.strip_prefix("custom:") {
                Some(key) if custom_key_ok(key) => Ok(ArtifactKind::Custom(key.to_owned())),
                _ => Err(ClientError::InvalidKind(other.to_owned())),
            },
        }
    }

    /// The kind as written on the command line and in the `kind` annotation.
    pub fn as_string(&self) -> String {
        match self {
            ArtifactKind::Custom(key) => format!("custom:{key}"),
            other => other.base_name().to_owned(),
        }
    }

    /// The kind without its custom key: `extension`, ..., `custom`.
    pub fn base_name(&self) -> &'static str {
        match self {
            ArtifactKind::Extension => "extension",
            ArtifactKind::KclPackage => "kcl-package",
            ArtifactKind::PlatformImage => "platform-image",
            ArtifactKind::TestImage => "test-image",
            ArtifactKind::Custom(_) => "custom",
        }
    }

    /// The custom key, for `custom:KEY` kinds.
    pub fn custom_key(&self) -> Option<&str> {
        match self {
            ArtifactKind::Custom(key) => Some(key),
            _ => None,
        }
    }

    /// The manifest `artifactType` of this kind.
    pub fn artifact_type(&self) -> &'static str {
        match self {
            ArtifactKind::Extension => "application/vnd.provisioning.extension.v1",
            ArtifactKind::KclPackage => "application/vnd.provisioning.kcl-package.v1",
            ArtifactKind::PlatformImage => "application/vnd.provisioning.platform-image.v1",
            ArtifactKind::TestImage => "application/vnd.provisioning.test-image.v1",
            ArtifactKind::Custom(_) => CUSTOM_ARTIFACT_TYPE,
        }
    }

    /// The media type of this kind's config blob.
    pub fn config_media_type(&self) -> &'static str {
        match self {
            ArtifactKind::Extension => "application/vnd.provisioning.extension.config.v1+json",
            ArtifactKind::KclPackage => "application/vnd.provisioning.kcl-package.config.v1+json",
            ArtifactKind::PlatformImage => {
                "application/vnd.provisioning.platform-image.config.v1+json"
            }
            ArtifactKind::TestImage => "application/vnd.provisioning.test-image.config.v1+json",
            ArtifactKind::Custom(_) => CUSTOM_CONFIG_MEDIA_TYPE,
        }
    }

    /// The kind an `artifactType` (plus, for custom artifacts, the custom-key annotation)
    /// stands for; `None` for foreign artifact types.
    pub fn from_artifact_type(artifact_type: &str, custom_key: Option<&str>) -> Option<Self> {
        let kind = match artifact_type {
            "application/vnd.provisioning.extension.v1" => ArtifactKind::Extension,
            "application/vnd.provisioning.kcl-package.v1" => ArtifactKind::KclPackage,
            "application/vnd.provisioning.platform-image.v1" => ArtifactKind::PlatformImage,
            "application/vnd.provisioning.test-image.v1" => ArtifactKind::TestImage,
            CUSTOM_ARTIFACT_TYPE => {
                let key = custom_key.filter(|k| custom_key_ok(k))?;
                ArtifactKind::Custom(key.to_owned())
            }
            _ => return None,
        };
        Some(kind)
    }
}

fn custom_key_ok(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl FromStr for ArtifactKind {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self> {
        ArtifactKind::parse(s)
    }
}

/// The namespace an artifact of `kind` is pushed to, given the four `registry.namespaces` names
/// and the `namespaces.custom` map (any `(key, namespace)` iterator: `&IndexMap`, `&BTreeMap`,
/// a slice of pairs). An unknown custom key is an error listing the configured keys.
pub fn namespace_for<I, K, V>(
    kind: &ArtifactKind,
    extensions: &str,
    kcl_packages: &str,
    platform_images: &str,
    test_images: &str,
    custom: I,
) -> Result<String>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let fixed = match kind {
        ArtifactKind::Extension => extensions,
        ArtifactKind::KclPackage => kcl_packages,
        ArtifactKind::PlatformImage => platform_images,
        ArtifactKind::TestImage => test_images,
        ArtifactKind::Custom(key) => {
            let mut known = Vec::new();
            for (k, v) in custom {
                if k.as_ref() == key {
                    return Ok(v.as_ref().to_owned());
                }
                known.push(k.as_ref().to_owned());
            }
            known.sort();
            return Err(ClientError::UnknownCustomNamespace {
                key: key.clone(),
                known,
            });
        }
    };
    Ok(fixed.to_owned())
}
