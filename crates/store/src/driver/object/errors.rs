//! Turning the object store's answers into [`StoreError`]s, and the client's timeouts.
//!
//! Connection failures, timeouts, 5xx answers and throttling (429, S3's 503 SlowDown) are
//! retried by `object_store` itself (see [`retry_config`]); what still fails after that is
//! [`StoreError::Unavailable`], which the server answers with 503 and `Retry-After`. A refused
//! condition (412, or 409 for Azure's create-if-absent) is [`StoreError::PreconditionFailed`].
//! Messages name the operation, the key and the store's answer, with query strings (where a
//! SAS signature would be) and the configured secrets cut out.

use std::time::Duration;

use object_store::client::{HttpError, HttpErrorKind};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::error::StoreError;

/// Connecting to the store: a healthy endpoint answers a TCP handshake in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One request, body included: a part upload (8 MiB) on a slow link still fits.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries of one request give up after this long: a registry client is waiting.
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of one request.
const MAX_RETRIES: usize = 3;

/// `Retry-After` when the store throttles us (429, 503 SlowDown).
const THROTTLED_RETRY: Duration = Duration::from_secs(1);

/// `Retry-After` when the store cannot be reached or fails.
const DOWN_RETRY: Duration = Duration::from_secs(5);

/// The HTTP client options of every store the driver opens.
pub(crate) fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_allow_http(allow_http)
}

/// The retry policy of every store the driver opens: a few quick retries with backoff.
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
    }
}

/// Describes failures of one driver: which store, and which strings never to show.
#[derive(Clone, Default)]
pub(crate) struct Reporter {
    /// `s3 bucket B at E`, `azure container C of account A at E`.
    pub store: String,
    /// Credentials from the environment, cut out of every message.
    pub secrets: Vec<String>,
}

impl Reporter {
    /// Cuts secrets and URL query strings out of `text`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut in_query = false;
        for c in text.chars() {
            if c == '?' {
                in_query = true;
                out.push_str("?…");
                continue;
            }
            if in_query && (c.is_whitespace() || c == ',' || c == ')') {
                in_query = false;
            }
            if !in_query {
                out.push(c);
            }
        }
        for secret in self.secrets.iter().filter(|s| s.len() >= 4) {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    /// The [`StoreError`] for `error` of operation `op` on `key`.
    pub(crate) fn error(
        &self,
        op: &'static str,
        key: &str,
        error: object_store::Error,
    ) -> StoreError {
        use object_store::Error as E;
        match error {
            E::NotFound { .. } => StoreError::NotFound {
                key: key.to_owned(),
            },
            E::AlreadyExists { .. } | E::Precondition { .. } => StoreError::PreconditionFailed {
                key: key.to_owned(),
            },
            other => {
                let answer = self.redact(&chain(&other));
                let message = format!("{op} of {key} on {}: {answer}", self.store);
                match unavailability(&other) {
                    Some(retry_after) => StoreError::Unavailable {
                        message,
                        retry_after,
                    },
                    None => StoreError::Io {
                        op,
                        key: key.to_owned(),
                        source: std::io::Error::other(format!("{} answered: {answer}", self.store)),
                    },
                }
            }
        }
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The error and its sources, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// When `error` means the store is down, unreachable or throttling: the `Retry-After`.
/// A request error without an HTTP status is a transport failure (refused connection,
/// timeout, a broken body): the store did not answer.
fn unavailability(error: &object_store::Error) -> Option<Duration> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(s) = source {
        if let Some(http) = s.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Timeout
                | HttpErrorKind::Request
                | HttpErrorKind::Interrupted => Some(DOWN_RETRY),
                _ => None,
            };
        }
        if let Some(status) = status_in(&s.to_string()) {
            return match status {
                429 | 503 => Some(THROTTLED_RETRY),
                500..=599 => Some(DOWN_RETRY),
                _ => None,
            };
        }
        source = s.source();
    }
    matches!(error, object_store::Error::Generic { .. }).then_some(DOWN_RETRY)
}

/// The HTTP status in an `object_store` request error's text ("... status code: 503 ...").
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_found_in_request_errors() {
        assert_eq!(
            status_in("Server returned non-2xx status code: 503 Service Unavailable: SlowDown"),
            Some(503)
        );
        assert_eq!(status_in("no status here"), None);
    }

    #[test]
    fn redaction_cuts_queries_and_secrets() {
        let r = Reporter {
            store: "s3".into(),
            secrets: vec!["hunter2secret".into()],
        };
        let text = r.redact("GET http://h/c/k?sig=abc&se=1 failed: key hunter2secret, done");
        assert!(!text.contains("sig=abc"), "{text}");
        assert!(!text.contains("hunter2secret"), "{text}");
        assert!(text.contains("failed") && text.contains("done"), "{text}");
    }

    #[test]
    fn conditions_and_absence_map_to_their_errors() {
        let r = Reporter::default();
        let nf = object_store::Error::NotFound {
            path: "p".into(),
            source: "gone".into(),
        };
        assert!(r.error("get", "k", nf).is_not_found());
        let pre = object_store::Error::Precondition {
            path: "p".into(),
            source: "412".into(),
        };
        assert!(matches!(
            r.error("put", "k", pre),
            StoreError::PreconditionFailed { .. }
        ));
        let throttled = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 429 Too Many Requests: ".into(),
        };
        let e = r.error("put", "k", throttled);
        assert_eq!(e.retry_after(), Some(THROTTLED_RETRY), "{e}");
        assert!(e.to_string().contains("put of k"), "{e}");
        let bad = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 400 Bad Request: InvalidPart".into(),
        };
        assert!(matches!(r.error("put", "k", bad), StoreError::Io { .. }));
        let refused = object_store::Error::Generic {
            store: "S3",
            source: "Error performing GET http://127.0.0.1:1/b - error sending request".into(),
        };
        assert_eq!(r.error("get", "k", refused).retry_after(), Some(DOWN_RETRY));
        let unsupported = object_store::Error::NotImplemented;
        assert!(r.error("get", "k", unsupported).retry_after().is_none());
    }
}
