//! OCI primitives: digests with incremental hashing, repository names, tags, references (manifest
//! references and full `registry/repo:tag@digest` ones), media types, manifest validation, spec
//! error codes. No I/O.

mod descriptor;
mod digest;
mod error;
mod manifest;
mod name;
mod reference;

pub use descriptor::{media_types, Descriptor};
pub use digest::{Algorithm, Digest, DigestHasher, Hex};
pub use error::{error_body, ErrorCode, OciError};
pub use manifest::{parse_manifest, ManifestKind, ParsedManifest};
pub use name::{Reference, RepoName, Tag};
pub use reference::{split_tag, ImageReference, ReferenceParts};

#[cfg(test)]
mod tests;
