//! The crate's one error type, covering both the driver layer and the registry semantics.

use ocireg_oci::{Digest, ErrorCode, OciError};
use serde_json::{json, Value};

/// Everything that can go wrong in storage or in registry semantics.
///
/// [`StoreError::code`] maps an error onto the spec's error code; `None` means an internal
/// failure (the server answers 500 and logs it).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Driver: no object under this key.
    #[error("storage object not found: {key}")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// Driver: the key is not a valid storage key (empty component, `.`/`..`, hidden name, ...).
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Driver: an I/O operation failed.
    #[error("storage {op} failed for {key}: {source}")]
    Io {
        /// The operation (`"read"`, `"rename"`, ...).
        op: &'static str,
        /// The key (or path) involved.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A byte range outside the object.
    #[error("range invalid: {message}")]
    RangeInvalid {
        /// What was wrong with the range.
        message: String,
    },
    /// An upload chunk that does not start at the session's offset.
    #[error("range invalid: {message}")]
    UploadRange {
        /// What was wrong with the chunk.
        message: String,
        /// The session's offset, as storage holds it (where the client resumes).
        offset: u64,
    },
    /// The blob is not linked in the repository.
    #[error("blob unknown to repository: {digest}")]
    BlobUnknown {
        /// The blob's digest.
        digest: Digest,
    },
    /// No such upload session in the repository.
    #[error("blob upload unknown: {session}")]
    UploadUnknown {
        /// The session id as given.
        session: String,
    },
    /// The content did not hash to the digest the client gave.
    #[error("digest mismatch: expected {expected}, computed {computed}")]
    DigestMismatch {
        /// The digest the client claimed.
        expected: Digest,
        /// The digest of the bytes received.
        computed: Digest,
    },
    /// A manifest references a blob or child manifest that the repository does not have.
    #[error("manifest references unknown {kind} {digest}")]
    ManifestBlobUnknown {
        /// `"blob"` or `"manifest"`.
        kind: &'static str,
        /// The missing digest.
        digest: Digest,
    },
    /// No manifest under this reference in the repository.
    #[error("manifest unknown: {reference}")]
    ManifestUnknown {
        /// The tag or digest asked for.
        reference: String,
    },
    /// The repository does not exist.
    #[error("repository name not known to registry: {name}")]
    NameUnknown {
        /// The repository name.
        name: String,
    },
    /// A spec error raised by `ocireg-oci` (invalid manifest, invalid digest, ...).
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The request body stream failed (client went away, length limit, ...).
    #[error("request body failed: {0}")]
    Body(#[source] std::io::Error),
    /// A push would exceed a storage or artifact quota (`DENIED`, 403).
    #[error("{message}")]
    QuotaExceeded {
        /// Names the quota, the limit, what is in use and what the push adds.
        message: String,
        /// Structured detail for the error envelope.
        detail: Value,
    },
    /// Driver: another process has the storage root open (one process per root).
    #[error("storage root {root} is in use by {holder}: one process per root (stop it, or let it do the work: `ocireg gc` and `ocireg scrub` ask a running server)")]
    RootInUse {
        /// The root directory.
        root: String,
        /// Who holds it (`process <pid>` when known).
        holder: String,
    },
    /// No room for new bytes: the storage's free space is below the configured reserve (a
    /// write that fails with `ENOSPC`/`EDQUOT` is an [`StoreError::Io`] that
    /// [`StoreError::storage_full`] recognises too). The server answers `507`.
    #[error("{message}")]
    StorageFull {
        /// Says the storage is full, how much is free and what the reserve is.
        message: String,
    },
    /// Driver: a conditional write ([`crate::driver::Driver::put_if`]) found the object absent
    /// when it had to exist at a version, present when it had to be absent, or at another
    /// version: another writer (possibly another process on the same storage) got there first.
    #[error("storage object {key} was changed by another writer")]
    PreconditionFailed {
        /// The object's key.
        key: String,
    },
    /// Driver: the storage cannot be reached or asks us to slow down (an object store that is
    /// down, unreachable or throttling), after the driver's own retries. Nothing was changed
    /// half-way; the server answers 503 with `Retry-After`.
    #[error("storage unavailable: {message}")]
    Unavailable {
        /// What failed, in words (the operation, the key, the store's answer).
        message: String,
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// Anything else that is our fault (a background task panicked, corrupt metadata, ...).
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StoreError {
    /// The spec error code, or `None` for an internal error (500).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            StoreError::NotFound { .. }
            | StoreError::InvalidKey { .. }
            | StoreError::Io { .. }
            | StoreError::RootInUse { .. }
            | StoreError::PreconditionFailed { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Internal(_) => None,
            StoreError::RangeInvalid { .. } | StoreError::UploadRange { .. } => {
                Some(ErrorCode::RangeInvalid)
            }
            StoreError::BlobUnknown { .. } => Some(ErrorCode::BlobUnknown),
            StoreError::UploadUnknown { .. } => Some(ErrorCode::BlobUploadUnknown),
            StoreError::DigestMismatch { .. } => Some(ErrorCode::DigestInvalid),
            StoreError::ManifestBlobUnknown { .. } => Some(ErrorCode::ManifestBlobUnknown),
            StoreError::ManifestUnknown { .. } => Some(ErrorCode::ManifestUnknown),
            StoreError::NameUnknown { .. } => Some(ErrorCode::NameUnknown),
            StoreError::Oci(e) => Some(e.code),
            StoreError::Body(_) => Some(ErrorCode::BlobUploadInvalid),
            StoreError::QuotaExceeded { .. } | StoreError::StorageFull { .. } => {
                Some(ErrorCode::Denied)
            }
        }
    }

    /// A message for the error envelope.
    pub fn message(&self) -> String {
        match self {
            StoreError::Oci(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// Structured detail for the error envelope, when there is some.
    pub fn detail(&self) -> Option<Value> {
        match self {
            StoreError::BlobUnknown { digest } => Some(json!({ "digest": digest.to_string() })),
            StoreError::DigestMismatch { expected, computed } => Some(json!({
                "expected": expected.to_string(),
                "computed": computed.to_string(),
            })),
            StoreError::ManifestBlobUnknown { kind, digest } => {
                Some(json!({ "digest": digest.to_string(), "kind": kind }))
            }
            StoreError::ManifestUnknown { reference } => Some(json!({ "reference": reference })),
            StoreError::NameUnknown { name } => Some(json!({ "name": name })),
            StoreError::Oci(e) => e.detail.clone(),
            StoreError::QuotaExceeded { detail, .. } => Some(detail.clone()),
            _ => None,
        }
    }

    /// When the error means storage has no room for the write (the reserve refused it, or the
    /// filesystem answered `ENOSPC`/`EDQUOT`): a message for the client that names no storage
    /// key. The write left nothing visible either way.
    pub fn storage_full(&self) -> Option<String> {
        use std::io::ErrorKind;
        match self {
            StoreError::StorageFull { message } => Some(message.clone()),
            StoreError::Io { source, .. }
                if matches!(
                    source.kind(),
                    ErrorKind::StorageFull | ErrorKind::QuotaExceeded
                ) =>
            {
                Some(format!(
                    "the registry's storage is full ({source}); nothing was stored: free space \
                     by deleting content and collecting garbage"
                ))
            }
            _ => None,
        }
    }

    /// When the storage is unavailable (see [`StoreError::Unavailable`]): how long the client
    /// should wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            StoreError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// True for a driver-level "no such object".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Wraps an I/O error, turning `ErrorKind::NotFound` into [`StoreError::NotFound`].
    pub(crate) fn io(op: &'static str, key: &str, source: std::io::Error) -> StoreError {
        if source.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                key: key.to_owned(),
            }
        } else {
            StoreError::Io {
                op,
                key: key.to_owned(),
                source,
            }
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
