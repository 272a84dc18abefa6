//! Retries, in one place: which failures are worth another attempt ([`Failure`]), how long to
//! wait before it (`Retry-After`, else exponential backoff) and how many consecutive failures
//! one operation may have ([`Attempts`]). Every retry loop of this crate goes through it.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::error::ClientError;
use crate::options::ClientOptions;

/// The wait before retry number `n` (0-based): `retry_delay × retry_backoff^n`, capped at
/// `max_retry_wait`.
pub(crate) fn backoff(opts: &ClientOptions, n: u32) -> Duration {
    let factor = opts.retry_backoff.max(1.0).powi(n.min(64) as i32);
    let secs = opts.retry_delay.as_secs_f64() * factor;
    let cap = opts.max_retry_wait.as_secs_f64();
    if !secs.is_finite() || secs >= cap {
        opts.max_retry_wait
    } else {
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (a date in the past gives zero).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before retry `n` after a response with these headers: `Retry-After` when present
/// and valid, else the backoff; capped at `max_retry_wait`.
pub(crate) fn wait_for(opts: &ClientOptions, n: u32, headers: Option<&HeaderMap>) -> Duration {
    let retry_after = headers
        .and_then(|h| h.get(http::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    match retry_after {
        Some(d) => d.min(opts.max_retry_wait),
        None => backoff(opts, n),
    }
}

/// A wait in words: `5 s`, `0.2 s`.
fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs:.1} s")
    }
}

/// True for statuses worth retrying: 5xx and 429, except 501 Not Implemented, 505 and 507
/// Insufficient Storage (a full registry does not empty itself within a backoff).
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED
            && status != StatusCode::INSUFFICIENT_STORAGE)
}

/// The error chain of `e` as one line.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn is_tls_failure(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = cur {
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("certificate")
            || text.contains("handshake")
            || text.contains("corrupt message")
            || text.contains("peer is incompatible")
        {
            return true;
        }
        cur = s.source();
    }
    false
}

/// A transport failure turned into an error, and whether retrying it may help.
pub(crate) fn classify(
    e: &reqwest::Error,
    method: &str,
    url: &str,
    opts: &ClientOptions,
) -> (ClientError, bool) {
    let message = chain(e);
    if is_tls_failure(e) {
        return (
            ClientError::Tls {
                url: url.to_owned(),
                message,
            },
            false,
        );
    }
    if e.is_timeout() {
        return (
            ClientError::Timeout {
                method: method.to_owned(),
                url: url.to_owned(),
                timeout: opts.timeout,
            },
            true,
        );
    }
    // Body read failures surface as "decode" errors: they are connection trouble too.
    if e.is_builder() || e.is_redirect() {
        return (
            ClientError::Protocol(format!("{method} {url}: {message}")),
            false,
        );
    }
    if let Some(addr) = refused_on_loopback(e, url) {
        return (ClientError::NotRunning { addr }, false);
    }
    (
        ClientError::Connection {
            method: method.to_owned(),
            url: url.to_owned(),
            message: in_words(e).unwrap_or(message),
        },
        true,
    )
}

/// The innermost I/O error under `e`, if any.
fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut found = None;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            found = Some(io);
        }
        cur = err.source();
    }
    found
}

/// `host:port` of `url` when the connection was refused and the host is a loopback address:
/// nothing listens there, and waiting will not start it, so the failure is final at once.
fn refused_on_loopback(e: &reqwest::Error, url: &str) -> Option<String> {
    let io = io_cause(e)?;
    if io.kind() != std::io::ErrorKind::ConnectionRefused {
        return None;
    }
    let url = url::Url::parse(url).ok()?;
    if !crate::connect::is_loopback_host(url.host()) {
        return None;
    }
    let port = url.port_or_known_default()?;
    Some(match url.host()? {
        url::Host::Ipv6(ip) => format!("[{ip}]:{port}"),
        host => format!("{host}:{port}"),
    })
}

/// The cause of a transport failure in words: the innermost I/O error without its
/// `(os error N)` suffix, e.g. `connection refused` (the layers above it repeat the URL and
/// name library internals).
fn in_words(e: &reqwest::Error) -> Option<String> {
    let io = io_cause(e)?;
    let text = io.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    let first = chars.next()?;
    Some(first.to_lowercase().chain(chars).collect())
}

/// One failed attempt: the error, whether another attempt may help, and the answer's headers
/// when the registry answered (for `Retry-After`).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: ClientError,
    pub(crate) retryable: bool,
    pub(crate) headers: Option<HeaderMap>,
}

impl Failure {
    /// A failure that another attempt cannot mend.
    pub(crate) fn fatal(error: ClientError) -> Failure {
        Failure {
            error,
            retryable: false,
            headers: None,
        }
    }

    /// A failure worth another attempt, after the wait the headers ask for (or the backoff).
    pub(crate) fn retry(error: ClientError, headers: Option<HeaderMap>) -> Failure {
        Failure {
            error,
            retryable: true,
            headers,
        }
    }

    /// A transport error, classified by [`classify`].
    pub(crate) fn transport(
        e: &reqwest::Error,
        method: &str,
        url: &str,
        opts: &ClientOptions,
    ) -> Failure {
        let (error, retryable) = classify(e, method, url, opts);
        Failure {
            error,
            retryable,
            headers: None,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::fatal(e)
    }
}

/// The attempts of one operation: counts consecutive failures against `retries` and waits
/// between attempts. An operation that moves forward (a chunk accepted, bytes received) calls
/// [`Attempts::progressed`], so `retries` bounds failures in a row, not in total.
#[derive(Debug)]
pub(crate) struct Attempts<'a> {
    opts: &'a ClientOptions,
    failures: u32,
}

impl<'a> Attempts<'a> {
    /// No failure yet.
    pub(crate) fn new(opts: &'a ClientOptions) -> Attempts<'a> {
        Attempts { opts, failures: 0 }
    }

    /// True when the next failure is final.
    pub(crate) fn exhausted(&self) -> bool {
        self.failures >= self.opts.retries
    }

    /// Forgets the failures so far: the operation made progress.
    pub(crate) fn progressed(&mut self) {
        self.failures = 0;
    }

    /// Judges a chunk's answer: the registry's new offset when it moved forward within
    /// `offset..=end` (progress), else the failure to resume from.
    // The failure is moved straight on to `after`, as from the request that produced it.
    #[allow(clippy::result_large_err)]
    pub(crate) fn advanced(
        &mut self,
        sent: Result<u64, Failure>,
        offset: u64,
        end: u64,
    ) -> Result<u64, Failure> {
        match sent {
            Ok(next) if next > offset && next <= end => {
                self.progressed();
                Ok(next)
            }
            Ok(next) => Err(Failure::retry(
                ClientError::Protocol(format!(
                    "registry reported offset {next} after a chunk sent from {offset} to {end}"
                )),
                None,
            )),
            Err(f) => Err(f),
        }
    }

    /// Takes a failed attempt: its error when it is not retryable or no retry is left, else
    /// `Ok(())` after waiting (`Retry-After` when the answer had one, else the backoff).
    pub(crate) async fn after(&mut self, f: Failure, what: &str) -> Result<(), ClientError> {
        if !f.retryable || self.exhausted() {
            return Err(f.error);
        }
        let wait = wait_for(self.opts, self.failures, f.headers.as_ref());
        self.failures += 1;
        tracing::warn!(
            "retrying in {} ({}/{}): {what}: {}",
            seconds(wait),
            self.failures,
            self.opts.retries,
            f.error
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(delay_ms: u64, factor: f64) -> ClientOptions {
        ClientOptions {
            retry_delay: Duration::from_millis(delay_ms),
            retry_backoff: factor,
            max_retry_wait: Duration::from_secs(10),
            ..ClientOptions::default()
        }
    }

    #[test]
    fn backoff_grows_geometrically_and_is_capped() {
        let o = opts(100, 2.0);
        assert_eq!(backoff(&o, 0), Duration::from_millis(100));
        assert_eq!(backoff(&o, 1), Duration::from_millis(200));
        assert_eq!(backoff(&o, 3), Duration::from_millis(800));
        assert_eq!(backoff(&o, 60), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn retry_after_header_wins_over_backoff_but_is_capped() {
        let o = opts(100, 2.0);
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(wait_for(&o, 5, Some(&h)), Duration::from_secs(2));
        h.insert(http::header::RETRY_AFTER, "99999".parse().unwrap());
        assert_eq!(wait_for(&o, 0, Some(&h)), Duration::from_secs(10));
        assert_eq!(wait_for(&o, 1, None), Duration::from_millis(200));
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [429u16, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400u16, 401, 403, 404, 416, 501, 507] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_count_failures_in_a_row() {
        let o = ClientOptions {
            retries: 2,
            ..opts(100, 2.0)
        };
        let err = || ClientError::Protocol("x".into());
        let mut a = Attempts::new(&o);
        let start = tokio::time::Instant::now();
        assert!(a.after(Failure::retry(err(), None), "t").await.is_ok());
        assert!(a.after(Failure::retry(err(), None), "t").await.is_ok());
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        assert!(a.exhausted());
        assert!(a.after(Failure::retry(err(), None), "t").await.is_err());
        a.progressed();
        assert!(!a.exhausted());
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        let before = tokio::time::Instant::now();
        assert!(a.after(Failure::retry(err(), Some(h)), "t").await.is_ok());
        assert_eq!(before.elapsed(), Duration::from_secs(3));
        let e = a.after(Failure::fatal(err()), "t").await.unwrap_err();
        assert!(matches!(e, ClientError::Protocol(_)));
    }
}
