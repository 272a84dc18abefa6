//! Every failure of a request becomes a response here, once: the spec's status code and error
//! envelope `{"errors":[{"code","message","detail"}]}`. Internal errors are logged once with the
//! request's span and answered 500 without internals.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ocireg_oci::{ErrorCode, OciError};
use ocireg_store::StoreError;

/// A request that failed: either a spec error (4xx with an error code) or an internal one (500).
#[derive(Debug)]
pub(crate) enum Failure {
    Spec(Box<SpecFailure>),
    Internal(String),
}

/// A refusal with a spec error code.
#[derive(Debug)]
pub(crate) struct SpecFailure {
    status: StatusCode,
    error: OciError,
    /// Extra headers (e.g. `Location`/`Range` on a 416 upload answer).
    headers: Vec<(&'static str, String)>,
}

pub(crate) type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    /// A spec error with the code's usual status.
    pub(crate) fn code(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from(OciError::new(code, message))
    }

    fn spec(status: StatusCode, error: OciError) -> Self {
        Self::Spec(Box::new(SpecFailure {
            status,
            error,
            headers: Vec::new(),
        }))
    }

    /// The same error answered with another status (the spec reuses codes across statuses).
    pub(crate) fn with_status(mut self, new: StatusCode) -> Self {
        if let Self::Spec(spec) = &mut self {
            spec.status = new;
        }
        self
    }

    /// Adds a response header.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        if let Self::Spec(spec) = &mut self {
            spec.headers.push((name, value));
        }
        self
    }

    pub(crate) fn unsupported_method() -> Self {
        Self::code(
            ErrorCode::Unsupported,
            "method not allowed on this endpoint",
        )
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        // No room on the storage: `507 Insufficient Storage` (RFC 4918), carrying the spec's
        // `DENIED` (its table has no code for a full registry) and a message that says so.
        if let Some(message) = err.storage_full() {
            tracing::warn!(error = %err, "storage full");
            return Self::spec(
                StatusCode::INSUFFICIENT_STORAGE,
                OciError::new(ErrorCode::Denied, message),
            );
        }
        // Storage down or throttling (an object store): `503 UNAVAILABLE` with `Retry-After`
        // and a message that says the registry's storage, not the client, is at fault.
        if let Some(after) = err.retry_after() {
            tracing::warn!(error = %err, "storage unavailable");
            return Self::spec(
                StatusCode::SERVICE_UNAVAILABLE,
                OciError::new(ErrorCode::Unavailable, err.message()),
            )
            .with_header("Retry-After", after.as_secs().max(1).to_string());
        }
        match err.code() {
            Some(code) => {
                let mut error = OciError::new(code, err.message());
                error.detail = err.detail();
                Self::from(error)
            }
            None => Self::Internal(err.to_string()),
        }
    }
}

impl From<ocireg_api::ApiError> for Failure {
    fn from(err: ocireg_api::ApiError) -> Self {
        let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
        // Paths outside the API carry no spec code; they are answered UNSUPPORTED (with 404).
        let mut error = OciError::new(err.code.unwrap_or(ErrorCode::Unsupported), err.message);
        error.detail = err.detail;
        Self::spec(status, error)
    }
}

impl From<OciError> for Failure {
    fn from(error: OciError) -> Self {
        let status = StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::spec(status, error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, body, headers) = match self {
            Self::Spec(spec) => {
                let SpecFailure {
                    status,
                    mut error,
                    headers,
                } = *spec;
                // The spec's code table has no range code: a 416 carries BLOB_UPLOAD_INVALID.
                if error.code == ErrorCode::RangeInvalid {
                    error.code = ErrorCode::BlobUploadInvalid;
                }
                tracing::debug!(code = error.code.as_str(), message = %error.message, "request refused");
                let body = ocireg_oci::error_body(std::slice::from_ref(&error)).to_string();
                (status, body, headers)
            }
            Self::Internal(message) => {
                tracing::error!(%message, "internal error");
                // The spec defines no code for server faults; Distribution answers UNKNOWN.
                let body = r#"{"errors":[{"code":"UNKNOWN","message":"internal server error"}]}"#;
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body.to_string(),
                    Vec::new(),
                )
            }
        };
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Storage that cannot be reached is a 503 `UNAVAILABLE` with `Retry-After` and the
    /// storage's message, never a 500.
    #[tokio::test]
    async fn unavailable_storage_is_503_with_retry_after() {
        let err = StoreError::Unavailable {
            message: "put blobs/x: connection refused".into(),
            retry_after: std::time::Duration::from_secs(2),
        };
        let resp = Failure::from(err).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "2");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\"UNAVAILABLE\""), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }
}
