//! The crate's one error type.

use ocireg_oci::{error_body, ErrorCode, OciError};
use serde_json::Value;

/// A request that cannot be served as asked: the HTTP status to answer with, the spec error code
/// for the envelope (`None` for an unknown route or a malformed query, answered without a spec
/// code), a message and optional JSON detail. The server maps it to a response in one place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {}: {message}", code_str(.code))]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Spec error code, if one applies.
    pub code: Option<ErrorCode>,
    /// Human-readable message.
    pub message: String,
    /// Optional JSON detail.
    pub detail: Option<Value>,
}

fn code_str(code: &Option<ErrorCode>) -> &'static str {
    code.map(|c| c.as_str()).unwrap_or("NO_CODE")
}

impl ApiError {
    /// `404` for a path that is not a Distribution API route.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            code: None,
            message: message.into(),
            detail: None,
        }
    }

    /// `400` without a spec code (e.g. a malformed `n` query parameter).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: None,
            message: message.into(),
            detail: None,
        }
    }

    /// An error with a spec code and that code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: code.status(),
            code: Some(code),
            message: message.into(),
            detail: None,
        }
    }

    /// Returns the error with another HTTP status.
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }

    /// Returns the error with `detail` set.
    pub fn with_detail(mut self, detail: Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    /// The spec error envelope for this error, when it has a code.
    pub fn body(&self) -> Option<Value> {
        self.to_oci().map(|e| error_body(&[e]))
    }

    /// The error as an [`OciError`], when it has a code.
    pub fn to_oci(&self) -> Option<OciError> {
        self.code.map(|code| OciError {
            code,
            message: self.message.clone(),
            detail: self.detail.clone(),
        })
    }
}

impl From<OciError> for ApiError {
    fn from(e: OciError) -> Self {
        ApiError {
            status: e.code.status(),
            code: Some(e.code),
            message: e.message,
            detail: e.detail,
        }
    }
}
