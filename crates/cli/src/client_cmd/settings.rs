//! The effective client settings ([`ClientView`]) turned into [`ClientOptions`] from `registry.remote`,
//! `registry.ca_cert_path` and `pull_policy.allow_insecure` (proxies from the environment when
//! the config sets none), registry addresses and schemes, and the pull cache directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ocireg_client::artifact::{Cache, CacheOptions};
use ocireg_client::{ClientOptions, Credentials, Registry};
use ocireg_config::{ClientView, Document};

use super::creds;
use super::refs::ImageRef;
use super::ConnArgs;

/// A registry address: `host[:port]` (lower-cased) and the scheme to reach it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]`, as used in references and as the credentials / cache key.
    pub host: String,
    /// `http` or `https`.
    pub scheme: &'static str,
}

impl Endpoint {
    /// `scheme://host[:port]`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// Everything a client command needs from the config and its connection flags.
pub(crate) struct Ctx {
    /// The validated config document.
    pub doc: Document,
    /// Its effective client settings.
    pub view: ClientView,
    /// Connection settings for every registry the command talks to (the flags applied).
    pub options: ClientOptions,
    /// `--registry`: the registry for references that name none, instead of the configured one.
    pub registry_flag: Option<String>,
    /// `--plain-http`: plain HTTP to every registry of this run.
    pub plain_http: bool,
    /// `-u` with its password: used for every registry of this run instead of stored ones.
    pub credentials: Option<Credentials>,
}

/// The first of `names` set to a non-blank value in `env`.
fn env_var(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| env(n))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Builds the client options from the effective settings and the process environment.
pub(crate) fn client_options(view: &ClientView) -> ClientOptions {
    client_options_with(view, &|n| std::env::var(n).ok())
}

/// Applies `--plain-http` and `--insecure`: asking for either on the command line is the
/// permission `pull_policy.allow_insecure` gives in the config.
fn apply_flags(options: &mut ClientOptions, conn: &ConnArgs) {
    if conn.plain_http {
        options.allow_insecure = true;
    }
    if conn.insecure {
        options.verify_ssl = false;
        options.allow_insecure = true;
    }
}

/// The scheme a registry argument starts with (`http://` or `https://`), if any.
fn scheme_of(arg: &str) -> Option<&'static str> {
    if arg.starts_with("https://") {
        Some("https")
    } else if arg.starts_with("http://") {
        Some("http")
    } else {
        None
    }
}

/// Builds the client options from the effective settings; proxy variables are read through
/// `env` (lowercase first) when the config sets no proxy.
fn client_options_with(view: &ClientView, env: &dyn Fn(&str) -> Option<String>) -> ClientOptions {
    let r = &view.remote;
    let mut o = ClientOptions {
        timeout: r.timeout,
        retries: r.retries,
        retry_delay: r.retry_delay,
        retry_backoff: r.retry_backoff,
        verify_ssl: r.verify_ssl,
        rate: r.rate.clone(),
        ca_cert_path: view.ca_cert.clone(),
        allow_insecure: view.allow_insecure,
        ..ClientOptions::default()
    };
    if r.http_proxy.is_some() || r.https_proxy.is_some() {
        o.http_proxy = r.http_proxy.clone();
        o.https_proxy = r.https_proxy.clone();
        o.no_proxy = r.no_proxy.clone();
    } else {
        o.http_proxy = env_var(env, &["http_proxy", "HTTP_PROXY"]);
        o.https_proxy = env_var(env, &["https_proxy", "HTTPS_PROXY"]);
        o.no_proxy = env_var(env, &["no_proxy", "NO_PROXY"])
            .map(|s| split_list(&s))
            .unwrap_or_default();
    }
    o
}

/// The configured registry as clients reach it (the resolved listen port for a local
/// deployment, see `ocireg_config::listen_port`).
pub(crate) fn configured(view: &ClientView) -> Endpoint {
    Endpoint {
        host: view.endpoint.host_port(),
        scheme: view.endpoint.scheme(),
    }
}

/// True for `localhost`, `*.localhost`, `127.x.x.x` and `[::1]` (port ignored).
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` of a registry argument: scheme and trailing path dropped, lower-cased.
pub(crate) fn normalize_host(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or("").to_ascii_lowercase()
}

impl Ctx {
    /// Loads the config (global `--config`, `$OCIREG_CONFIG`, default path, built-in defaults)
    /// and applies the connection flags but the credentials (see [`Ctx::credentials`]).
    pub fn load(global: Option<&Path>, conn: &ConnArgs) -> anyhow::Result<Ctx> {
        let doc = crate::config_cmd::load_valid_document(global)?;
        let view = ClientView::resolve(&doc)?;
        let mut options = client_options(&view);
        apply_flags(&mut options, conn);
        let ctx = Ctx {
            doc,
            view,
            options,
            registry_flag: conn.registry.clone(),
            plain_http: conn.plain_http,
            credentials: None,
        };
        // registry.local.auto_start: a local registry that is not running is started first,
        // unless this run talks to another registry.
        if ctx.configured().host == configured(&ctx.view).host {
            crate::lifecycle_cmd::ensure_running(&ctx.doc)?;
        }
        Ok(ctx)
    }

    /// This run's default registry: `--registry` when given, else `registry.endpoint` and the
    /// port clients use, https when `tls_enabled` (http with `--plain-http`).
    pub fn configured(&self) -> Endpoint {
        let Some(arg) = self.registry_flag.as_deref() else {
            let mut ep = configured(&self.view);
            if self.plain_http {
                ep.scheme = "http";
            }
            return ep;
        };
        let host = normalize_host(arg);
        let from_config = configured(&self.view);
        let scheme = match scheme_of(arg) {
            Some(s) => s,
            None if self.plain_http => "http",
            None if host == from_config.host => from_config.scheme,
            None if is_loopback(&host) => "http",
            None => "https",
        };
        Endpoint { host, scheme }
    }

    /// The endpoint a parsed reference names (its registry, else this run's default one).
    pub fn endpoint_of(&self, r: &ImageRef) -> Endpoint {
        self.endpoint(r.registry(), r.scheme)
    }

    /// The endpoint a parsed reference names and a client for it.
    pub fn connect(&self, r: &ImageRef) -> anyhow::Result<(Endpoint, Registry)> {
        let ep = self.endpoint_of(r);
        let reg = self.registry(&ep)?;
        Ok((ep, reg))
    }

    /// The endpoint for a registry named in a reference: the explicit scheme, else http with
    /// `--plain-http`, else the default registry's scheme when it is that registry, else http
    /// for loopback and https otherwise.
    pub fn endpoint(&self, host: Option<&str>, scheme: Option<&'static str>) -> Endpoint {
        let default = self.configured();
        let Some(host) = host else {
            return default;
        };
        let host = normalize_host(host);
        let scheme = match scheme {
            Some(s) => s,
            None if self.plain_http => "http",
            None if host == default.host => default.scheme,
            None if is_loopback(&host) => "http",
            None => "https",
        };
        Endpoint { host, scheme }
    }

    /// A client for `ep`, with the credentials of `-u` when given, else those found for it
    /// (the config's only for the configured registry).
    pub fn registry(&self, ep: &Endpoint) -> anyhow::Result<Registry> {
        let credentials = match &self.credentials {
            Some(c) => c.clone(),
            None => {
                let is_configured = ep.host == configured(&self.view).host;
                creds::lookup(&self.doc, &ep.host, is_configured)?
            }
        };
        Registry::new(&ep.base_url(), credentials, self.options.clone())
            .with_context(|| format!("registry {}", ep.base_url()))
    }

    /// The pull cache directory: `<local.data_dir>/cache` (the solo data directory's without
    /// a `registry.local` section).
    pub fn cache_dir(&self) -> PathBuf {
        self.view.cache_dir.clone()
    }

    /// Opens the pull cache with `pull_policy.cache_ttl` and `verify_cached`.
    pub fn cache(&self) -> anyhow::Result<Cache> {
        let dir = self.cache_dir();
        Cache::open(
            &dir,
            CacheOptions {
                ttl: self.view.cache_ttl,
                verify: self.view.verify_cached,
            },
        )
        .with_context(|| format!("opening the pull cache at {}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "[::1]:5000",
            "a.localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[::2]:1",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn proxies_fall_back_to_the_environment() {
        let yaml = "registry: {deployment: remote, type: zot, endpoint: r.example, namespaces: {}, remote: {}}";
        let doc = ocireg_config::load_str(yaml, ocireg_config::Format::Yaml).unwrap();
        let env = |n: &str| match n {
            "HTTP_PROXY" => Some("http://upper:1".to_owned()),
            "https_proxy" => Some("http://lower:2".to_owned()),
            "HTTPS_PROXY" => Some("http://upper:2".to_owned()),
            "NO_PROXY" => Some(" a.example, ,127.0.0.1 ".to_owned()),
            _ => None,
        };
        let o = client_options_with(&ClientView::resolve(&doc).unwrap(), &env);
        assert_eq!(o.http_proxy.as_deref(), Some("http://upper:1"));
        assert_eq!(o.https_proxy.as_deref(), Some("http://lower:2"));
        assert_eq!(
            o.no_proxy,
            vec!["a.example".to_owned(), "127.0.0.1".to_owned()]
        );
        // A proxy in the config wins, and the environment is then ignored entirely.
        let yaml = "registry: {deployment: remote, type: zot, endpoint: r.example, namespaces: {}, remote: {http_proxy: 'http://cfg:3'}}";
        let doc = ocireg_config::load_str(yaml, ocireg_config::Format::Yaml).unwrap();
        let o = client_options_with(&ClientView::resolve(&doc).unwrap(), &env);
        assert_eq!(o.http_proxy.as_deref(), Some("http://cfg:3"));
        assert_eq!((o.https_proxy, o.no_proxy.len()), (None, 0));
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalize_host("https://Reg.Example.com:443/v1/"),
            "reg.example.com:443"
        );
        assert_eq!(normalize_host("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn options_follow_the_remote_section() {
        let yaml = "registry:\n  deployment: remote\n  type: distribution\n  endpoint: reg.example.com\n  port: 443\n  tls_enabled: true\n  namespaces: {}\n  remote:\n    timeout: 7\n    retries: 1\n    retry_delay: 2\n    retry_backoff: 3.0\n    https_proxy: http://proxy:3128\n    no_proxy: [internal]\n    rate_limit: {requests_per_second: 4, burst: 8, pull_limit: 2}\npull_policy: {allow_insecure: true}\n";
        let doc = ocireg_config::load_str(yaml, ocireg_config::Format::Yaml).unwrap();
        let view = ClientView::resolve(&doc).unwrap();
        let o = client_options_with(&view, &|_| None);
        assert_eq!(o.timeout, Duration::from_secs(7));
        assert_eq!((o.retries, o.retry_delay), (1, Duration::from_secs(2)));
        assert!((o.retry_backoff - 3.0).abs() < f64::EPSILON);
        assert_eq!(o.https_proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(o.http_proxy, None);
        assert_eq!(o.no_proxy, vec!["internal".to_owned()]);
        let rate = o.rate.unwrap();
        assert_eq!((rate.requests_per_second, rate.burst), (4, 8));
        assert_eq!((rate.pull_limit, rate.push_limit), (Some(2), None));
        assert!(o.allow_insecure);
        let mut ctx = Ctx {
            doc,
            view,
            options: ClientOptions::default(),
            registry_flag: None,
            plain_http: false,
            credentials: None,
        };
        assert_eq!(ctx.configured().host, "reg.example.com:443");
        assert_eq!(ctx.configured().scheme, "https");
        assert_eq!(ctx.endpoint(Some("127.0.0.1:9"), None).scheme, "http");
        assert_eq!(ctx.endpoint(Some("other.example"), None).scheme, "https");
        assert_eq!(ctx.endpoint(Some("x:1"), Some("http")).scheme, "http");
        // --registry replaces the configured registry; --plain-http turns every scheme to http
        // but one the argument spells out.
        ctx.registry_flag = Some("other.example:5000".into());
        assert_eq!(ctx.configured().base_url(), "https://other.example:5000");
        ctx.plain_http = true;
        assert_eq!(ctx.configured().base_url(), "http://other.example:5000");
        assert_eq!(ctx.endpoint(Some("r.example"), None).scheme, "http");
        ctx.registry_flag = Some("https://tls.example".into());
        assert_eq!(ctx.configured().base_url(), "https://tls.example");
        ctx.registry_flag = None;
        assert_eq!(ctx.configured().base_url(), "http://reg.example.com:443");
    }

    #[test]
    fn connection_flags_allow_what_they_ask_for() {
        let mut o = ClientOptions::default();
        apply_flags(&mut o, &ConnArgs::default());
        assert!(o.verify_ssl && !o.allow_insecure);
        let plain = ConnArgs {
            plain_http: true,
            ..ConnArgs::default()
        };
        apply_flags(&mut o, &plain);
        assert!(o.verify_ssl && o.allow_insecure);
        let mut o = ClientOptions::default();
        let insecure = ConnArgs {
            insecure: true,
            ..ConnArgs::default()
        };
        apply_flags(&mut o, &insecure);
        assert!(!o.verify_ssl && o.allow_insecure);
    }
}
