//! Connection settings ([`ClientOptions`], with the config crate's [`RateView`] as its rate
//! limits) and [`Credentials`].
//!
//! The binary builds these from the config file (`registry.remote`, `pull_policy`, ...); this
//! crate never reads the config file or the environment (proxy variables included).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ocireg_config::RateView;

/// Default upload chunk size and monolithic-upload threshold: 8 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 8 * 1024 * 1024;

/// How the client talks to one registry.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connect timeout, and the longest a request may go without progress (no response headers,
    /// no body bytes read or written) before it is abandoned.
    pub timeout: Duration,
    /// How many times a failed request is retried (connection errors, 5xx, 429).
    pub retries: u32,
    /// The first retry waits this long ...
    pub retry_delay: Duration,
    /// ... and each further retry this factor longer (`retry_delay × retry_backoff^n`).
    pub retry_backoff: f64,
    /// Upper bound on any one wait (backoff or `Retry-After`).
    pub max_retry_wait: Duration,
    /// Verify the registry's TLS certificate (off only for loopback or with `allow_insecure`).
    pub verify_ssl: bool,
    /// Extra PEM root certificate(s) trusted for TLS.
    pub ca_cert_path: Option<PathBuf>,
    /// Proxy for `http://` registries (`http://host:port`).
    pub http_proxy: Option<String>,
    /// Proxy for `https://` registries (tunnels with `CONNECT`).
    pub https_proxy: Option<String>,
    /// Hosts, domains (`.example.com`), IPs or CIDRs reached without a proxy; `*` for all.
    pub no_proxy: Vec<String>,
    /// Request rate limits; `None` for unlimited.
    pub rate: Option<RateView>,
    /// Allow plain HTTP and unverified certificates for non-loopback hosts.
    pub allow_insecure: bool,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Size of each `PATCH` of a chunked upload (raised to the registry's
    /// `OCI-Chunk-Min-Length` when that is larger).
    pub chunk_size: u64,
    /// Blobs up to this size are uploaded with one `PUT`; larger ones in chunks.
    pub monolithic_threshold: u64,
    /// `n` asked for per page of tags / catalog / referrers; `None` lets the registry choose.
    pub page_size: Option<usize>,
    /// Largest manifest (or listing page) read into memory.
    pub max_manifest_bytes: usize,
}

impl Default for ClientOptions {
    /// The seed's `RemoteOCIConfig` defaults (timeout 30 s, 3 retries, 5 s delay, backoff 2.0,
    /// TLS verified, no proxies, no rate limit) plus 8 MiB chunks.
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            retry_delay: Duration::from_secs(5),
            retry_backoff: 2.0,
            max_retry_wait: Duration::from_secs(300),
            verify_ssl: true,
            ca_cert_path: None,
            http_proxy: None,
            https_proxy: None,
            no_proxy: Vec::new(),
            rate: None,
            allow_insecure: false,
            user_agent: concat!("ocireg/", env!("CARGO_PKG_VERSION")).to_owned(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            monolithic_threshold: DEFAULT_CHUNK_SIZE,
            page_size: None,
            max_manifest_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Who the client is. `Debug` never shows secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (anonymous Bearer tokens are still fetched when challenged).
    #[default]
    Anonymous,
    /// Username and password: sent as Basic auth, or to the token realm for Bearer tokens.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A ready-made bearer token sent with every request.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let basic = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret-pw".into(),
        };
        let shown = format!("{basic:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        let bearer = Credentials::Bearer("tok-abc123".into());
        assert!(!format!("{bearer:?}").contains("tok-abc123"));
    }

    #[test]
    fn defaults_follow_the_seed() {
        let o = ClientOptions::default();
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.retries, 3);
        assert_eq!(o.retry_delay, Duration::from_secs(5));
        assert!((o.retry_backoff - 2.0).abs() < f64::EPSILON);
        assert!(o.verify_ssl && !o.allow_insecure);
        let r = RateView::default();
        assert_eq!((r.requests_per_second, r.burst), (10, 20));
    }
}
