//! The crate's one error type, [`ClientError`], and reading the registry's error envelope.

use std::time::Duration;

use ocireg_oci::{Digest, ErrorCode};
use serde_json::Value;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The options or arguments cannot work (bad URL, unreadable CA file, bad proxy URL ...).
    #[error("invalid client settings: {0}")]
    Options(String),
    /// Plain HTTP or an unverified certificate for a host that is neither loopback nor allowed.
    #[error(
        "refusing {what} for {host}: only loopback hosts may use it unless allow_insecure is set"
    )]
    Insecure {
        /// The host refused.
        host: String,
        /// `plain HTTP` or `unverified TLS`.
        what: String,
    },
    /// The TLS handshake failed (e.g. certificate verification).
    #[error("TLS error talking to {url}: {message}")]
    Tls {
        /// The URL requested.
        url: String,
        /// The TLS error chain.
        message: String,
    },
    /// A connection could not be made, or broke (after all retries).
    #[error("{method} {url}: connection failed: {message}")]
    Connection {
        /// HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The error chain.
        message: String,
    },
    /// A request made no progress for the configured timeout.
    #[error("{method} {url}: no progress for {timeout:?}")]
    Timeout {
        /// HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The registry answered with an error status (boxed: it is the largest variant).
    #[error("{0}")]
    Registry(Box<RegistryError>),
    /// Authentication failed (credentials rejected, token server errors, unusable challenge).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Received content does not hash to the expected digest (nothing was kept).
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content is not as long as stated.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was measured.
        what: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The registry answered in a way the protocol does not allow.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// A local I/O error (reading a source, writing a destination).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An error answer from the registry; `code`/`message` come from its error envelope when it
/// sent one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{method} {url}: {status}{}", registry_suffix(.code, .message))]
pub struct RegistryError {
    /// HTTP method.
    pub method: String,
    /// The URL requested.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// The first error code of the envelope (spec codes and others, as sent).
    pub code: Option<String>,
    /// The envelope's message(s), or a short body excerpt.
    pub message: String,
    /// The first error's `detail`.
    pub detail: Option<Value>,
}

fn registry_suffix(code: &Option<String>, message: &str) -> String {
    match (code, message.is_empty()) {
        (Some(c), false) => format!(" {c}: {message}"),
        (Some(c), true) => format!(" {c}"),
        (None, false) => format!(": {message}"),
        (None, true) => String::new(),
    }
}

impl ClientError {
    /// The HTTP status, for registry errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Registry(e) => Some(e.status),
            _ => None,
        }
    }

    /// The spec error code, when the registry sent a known one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Registry(e) => e.code.as_deref().and_then(ErrorCode::parse),
            _ => None,
        }
    }

    /// True for a registry `404`.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Wraps an I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ClientError {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }

    /// A registry error from a response's status and (possibly empty) body.
    pub(crate) fn from_response(method: &str, url: &str, status: u16, body: &[u8]) -> ClientError {
        let (code, message, detail) = parse_envelope(body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(200).collect();
            (None, excerpt, None)
        });
        ClientError::Registry(Box::new(RegistryError {
            method: method.to_owned(),
            url: url.to_owned(),
            status,
            code,
            message,
            detail,
        }))
    }
}

type Envelope = (Option<String>, String, Option<Value>);

/// Parses `{"errors":[{"code","message","detail"}]}`; `None` when the body is not one.
pub(crate) fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let errors = v.get("errors")?.as_array()?;
    let first = errors.first()?;
    let code = first.get("code").and_then(Value::as_str).map(str::to_owned);
    let messages: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            let m = e.get("message").and_then(Value::as_str).unwrap_or("");
            let c = e.get("code").and_then(Value::as_str).unwrap_or("");
            match (c.is_empty(), m.is_empty()) {
                (_, false) => Some(m.to_owned()),
                (false, true) => Some(c.to_owned()),
                (true, true) => None,
            }
        })
        .collect();
    let detail = first.get("detail").cloned().filter(|d| !d.is_null());
    Some((code, messages.join("; "), detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_fields_reach_the_error() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"tag":"x"}}]}"#;
        let e = ClientError::from_response("GET", "http://r/v2/a/manifests/x", 404, body);
        assert_eq!(e.error_code(), Some(ErrorCode::ManifestUnknown));
        assert!(e.is_not_found());
        let shown = e.to_string();
        assert!(
            shown.contains("404 MANIFEST_UNKNOWN: manifest unknown"),
            "{shown}"
        );
        let ClientError::Registry(e) = e else {
            panic!("not a registry error")
        };
        assert_eq!(e.detail, Some(serde_json::json!({"tag": "x"})));
    }

    #[test]
    fn non_envelope_body_is_excerpted() {
        let e = ClientError::from_response("GET", "u", 502, b"<html>bad gateway</html>");
        assert_eq!(e.error_code(), None);
        assert!(e.to_string().contains("bad gateway"));
    }
}
