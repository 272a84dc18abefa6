//! The crate's one error type, [`ClientError`] (talking to a registry, packing, unpacking, the
//! pull cache, the workflows), its [`Result`] alias, and reading the registry's error envelope.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ocireg_oci::{Digest, ErrorCode};
use serde_json::Value;

/// A boxed error from the caller (connecting to a registry in a workflow).
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Result alias for this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// Display convention: the registry and artifact variants show their whole cause on one line
/// (`Io` shows `context: cause`); the workflow variants that carry a context ([`Context`],
/// [`LocalIo`], [`Task`]) show only the context and keep the cause as their source, so an
/// error chain reads `context: cause`.
///
/// [`Context`]: ClientError::Context
/// [`LocalIo`]: ClientError::LocalIo
/// [`Task`]: ClientError::Task
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
    /// Nothing listens on a loopback registry's port: it is not running. Not retried.
    #[error("no registry answers on {addr}")]
    NotRunning {
        /// `host:port` of the registry.
        addr: String,
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
    /// Received or cached content does not hash to the expected digest (nothing was kept).
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for (or announced).
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
    /// A local I/O error (reading a source, writing a destination, packing, unpacking, the
    /// cache); `context` says which operation and on what path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
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
    /// A layer media type that cannot be unpacked.
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
    #[error("destination {0} exists and is not empty (pull --force replaces it)")]
    DestinationNotEmpty(PathBuf),
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
    /// A step of a workflow failed while doing `context` (boxed: the type is recursive).
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: Box<ClientError>,
    },
    /// The tag holds different content and `push_policy.allow_overwrite` is false.
    #[error("{shown} already points to {existing} with different content and push_policy.allow_overwrite is false; use another tag, or allow moving it (allow_overwrite = true, or --force)")]
    TagInUse {
        /// The destination, `host/repo:tag`.
        shown: String,
        /// What the tag points to.
        existing: Digest,
    },
    /// An OCI image layout directory does not hold the manifest asked for.
    #[error("{what}")]
    NotInLayout {
        /// What is missing, naming the directory.
        what: String,
    },
    /// The workflow's caller could not provide a registry client.
    #[error(transparent)]
    Connect(BoxError),
    /// What the registry served (or the packer produced) does not fit the workflow.
    #[error("{0}")]
    Invalid(String),
    /// A local file operation of a workflow failed; unlike [`ClientError::Io`] it shows only
    /// the context, the cause being its source.
    #[error("{context}")]
    LocalIo {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A background task (packing, unpacking, a download) did not run to its end.
    #[error("{context}")]
    Task {
        /// Which task.
        context: String,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none (registry.namespaces.custom is empty)".to_owned()
    } else {
        known.join(", ")
    }
}

/// An error answer from the registry, carried by [`ClientError::Registry`]; `code`/`message`
/// come from its error envelope when it sent one. Its `Display` is the variant's message.
#[derive(Debug, Clone, PartialEq)]
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

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.method, self.url, self.status)?;
        match (&self.code, self.message.is_empty()) {
            (Some(c), false) => write!(f, " {c}: {}", self.message),
            (Some(c), true) => write!(f, " {c}"),
            (None, false) => write!(f, ": {}", self.message),
            (None, true) => Ok(()),
        }
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

    /// An [`ClientError::Io`] whose context is `what` followed by `path`.
    pub(crate) fn io_path(what: &str, path: &Path, source: std::io::Error) -> ClientError {
        ClientError::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }

    /// Wraps `source` in a workflow step's context ([`ClientError::Context`]).
    pub(crate) fn context(context: impl Into<String>, source: ClientError) -> ClientError {
        ClientError::Context {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// A workflow's local file failure ([`ClientError::LocalIo`]).
    pub(crate) fn local_io(context: impl Into<String>, source: std::io::Error) -> ClientError {
        ClientError::LocalIo {
            context: context.into(),
            source,
        }
    }

    /// A background task that did not run to its end ([`ClientError::Task`]).
    pub(crate) fn task(context: &str, source: tokio::task::JoinError) -> ClientError {
        ClientError::Task {
            context: context.to_owned(),
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
    fn registry_error_text_per_envelope_shape() {
        let shown = |body: &[u8]| ClientError::from_response("PUT", "u", 400, body).to_string();
        let env = |c: &str, m: &str| format!(r#"{{"errors":[{{"code":"{c}","message":"{m}"}}]}}"#);
        assert_eq!(shown(env("X", "m").as_bytes()), "PUT u: 400 X: m");
        assert_eq!(shown(env("X", "").as_bytes()), "PUT u: 400 X: X");
        assert_eq!(shown(br#"{"errors":[{"code":"X"}]}"#), "PUT u: 400 X: X");
        assert_eq!(shown(br#"{"errors":[{}]}"#), "PUT u: 400");
        assert_eq!(shown(b"plain"), "PUT u: 400: plain");
        assert_eq!(shown(b""), "PUT u: 400");
    }

    #[test]
    fn non_envelope_body_is_excerpted() {
        let e = ClientError::from_response("GET", "u", 502, b"<html>bad gateway</html>");
        assert_eq!(e.error_code(), None);
        assert!(e.to_string().contains("bad gateway"));
    }
}
