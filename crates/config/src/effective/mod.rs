//! Effective settings: typed, fully defaulted views of a validated [`Document`], one per
//! consumer, computed once.
//!
//! - [`LocalView`]: what the local lifecycle (`up`, `down`, `status`, `logs`, `config render`)
//!   and the built-in engine share: paths with `~` expanded, the listen and probe addresses,
//!   HTTP timeouts as [`Duration`], storage (a directory, an S3 bucket or an Azure container:
//!   [`StorageBackendView`]);
//! - [`ServeSettings`]: everything `ocireg serve` runs with (auth, limits, GC, scrub, quota,
//!   metrics, search, webhooks) on top of its [`LocalView`];
//! - [`ClientView`]: the client commands' endpoint, remote connection settings and pull cache.
//!
//! Absent optional blocks take their schema's defaults through one helper, and every integer
//! becomes a port, a count or a [`Duration`] through one set of converters whose errors carry the
//! field path.
//!
//! **Which port wins.** A local registry listens on `registry.local.http_config.listen_port`
//! when the `http_config` block is present, else on `registry.port`. Everything that reaches a
//! local deployment (`serve`, `up`, `status`, `gc`, `scrub`, the client commands) uses that
//! resolved listen port; `registry.port` alone is what clients use for a remote registry.

mod client;
mod serve;
mod storage;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::document::validate_schema;
use crate::error::{ConfigError, FieldError};
use crate::init::{native_config_name, SOLO_DATA_DIR};
use crate::load::expand_home_in;
use crate::schemas::{
    Deployment, LocalHTTPConfig, LocalStorageConfig, OCINamespaces, OCIRegistryConfig,
    OCIRegistryFeatures, ZotFeatures,
};

pub use client::{ClientEndpoint, ClientView, RateView, RemoteView};
pub use serve::{
    AccessRuleView, AuthView, GcView, LimitsView, MultiUserView, NamespaceQuotaView, QuotaView,
    ScrubView, ServeSettings, ServeTls, TokenView, WebhookView,
};
pub use storage::{StorageBackendView, StorageView, DEFAULT_S3_REGION};

/// A block as given, or its schema's instance with every default when absent. The only place
/// defaults of an absent block come from.
pub(crate) fn block<T: DeserializeOwned + Clone>(
    given: Option<&T>,
    schema: &str,
) -> Result<T, ConfigError> {
    if let Some(value) = given {
        return Ok(value.clone());
    }
    let value = validate_schema(schema, serde_json::json!({}))?;
    serde_json::from_value(value).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new(
            "",
            format!("internal error: defaults of {schema}: {e}"),
        )])
    })
}

/// A problem at `path`.
pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(vec![FieldError::new(path, message)])
}

/// An integer field as `T`, when it fits.
pub(crate) fn int<T: TryFrom<i64>>(v: i64, path: &str) -> Result<T, ConfigError> {
    T::try_from(v).map_err(|_| invalid(path, format!("{v} is out of range")))
}

/// A positive integer field as `T`.
pub(crate) fn positive<T: TryFrom<i64>>(v: i64, path: &str) -> Result<T, ConfigError> {
    if v <= 0 {
        return Err(invalid(path, "must be positive"));
    }
    int(v, path)
}

/// A port field (0-65535; the schemas' checks narrow listen ports to 1-65535).
pub(crate) fn port(v: i64, path: &str) -> Result<u16, ConfigError> {
    int(v, path)
}

/// A non-negative number of seconds.
pub(crate) fn seconds(v: i64, path: &str) -> Result<Duration, ConfigError> {
    u64::try_from(v)
        .map(Duration::from_secs)
        .map_err(|_| invalid(path, "must not be negative"))
}

/// A positive number of seconds.
pub(crate) fn positive_seconds(v: i64, path: &str) -> Result<Duration, ConfigError> {
    if v <= 0 {
        return Err(invalid(path, "must be a positive number of seconds"));
    }
    seconds(v, path)
}

/// A duration written as `24h`, `30m`, `90s`, `1h30m` or `2d` (units d, h, m, s; at least one;
/// each number a whole count; positive).
pub fn parse_duration(text: &str, path: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let fail = |m: String| invalid(path, m);
    if text.is_empty() {
        return Err(fail("empty duration".into()));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(fail(format!(
                    "duration {text:?}: unknown unit {c:?} (use d, h, m, s)"
                )))
            }
        };
        if digits.is_empty() {
            return Err(fail(format!(
                "duration {text:?}: a number must come before {c:?}"
            )));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| fail(format!("duration {text:?}: number too large")))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| fail(format!("duration {text:?} is too long")))?;
    }
    if !digits.is_empty() {
        return Err(fail(format!(
            "duration {text:?}: the last number has no unit (use d, h, m, s)"
        )));
    }
    if total == 0 {
        return Err(fail(format!("duration {text:?} must be positive")));
    }
    Ok(Duration::from_secs(total))
}

/// An IP address field (`localhost` is the IPv4 loopback).
pub(crate) fn ip(host: &str, path: &str) -> Result<IpAddr, ConfigError> {
    if host == "localhost" {
        return Ok(Ipv4Addr::LOCALHOST.into());
    }
    host.parse()
        .map_err(|_| invalid(path, format!("{host:?} is not an IP address")))
}

/// `host:port`, bracketing IPv6 literals.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl OCIRegistryConfig {
    /// `features`, or the schema's defaults.
    pub fn features_or_default(&self) -> Result<OCIRegistryFeatures, ConfigError> {
        block(self.features.as_ref(), "OCIRegistryFeatures")
    }

    /// `zot_features`, or the schema's defaults (they describe zot's extensions).
    pub fn zot_features_or_default(&self) -> Result<ZotFeatures, ConfigError> {
        block(self.zot_features.as_ref(), "ZotFeatures")
    }
}

impl OCINamespaces {
    /// The namespace a key of `registry.namespaces` names: `extensions`, `kcl_packages`,
    /// `platform_images`, `test_images`, or a key of `custom`. The one place keys are resolved.
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "extensions" => Some(&self.extensions),
            "kcl_packages" => Some(&self.kcl_packages),
            "platform_images" => Some(&self.platform_images),
            "test_images" => Some(&self.test_images),
            other => self.custom.as_ref()?.get(other).map(String::as_str),
        }
    }
}

const HTTP: &str = "registry.local.http_config";
const STORAGE: &str = "registry.local.storage_config";

/// Where a local registry listens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ListenAddr {
    /// `http_config.listen_address` (default `127.0.0.1`).
    pub host: String,
    /// The resolved listen port (see the module docs for which field wins).
    pub port: u16,
}

impl ListenAddr {
    /// `host:port` as configured (IPv6 bracketed).
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// The socket address to bind.
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        let ip = ip(&self.host, &format!("{HTTP}.listen_address"))?;
        Ok(SocketAddr::new(ip, self.port))
    }

    /// The host this machine reaches the listener on: wildcard addresses are probed on
    /// loopback.
    pub fn probe_host(&self) -> &str {
        match self.host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" | "[::]" => "::1",
            other => other,
        }
    }

    /// `probe_host:port`.
    pub fn probe_host_port(&self) -> String {
        host_port(self.probe_host(), self.port)
    }
}

/// `registry.local.http_config`, typed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpView {
    /// The `http_config` block was given.
    pub given: bool,
    /// The listen address.
    pub listen: ListenAddr,
    /// Request read timeout.
    pub read_timeout: Duration,
    /// Response write timeout.
    pub write_timeout: Duration,
    /// Keep-alive idle timeout.
    pub idle_timeout: Duration,
}

/// TLS certificate and key of a local registry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TlsPaths {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// The `binary_path` value that pins the built-in engine (ocireg extension value).
pub const BUILTIN_BINARY: &str = "builtin";

/// What `local.binary_path` asks `ocireg up` to start.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineBinary {
    /// Unset: the type's binary found on PATH, else the built-in engine.
    Search,
    /// `"builtin"`: always the built-in engine, whatever is on PATH.
    Builtin,
    /// This executable (`~` expanded).
    Path(PathBuf),
}

impl EngineBinary {
    fn of(value: Option<&str>, expand: impl Fn(&str) -> PathBuf) -> Self {
        match value {
            None => Self::Search,
            Some(BUILTIN_BINARY) => Self::Builtin,
            Some(path) => Self::Path(expand(path)),
        }
    }
}

/// The local registry of a document, resolved: what the lifecycle and the built-in engine share.
/// Without a `registry.local` block (`given` false) the solo defaults are used.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LocalView {
    /// `registry.local` was given.
    pub given: bool,
    /// `local.data_dir`.
    pub data_dir: PathBuf,
    /// `local.config_path` (without a `local` block: `<data_dir>/` + the type's native name).
    pub config_path: PathBuf,
    /// `local.log_file`.
    pub log_file: PathBuf,
    /// `local.binary_path`: which program `ocireg up` starts.
    pub binary: EngineBinary,
    /// `local.auto_start`.
    pub auto_start: bool,
    /// HTTP settings and the listen address.
    pub http: HttpView,
    /// Storage settings.
    pub storage: StorageView,
    /// TLS files when `tls_enabled` and both are set.
    pub tls: Option<TlsPaths>,
    /// `ca_cert_path`.
    pub ca_cert: Option<PathBuf>,
    /// `zot_features.metrics_port`, or its default.
    pub metrics_port: u16,
}

/// The listen port rule (see the module docs): `http_config.listen_port` when that block is
/// present, else `registry.port`.
pub fn listen_port(reg: &OCIRegistryConfig) -> Result<u16, ConfigError> {
    match reg.local.as_ref().and_then(|l| l.http_config.as_ref()) {
        Some(h) => port(h.listen_port, &format!("{HTTP}.listen_port")),
        None => port(reg.port, "registry.port"),
    }
}

impl LocalView {
    /// Resolves the local registry of `reg`; `home` is what `~` expands to (`None`: `$HOME`).
    pub fn resolve(reg: &OCIRegistryConfig, home: Option<&Path>) -> Result<Self, ConfigError> {
        let expand = |p: &str| expand_home_in(p, home);
        let local = reg.local.as_ref();
        let http_given = local.and_then(|l| l.http_config.as_ref());
        let http: LocalHTTPConfig = block(http_given, "LocalHTTPConfig")?;
        let storage: LocalStorageConfig = block(
            local.and_then(|l| l.storage_config.as_ref()),
            "LocalStorageConfig",
        )?;
        let data_dir = expand(local.map_or(SOLO_DATA_DIR, |l| l.data_dir.as_str()));
        let config_path = match local {
            Some(l) => expand(&l.config_path),
            None => data_dir.join(native_config_name(reg.r#type)),
        };
        let log_file = match local {
            Some(l) => expand(&l.log_file),
            None => data_dir.join("registry.log"),
        };
        let root = match &storage.rootdirectory {
            Some(r) => expand(r),
            None => data_dir.join("storage"),
        };
        let tls = match (reg.tls_enabled, &reg.tls_cert_path, &reg.tls_key_path) {
            (true, Some(cert), Some(key)) => Some(TlsPaths {
                cert: expand(cert),
                key: expand(key),
            }),
            _ => None,
        };
        let secs = |v: i64, f: &str| positive_seconds(v, &format!("{HTTP}.{f}"));
        Ok(Self {
            given: local.is_some(),
            config_path,
            log_file,
            binary: EngineBinary::of(local.and_then(|l| l.binary_path.as_deref()), expand),
            auto_start: local.is_some_and(|l| l.auto_start),
            http: HttpView {
                given: http_given.is_some(),
                listen: ListenAddr {
                    host: http.listen_address.clone(),
                    port: listen_port(reg)?,
                },
                read_timeout: secs(http.read_timeout, "read_timeout")?,
                write_timeout: secs(http.write_timeout, "write_timeout")?,
                idle_timeout: secs(http.idle_timeout, "idle_timeout")?,
            },
            storage: StorageView::resolve(&storage, root)?,
            tls,
            ca_cert: reg.ca_cert_path.as_deref().map(expand),
            metrics_port: port(
                reg.zot_features_or_default()?.metrics_port,
                "registry.zot_features.metrics_port",
            )?,
            data_dir,
        })
    }

    /// `http(s)://probe_host:port/v2/`: where this machine reaches the registry.
    pub fn probe_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/v2/", self.http.listen.probe_host_port())
    }
}

/// Is this a local deployment?
pub(crate) fn is_local(reg: &OCIRegistryConfig) -> bool {
    reg.deployment == Deployment::Local
}

#[cfg(test)]
mod tests;
