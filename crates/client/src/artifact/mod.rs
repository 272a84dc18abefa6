//! Platform artifacts as OCI artifacts: kinds and their media types, deterministic packing of a
//! file or directory into one tar layer (+ config blob + image manifest), safe unpacking, and a
//! content-addressed pull cache with the three pull policies. Pure library code: no network.
//!
//! The on-wire format, the determinism rules, the unpack safety rules and the cache layout are
//! documented in `docs/artifacts.md`.

mod cache;
mod cache_writer;
mod hashio;
mod kinds;
mod manifest;
mod pack;
mod paths;
mod pipe;
mod policy;
mod unpack;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ocireg_oci::Digest;

pub use cache::{BlobStatus, Cache, CacheOptions, CacheStats, CachedBlob, RefEntry};
pub use cache_writer::BlobWriter;
pub use kinds::{
    annotations, namespace_for, ArtifactKind, CUSTOM_ARTIFACT_TYPE, CUSTOM_CONFIG_MEDIA_TYPE,
};
pub use manifest::{ArtifactConfig, LayerInfo, CONFIG_SCHEMA_VERSION};
pub use pack::{
    pack, pack_to_writer, Blob, BlobFile, PackOptions, PackStats, PackedArtifact, PackedStream,
    TAR_MTIME,
};
pub use pipe::{pipe, PipeReader, PipeWriter, TeeReader, PIPE_BLOCK};
pub use policy::{decide, PullDecision, PullPolicy, PullPolicyExt, RefLookup};
pub use unpack::{unpack, unpack_staged, StagedUnpack, UnpackReport};

/// Everything that can go wrong while packing, unpacking or using the pull cache.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// An I/O operation failed; `context` says which one and on what path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The artifact kind string is not one of the known kinds.
    #[error("unknown artifact kind {0:?}: expected extension, kcl-package, platform-image, test-image or custom:KEY")]
    InvalidKind(String),
    /// A `custom:KEY` kind names a key absent from the custom namespace map.
    #[error("no namespace configured for custom artifact kind {key:?}; known custom keys: {}", known_list(.known))]
    UnknownCustomNamespace {
        /// The key asked for.
        key: String,
        /// The keys that are configured.
        known: Vec<String>,
    },
    /// An option has a value outside its range (compression level, reserved annotation, ...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A source path cannot be packed (special file, non-UTF-8 name, escaping symlink, ...).
    #[error("cannot pack {path}: {reason}")]
    UnsupportedSource {
        /// The offending path on disk.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A layer media type that this module cannot unpack.
    #[error("unsupported layer media type {0:?} (expected an OCI tar or tar+gzip layer)")]
    UnsupportedMediaType(String),
    /// An archive entry was refused by the unpack safety rules; nothing was written to the
    /// destination.
    #[error("unsafe archive entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as stored in the archive.
        path: String,
        /// The rule it broke.
        reason: String,
    },
    /// The unpack destination exists and is not an empty directory.
    #[error("destination {0} exists and is not an empty directory")]
    DestinationNotEmpty(PathBuf),
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// A registry, repository or tag cannot be used as a cache key.
    #[error("invalid cache key: {0}")]
    InvalidCacheKey(String),
    /// Pull policy `never` and the reference (or one of its blobs) is not in the cache.
    #[error("{what} is not in the local cache and the pull policy is \"never\"; pull it with policy \"if-not-present\" or \"always\" first")]
    NotCached {
        /// The reference or blob that is missing.
        what: String,
    },
    /// Pull policy `never` and the cached tag entry is older than the cache TTL.
    #[error("cached entry for {reference} expired ({age_secs}s old, cache_ttl is {ttl_secs}s) and the pull policy is \"never\"; refresh it with policy \"if-not-present\" or \"always\", or pull by digest")]
    CacheExpired {
        /// The reference whose entry expired.
        reference: String,
        /// Age of the entry in seconds.
        age_secs: u64,
        /// The configured TTL in seconds.
        ttl_secs: u64,
    },
    /// `push_policy.require_signing` is set, and this client does not sign artifacts.
    #[error("push_policy.require_signing is enabled, but ocireg does not sign artifacts; refusing to push unsigned content: set require_signing = false to push")]
    SigningUnsupported,
    /// JSON (de)serialisation failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none (registry.namespaces.custom is empty)".to_owned()
    } else {
        known.join(", ")
    }
}

impl ArtifactError {
    /// An [`ArtifactError::Io`] with a context message naming `path`.
    pub(crate) fn io(what: &str, path: &Path, source: io::Error) -> ArtifactError {
        ArtifactError::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// Refuses a push when `require_signing` is set: this client does not sign artifacts, and an
/// unsigned push must not pretend to satisfy the policy.
pub fn check_push_signing(require_signing: bool) -> Result<()> {
    if require_signing {
        Err(ArtifactError::SigningUnsupported)
    } else {
        Ok(())
    }
}

/// Seconds elapsed from `earlier` to `later`, 0 when `later` is not after `earlier`.
pub(crate) fn age_between(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
