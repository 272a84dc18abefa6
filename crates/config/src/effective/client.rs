//! [`ClientView`]: what the client commands need from the document.

use std::path::PathBuf;
use std::time::Duration;

use super::{block, host_port, int, is_local, listen_port, port, positive, seconds, LocalView};
use crate::document::Document;
use crate::error::ConfigError;
use crate::load::expand_home;
use crate::schemas::{OCIRegistryConfig, RemoteOCIConfig};

const REMOTE: &str = "registry.remote";

/// The configured registry as clients reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEndpoint {
    /// `registry.endpoint`, trimmed and lower-cased.
    pub host: String,
    /// The resolved listen port for a local deployment, else `registry.port`.
    pub port: u16,
    /// `registry.tls_enabled`.
    pub tls: bool,
}

impl ClientEndpoint {
    /// The configured registry of `reg` as clients reach it.
    pub fn resolve(reg: &OCIRegistryConfig) -> Result<Self, ConfigError> {
        let port = if is_local(reg) {
            listen_port(reg)?
        } else {
            port(reg.port, "registry.port")?
        };
        Ok(Self {
            host: reg.endpoint.trim().to_ascii_lowercase(),
            port,
            tls: reg.tls_enabled,
        })
    }

    /// `host:port` (IPv6 bracketed).
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// `registry.remote.rate_limit`, typed: token-bucket limits of the client. All requests share
/// one bucket; pulls and pushes each have their own too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateView {
    /// Sustained requests per second over all requests.
    pub requests_per_second: u32,
    /// Requests that may go at once before the rate applies (bucket capacity, all buckets).
    pub burst: u32,
    /// Sustained requests per second for pull requests (`GET`/`HEAD` of content and listings).
    pub pull_limit: Option<u32>,
    /// Sustained requests per second for push requests (uploads, manifest `PUT`, `DELETE`).
    pub push_limit: Option<u32>,
}

impl Default for RateView {
    /// The schema's defaults: 10 requests per second, burst 20, no per-operation limits.
    fn default() -> Self {
        Self {
            requests_per_second: 10,
            burst: 20,
            pull_limit: None,
            push_limit: None,
        }
    }
}

/// `registry.remote` (or its defaults), typed.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteView {
    /// Request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First retry delay.
    pub retry_delay: Duration,
    /// Backoff multiplier.
    pub retry_backoff: f64,
    /// Verify TLS certificates.
    pub verify_ssl: bool,
    /// Proxy for http URLs.
    pub http_proxy: Option<String>,
    /// Proxy for https URLs.
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxies.
    pub no_proxy: Vec<String>,
    /// Client-side rate limit, when `rate_limit` is given.
    pub rate: Option<RateView>,
}

/// Everything the client commands read from the document.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientView {
    /// The configured registry.
    pub endpoint: ClientEndpoint,
    /// Connection settings.
    pub remote: RemoteView,
    /// Extra CA certificate to trust (`ca_cert_path`).
    pub ca_cert: Option<PathBuf>,
    /// `pull_policy.allow_insecure`.
    pub allow_insecure: bool,
    /// Pull cache directory: `<local.data_dir>/cache` (solo data dir without `local`).
    pub cache_dir: PathBuf,
    /// `pull_policy.cache_ttl`.
    pub cache_ttl: Duration,
    /// `pull_policy.verify_cached`.
    pub verify_cached: bool,
}

impl ClientView {
    /// The client settings of `doc`.
    pub fn resolve(doc: &Document) -> Result<Self, ConfigError> {
        let reg = &doc.registry;
        let local = LocalView::resolve(reg, None)?;
        Ok(Self {
            endpoint: ClientEndpoint::resolve(reg)?,
            remote: RemoteView::resolve(reg)?,
            ca_cert: reg.ca_cert_path.as_deref().map(expand_home),
            allow_insecure: doc.pull_policy.allow_insecure,
            cache_dir: local.data_dir.join("cache"),
            cache_ttl: seconds(doc.pull_policy.cache_ttl, "pull_policy.cache_ttl")?,
            verify_cached: doc.pull_policy.verify_cached,
        })
    }
}

impl RemoteView {
    /// `registry.remote` of `reg`, or its defaults.
    pub fn resolve(reg: &OCIRegistryConfig) -> Result<Self, ConfigError> {
        remote(reg.remote.as_ref())
    }
}

fn remote(given: Option<&RemoteOCIConfig>) -> Result<RemoteView, ConfigError> {
    let r: RemoteOCIConfig = block(given, "RemoteOCIConfig")?;
    let p = |f: &str| format!("{REMOTE}.{f}");
    let rate = match &r.rate_limit {
        Some(rl) => {
            let per = |v: i64, f: &str| positive::<u32>(v, &p(&format!("rate_limit.{f}")));
            Some(RateView {
                requests_per_second: per(rl.requests_per_second, "requests_per_second")?,
                burst: per(rl.burst, "burst")?,
                pull_limit: rl.pull_limit.map(|v| per(v, "pull_limit")).transpose()?,
                push_limit: rl.push_limit.map(|v| per(v, "push_limit")).transpose()?,
            })
        }
        None => None,
    };
    Ok(RemoteView {
        timeout: seconds(r.timeout, &p("timeout"))?,
        retries: int(r.retries, &p("retries"))?,
        retry_delay: seconds(r.retry_delay, &p("retry_delay"))?,
        retry_backoff: r.retry_backoff,
        verify_ssl: r.verify_ssl,
        http_proxy: r.http_proxy,
        https_proxy: r.https_proxy,
        no_proxy: r.no_proxy.unwrap_or_default(),
        rate,
    })
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn default_rate_is_the_schema_default() {
        let yaml = "registry: {deployment: remote, type: zot, endpoint: r, \
                    remote: {rate_limit: {}}, namespaces: {}}";
        let doc = crate::load_str(yaml, crate::Format::Yaml).unwrap();
        let view = RemoteView::resolve(&doc.registry).unwrap();
        assert_eq!(view.rate, Some(RateView::default()));
    }
}
