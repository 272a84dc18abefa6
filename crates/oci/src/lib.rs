//! OCI primitives: digests with incremental hashing, repository names, tags, references, media
//! types, manifest validation, spec error codes. No I/O.

mod descriptor;
mod digest;
mod error;
mod manifest;
mod name;

pub use descriptor::{media_types, Descriptor};
pub use digest::{Algorithm, Digest, DigestHasher};
pub use error::{error_body, ErrorCode, OciError};
pub use manifest::{parse_manifest, ManifestKind, ParsedManifest};
pub use name::{Reference, RepoName, Tag};

#[cfg(test)]
mod tests;
