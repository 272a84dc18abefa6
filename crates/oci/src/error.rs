//! Spec error codes (OCI Distribution Spec v1.1, "Error Codes") and the error envelope.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{json, Value};

/// An error code from the OCI Distribution Spec v1.1 error table, plus `RANGE_INVALID`
/// (CNCF Distribution's code for an out-of-order upload chunk, answered with `416`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry (404).
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid (400).
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry (404).
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content, or is malformed/unsupported (400).
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: manifest references a manifest or blob unknown to registry (400).
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid (400).
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry (404).
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name (400).
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry (404).
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length (400).
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required (401).
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied (403).
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported (405, as Distribution).
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests (429).
    TooManyRequests,
    /// `RANGE_INVALID`: out-of-order or inverted upload range (416). Not in the spec table;
    /// CNCF Distribution v3 uses it for the spec-mandated 416.
    RangeInvalid,
    /// `UNAVAILABLE`: the registry cannot serve the request now (503), e.g. its storage is
    /// unreachable. Not in the spec table; CNCF Distribution's `errcode` defines it.
    Unavailable,
}

impl ErrorCode {
    /// Every code, in spec-table order (then `RANGE_INVALID`, `UNAVAILABLE`).
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
        ErrorCode::RangeInvalid,
        ErrorCode::Unavailable,
    ];

    /// The wire identifier, e.g. `"BLOB_UNKNOWN"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }

    /// Parses a wire identifier (exact, upper case); unknown codes give `None`
    /// (clients should then treat the error as `UNKNOWN`, per the spec).
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status this code is normally answered with (CNCF Distribution's table, except
    /// `BLOB_UPLOAD_INVALID` which Distribution sends as 404 and we send as 400 — a client error
    /// on an upload that exists; the spec allows 400 for upload PUT failures).
    pub fn status(&self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The spec's short description of the code.
    pub fn message(&self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::RangeInvalid => "invalid content range",
            ErrorCode::Unavailable => "service unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One spec error: a code, a human-readable message and optional structured detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OciError {
    /// The spec error code.
    pub code: ErrorCode,
    /// Human-readable message (goes into the envelope's `message`).
    pub message: String,
    /// Optional JSON detail (goes into the envelope's `detail`).
    pub detail: Option<Value>,
}

impl OciError {
    /// An error with `code` and `message`, no detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OciError {
        OciError {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// An error whose message is the code's spec description.
    pub fn from_code(code: ErrorCode) -> OciError {
        OciError::new(code, code.message())
    }

    /// Returns the error with `detail` set.
    pub fn with_detail(mut self, detail: Value) -> OciError {
        self.detail = Some(detail);
        self
    }

    /// The HTTP status of the code.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// `BLOB_UNKNOWN`.
    pub fn blob_unknown(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::BlobUnknown, message)
    }
    /// `BLOB_UPLOAD_INVALID`.
    pub fn blob_upload_invalid(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::BlobUploadInvalid, message)
    }
    /// `BLOB_UPLOAD_UNKNOWN`.
    pub fn blob_upload_unknown(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::BlobUploadUnknown, message)
    }
    /// `DIGEST_INVALID`.
    pub fn digest_invalid(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::DigestInvalid, message)
    }
    /// `MANIFEST_BLOB_UNKNOWN`.
    pub fn manifest_blob_unknown(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::ManifestBlobUnknown, message)
    }
    /// `MANIFEST_INVALID`.
    pub fn manifest_invalid(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::ManifestInvalid, message)
    }
    /// `MANIFEST_UNKNOWN`.
    pub fn manifest_unknown(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::ManifestUnknown, message)
    }
    /// `NAME_INVALID`.
    pub fn name_invalid(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::NameInvalid, message)
    }
    /// `NAME_UNKNOWN`.
    pub fn name_unknown(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::NameUnknown, message)
    }
    /// `SIZE_INVALID`.
    pub fn size_invalid(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::SizeInvalid, message)
    }
    /// `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::Unauthorized, message)
    }
    /// `DENIED`.
    pub fn denied(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::Denied, message)
    }
    /// `UNSUPPORTED`.
    pub fn unsupported(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::Unsupported, message)
    }
    /// `TOOMANYREQUESTS`.
    pub fn too_many_requests(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::TooManyRequests, message)
    }
    /// `RANGE_INVALID`.
    pub fn range_invalid(message: impl Into<String>) -> OciError {
        OciError::new(ErrorCode::RangeInvalid, message)
    }
}

/// The spec's error envelope: `{"errors":[{"code","message","detail"?}]}`; `detail` is omitted
/// when absent (it is OPTIONAL in the spec).
pub fn error_body(errors: &[OciError]) -> Value {
    let list: Vec<Value> = errors
        .iter()
        .map(|e| {
            let mut obj = serde_json::Map::new();
            obj.insert("code".into(), Value::from(e.code.as_str()));
            obj.insert("message".into(), Value::from(e.message.clone()));
            if let Some(detail) = &e.detail {
                obj.insert("detail".into(), detail.clone());
            }
            Value::Object(obj)
        })
        .collect();
    json!({ "errors": list })
}
