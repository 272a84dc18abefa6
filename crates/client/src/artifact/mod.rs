//! Platform artifacts as OCI artifacts: kinds and their media types, deterministic packing of a
//! file or directory into one tar layer (+ config blob + image manifest), safe unpacking, and a
//! content-addressed pull cache with the three pull policies. Pure library code: no network.
//!
//! The on-wire format, the determinism rules, the unpack safety rules and the cache layout are
//! documented in `docs/artifacts.md`.

mod cache;
mod cache_writer;
mod compress;
mod hashio;
mod kinds;
mod manifest;
mod pack;
mod paths;
mod pipe;
mod policy;
mod unpack;

use std::time::{Duration, SystemTime};

// The crate's one error type; the submodules take both from here.
use crate::error::{ClientError, Result};

pub use cache::{BlobStatus, Cache, CacheOptions, CacheStats, CachedBlob, RefEntry};
pub use cache_writer::BlobWriter;
pub use compress::{skip_reason as compression_skip_reason, SAMPLE_BYTES, WORTHWHILE_RATIO};
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

/// Refuses a push when `require_signing` is set: this client does not sign artifacts, and an
/// unsigned push must not pretend to satisfy the policy.
pub fn check_push_signing(require_signing: bool) -> Result<()> {
    if require_signing {
        Err(ClientError::SigningUnsupported)
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
