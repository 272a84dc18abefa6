//! [`ServeSettings`]: everything the built-in engine (`ocireg serve`) runs with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    block, int, invalid, ip, is_local, parse_duration, positive, positive_seconds, seconds,
    LocalView,
};
use crate::document::Document;
use crate::error::ConfigError;
use crate::extensions::{AccessRule, LocalAuthConfig, LocalLimitsConfig, LocalOpsConfig};
use crate::load::expand_home;
use crate::schemas::{OCINamespaces, OCIRegistryConfig, QuotaConfig, RegistryType};

const AUTH: &str = "registry.local.auth_config";
const LIMITS: &str = "registry.local.limits_config";
const OPS: &str = "registry.local.ops_config";
const QUOTA: &str = "registry.features.quota_config";
const GIB: u64 = 1 << 30;

/// TLS of the built-in engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to (`ca_cert_path`), if set.
    pub client_ca: Option<PathBuf>,
}

/// Authentication and authorization (`auth_required`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthView {
    /// The seed's single user (`username`).
    pub username: Option<String>,
    /// `password_path`.
    pub password_path: Option<PathBuf>,
    /// `auth_token_path`.
    pub token_path: Option<PathBuf>,
    /// `local.auth_config`, when given.
    pub multi_user: Option<MultiUserView>,
    /// Failed logins allowed per client address per window (0 = unlimited).
    pub max_failed_logins: u32,
    /// The failed-login window.
    pub failed_login_window: Duration,
}

/// `registry.local.auth_config`, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiUserView {
    /// htpasswd users file.
    pub htpasswd_path: Option<PathBuf>,
    /// Admin users.
    pub admins: Vec<String>,
    /// Groups: name → members.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Access rules, in order.
    pub rules: Vec<AccessRuleView>,
    /// The token service, when on.
    pub token: Option<TokenView>,
}

/// One access rule with its namespace keys resolved to repository patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRuleView {
    /// Repository patterns (`repositories`, then `<namespace>/**` per namespace key).
    pub patterns: Vec<String>,
    /// Who may pull.
    pub read: Vec<String>,
    /// Who may push.
    pub write: Vec<String>,
    /// Who may delete.
    pub delete: Vec<String>,
}

/// The bearer token service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenView {
    /// Signing key file (`None`: a random key per process).
    pub key_path: Option<PathBuf>,
    /// Service name (audience).
    pub service: String,
    /// Token lifetime.
    pub expiry: Duration,
    /// Realm URL override.
    pub realm: Option<String>,
}

/// `registry.local.limits_config`, typed: the limits the built-in server enforces. The default
/// is the schema's (the block absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsView {
    /// Largest manifest body accepted (bytes).
    pub max_manifest_bytes: usize,
    /// Largest request head (request line + headers) accepted (bytes); the server raises
    /// smaller values to the least its HTTP stack accepts.
    pub max_header_bytes: usize,
    /// Longest repository name accepted (at most 255, the grammar's own cap).
    pub max_name_length: usize,
    /// Open upload sessions per client address (0 = unlimited).
    pub max_upload_sessions_per_client: u32,
    /// A session untouched this long is stale and no longer counts against its client.
    pub upload_session_ttl: Duration,
    /// Requests per second per client address (0 = off).
    pub rate_limit_rps: u32,
    /// Requests a client may send at once above the rate.
    pub rate_limit_burst: u32,
    /// Free space new uploads must leave on the storage (bytes); `None` = the store's default
    /// (1% of the filesystem, at most 256 MiB).
    pub min_free_space: Option<u64>,
}

impl Default for LimitsView {
    /// The schema's defaults (a test keeps the two equal).
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            max_name_length: 255,
            max_upload_sessions_per_client: 100,
            upload_session_ttl: Duration::from_secs(86_400),
            rate_limit_rps: 0,
            rate_limit_burst: 100,
            min_free_space: None,
        }
    }
}

/// Garbage collection: options and schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcView {
    /// Pause between interval runs (`storage_config.gc_enabled` / `gc_interval`), if on.
    pub interval: Option<Duration>,
    /// Cron schedule text (`features.gc_schedule` when the `features` block is present with
    /// `gc_enabled`), if on.
    pub cron: Option<String>,
    /// Unreferenced objects younger than this are kept.
    pub grace_period: Duration,
    /// Untagged manifests are removed too.
    pub delete_untagged: bool,
    /// Upload sessions idle this long are stale.
    pub upload_ttl: Duration,
    /// Shared storage only: how long digests stay marked before a run removes them.
    pub tombstone_wait: Duration,
}

/// Background scrub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubView {
    /// Pause between background runs (`zot_features.scrub_enabled` / `scrub_interval`); `None`
    /// = no background scrub (also without `zot_features`).
    pub interval: Option<Duration>,
    /// Read rate bound (`ops_config.scrub_rate_mb`, MiB/s).
    pub rate_bytes_per_sec: u64,
}

/// Storage quotas (`features.quota_enabled`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaView {
    /// Whole-registry storage limit (bytes).
    pub storage_limit_bytes: u64,
    /// Whole-registry artifact limit.
    pub artifact_limit: u64,
    /// Per-namespace limits, by namespace name.
    pub namespaces: BTreeMap<String, NamespaceQuotaView>,
}

/// One namespace's quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceQuotaView {
    /// Storage limit (bytes).
    pub storage_limit_bytes: u64,
    /// Artifact limit.
    pub artifact_limit: u64,
}

/// Durable webhooks (`features.webhook_enabled` with endpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookView {
    /// `features.webhook_endpoints`, trimmed (URL syntax is the notifier's to check).
    pub endpoints: Vec<String>,
    /// Queue directory: `<data_dir>/webhooks`.
    pub dir: PathBuf,
    /// One delivery attempt's timeout.
    pub timeout: Duration,
    /// First retry delay.
    pub retry_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// HMAC key file, if set.
    pub secret_path: Option<PathBuf>,
}

/// Everything `ocireg serve` runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeSettings {
    /// Paths, listen address, timeouts, storage.
    pub local: LocalView,
    /// TLS, when `tls_enabled`.
    pub tls: Option<ServeTls>,
    /// Authentication, when `auth_required`.
    pub auth: Option<AuthView>,
    /// Request and session limits.
    pub limits: LimitsView,
    /// Garbage collection.
    pub gc: GcView,
    /// Background scrub.
    pub scrub: ScrubView,
    /// Quotas, when on.
    pub quota: Option<QuotaView>,
    /// Metrics endpoint address, when metrics are on (`zot_features.metrics_enabled`).
    pub metrics: Option<SocketAddr>,
    /// Search on (unless `zot_features.search_enabled` is false).
    pub search: bool,
    /// Webhooks, when on.
    pub webhooks: Option<WebhookView>,
    /// Settings given but without effect, one line each, for the log.
    pub notes: Vec<String>,
}

impl ServeSettings {
    /// Where the registry's content is kept (`local.storage.backend`).
    pub fn storage(&self) -> &super::StorageBackendView {
        &self.local.storage.backend
    }

    /// The settings of `doc`'s local deployment; errors for another deployment, a remote-only
    /// type and TLS without its files. The storage backend (a directory, an S3 bucket or an
    /// Azure container) is `local.storage.backend`.
    pub fn resolve(doc: &Document) -> Result<Self, ConfigError> {
        let reg = &doc.registry;
        if !is_local(reg) {
            return Err(invalid(
                "registry.deployment",
                format!(
                    "`ocireg serve` runs the built-in registry of a local deployment, not {:?}",
                    reg.deployment.as_str()
                ),
            ));
        }
        if matches!(reg.r#type, RegistryType::Harbor | RegistryType::Artifactory) {
            return Err(invalid(
                "registry.type",
                format!(
                    "{:?} is remote-only; a local deployment is \"distribution\" or \"zot\"",
                    reg.r#type.as_str()
                ),
            ));
        }
        let Some(local) = &reg.local else {
            return Err(invalid("registry.local", "required for a local deployment"));
        };
        let view = LocalView::resolve(reg, None)?;
        let mut notes = Vec::new();
        let limits = limits(local.limits_config.as_ref())?;
        Ok(Self {
            tls: tls(reg)?,
            auth: auth(reg, &mut notes)?,
            gc: GcView::resolve(reg)?,
            scrub: ScrubView::resolve(reg)?,
            quota: quota(reg, &mut notes)?,
            metrics: metrics(reg, &view)?,
            search: reg.zot_features.as_ref().is_none_or(|z| z.search_enabled),
            webhooks: webhooks(reg, &view, &mut notes)?,
            limits,
            local: view,
            notes,
        })
    }
}

fn tls(reg: &OCIRegistryConfig) -> Result<Option<ServeTls>, ConfigError> {
    if !reg.tls_enabled {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&reg.tls_cert_path, &reg.tls_key_path) else {
        return Err(invalid(
            "registry.tls_enabled",
            "needs registry.tls_cert_path and registry.tls_key_path",
        ));
    };
    Ok(Some(ServeTls {
        cert: expand_home(cert),
        key: expand_home(key),
        client_ca: reg.ca_cert_path.as_deref().map(expand_home),
    }))
}

fn limits(given: Option<&LocalLimitsConfig>) -> Result<LimitsView, ConfigError> {
    let c = block(given, "LocalLimitsConfig")?;
    let p = |f: &str| format!("{LIMITS}.{f}");
    Ok(LimitsView {
        max_manifest_bytes: int(c.max_manifest_bytes, &p("max_manifest_bytes"))?,
        max_header_bytes: int(c.max_header_bytes, &p("max_header_bytes"))?,
        max_name_length: int(c.max_name_length, &p("max_name_length"))?,
        max_upload_sessions_per_client: int(
            c.max_upload_sessions_per_client,
            &p("max_upload_sessions_per_client"),
        )?,
        upload_session_ttl: positive_seconds(c.upload_session_ttl, &p("upload_session_ttl"))?,
        rate_limit_rps: int(c.rate_limit_rps, &p("rate_limit_rps"))?,
        rate_limit_burst: int(c.rate_limit_burst, &p("rate_limit_burst"))?,
        min_free_space: c
            .min_free_space
            .map(|n| int(n, &p("min_free_space")))
            .transpose()?,
    })
}

/// `registry.local.ops_config`, or its defaults.
fn ops(reg: &OCIRegistryConfig) -> Result<LocalOpsConfig, ConfigError> {
    block(
        reg.local.as_ref().and_then(|l| l.ops_config.as_ref()),
        "LocalOpsConfig",
    )
}

impl GcView {
    /// GC options and schedule of `reg` (any deployment; absent blocks = their defaults).
    pub fn resolve(reg: &OCIRegistryConfig) -> Result<Self, ConfigError> {
        let view = LocalView::resolve(reg, None)?;
        let ops = ops(reg)?;
        let limits = limits(reg.local.as_ref().and_then(|l| l.limits_config.as_ref()))?;
        let cron = match &reg.features {
            Some(f) if f.gc_enabled && !f.gc_schedule.trim().is_empty() => {
                Some(f.gc_schedule.trim().to_owned())
            }
            _ => None,
        };
        Ok(Self {
            interval: view.storage.gc_interval,
            cron,
            grace_period: seconds(ops.gc_grace_period, &format!("{OPS}.gc_grace_period"))?,
            delete_untagged: ops.gc_delete_untagged,
            upload_ttl: limits.upload_session_ttl,
            tombstone_wait: seconds(ops.gc_tombstone_wait, &format!("{OPS}.gc_tombstone_wait"))?,
        })
    }
}

impl ScrubView {
    /// Scrub settings of `reg` (any deployment; absent blocks = their defaults).
    pub fn resolve(reg: &OCIRegistryConfig) -> Result<Self, ConfigError> {
        let mb: u64 = positive(ops(reg)?.scrub_rate_mb, &format!("{OPS}.scrub_rate_mb"))?;
        let interval = match &reg.zot_features {
            Some(z) if z.scrub_enabled => Some(parse_duration(
                &z.scrub_interval,
                "registry.zot_features.scrub_interval",
            )?),
            _ => None,
        };
        Ok(Self {
            interval,
            rate_bytes_per_sec: mb.saturating_mul(1 << 20),
        })
    }
}

fn auth(reg: &OCIRegistryConfig, notes: &mut Vec<String>) -> Result<Option<AuthView>, ConfigError> {
    let given = reg.local.as_ref().and_then(|l| l.auth_config.as_ref());
    if !reg.auth_required {
        if given.is_some() {
            notes.push(format!(
                "{AUTH} is ignored: registry.auth_required is false"
            ));
        }
        return Ok(None);
    }
    let cfg: LocalAuthConfig = block(given, "LocalAuthConfig")?;
    let multi_user = given.map(|c| multi_user(c, &reg.namespaces)).transpose()?;
    Ok(Some(AuthView {
        username: reg.username.clone(),
        password_path: reg.password_path.as_deref().map(expand_home),
        token_path: reg.auth_token_path.as_deref().map(expand_home),
        multi_user,
        max_failed_logins: int(cfg.max_failed_logins, &format!("{AUTH}.max_failed_logins"))?,
        failed_login_window: positive_seconds(
            cfg.failed_login_window,
            &format!("{AUTH}.failed_login_window"),
        )?,
    }))
}

fn multi_user(
    cfg: &LocalAuthConfig,
    namespaces: &OCINamespaces,
) -> Result<MultiUserView, ConfigError> {
    let rules = cfg
        .access
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| access_rule(r, namespaces, &format!("{AUTH}.access[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let token = if cfg.token_enabled {
        Some(TokenView {
            key_path: cfg.token_key_path.as_deref().map(expand_home),
            service: cfg.token_service.clone(),
            expiry: positive_seconds(cfg.token_expiry, &format!("{AUTH}.token_expiry"))?,
            realm: cfg.token_realm.clone(),
        })
    } else {
        None
    };
    Ok(MultiUserView {
        htpasswd_path: cfg.htpasswd_path.as_deref().map(expand_home),
        admins: cfg.admins.clone().unwrap_or_default(),
        groups: cfg
            .groups
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        rules,
        token,
    })
}

fn access_rule(
    r: &AccessRule,
    namespaces: &OCINamespaces,
    path: &str,
) -> Result<AccessRuleView, ConfigError> {
    let mut patterns: Vec<String> = r.repositories.clone().unwrap_or_default();
    for key in r.namespaces.iter().flatten() {
        let value = namespaces.get(key).ok_or_else(|| {
            invalid(
                format!("{path}.namespaces"),
                format!("unknown namespace {key:?} (not a key of registry.namespaces)"),
            )
        })?;
        patterns.push(format!("{value}/**"));
    }
    Ok(AccessRuleView {
        patterns,
        read: r.read.clone().unwrap_or_default(),
        write: r.write.clone().unwrap_or_default(),
        delete: r.delete.clone().unwrap_or_default(),
    })
}

fn gib(v: i64, path: &str) -> Result<u64, ConfigError> {
    positive::<u64>(v, path)?
        .checked_mul(GIB)
        .ok_or_else(|| invalid(path, "is too large"))
}

fn quota(
    reg: &OCIRegistryConfig,
    notes: &mut Vec<String>,
) -> Result<Option<QuotaView>, ConfigError> {
    let Some(features) = &reg.features else {
        return Ok(None);
    };
    if !features.quota_enabled {
        if features.quota_config.is_some() {
            notes.push(format!(
                "{QUOTA} is ignored: registry.features.quota_enabled is false"
            ));
        }
        return Ok(None);
    }
    let config: QuotaConfig = block(features.quota_config.as_ref(), "QuotaConfig")?;
    let mut namespaces = BTreeMap::new();
    for (key, q) in config.namespace_quotas.iter().flatten() {
        // A key of registry.namespaces stands for its namespace; any other key is a name as is.
        let ns = reg.namespaces.get(key).unwrap_or(key).to_owned();
        let at = format!("{QUOTA}.namespace_quotas.{key}");
        if ns.contains('/') {
            return Err(invalid(
                at,
                format!("namespace {ns:?} must be one path component"),
            ));
        }
        let limit = NamespaceQuotaView {
            storage_limit_bytes: gib(q.storage_limit_gb, &format!("{at}.storage_limit_gb"))?,
            artifact_limit: positive(q.artifact_limit, &format!("{at}.artifact_limit"))?,
        };
        if namespaces.insert(ns.clone(), limit).is_some() {
            return Err(invalid(
                format!("{QUOTA}.namespace_quotas"),
                format!("two keys name namespace {ns:?}"),
            ));
        }
    }
    Ok(Some(QuotaView {
        storage_limit_bytes: gib(
            config.storage_limit_gb,
            &format!("{QUOTA}.storage_limit_gb"),
        )?,
        artifact_limit: positive(config.artifact_limit, &format!("{QUOTA}.artifact_limit"))?,
        namespaces,
    }))
}

fn metrics(reg: &OCIRegistryConfig, view: &LocalView) -> Result<Option<SocketAddr>, ConfigError> {
    if !reg.zot_features.as_ref().is_some_and(|z| z.metrics_enabled) {
        return Ok(None);
    }
    let host = ops(reg)?.metrics_listen_address;
    let ip = ip(&host, &format!("{OPS}.metrics_listen_address"))?;
    Ok(Some(SocketAddr::new(ip, view.metrics_port)))
}

fn webhooks(
    reg: &OCIRegistryConfig,
    view: &LocalView,
    notes: &mut Vec<String>,
) -> Result<Option<WebhookView>, ConfigError> {
    let Some(features) = reg.features.as_ref().filter(|f| f.webhook_enabled) else {
        return Ok(None);
    };
    let endpoints: Vec<String> = features
        .webhook_endpoints
        .iter()
        .flatten()
        .map(|e| e.trim().to_owned())
        .collect();
    if endpoints.is_empty() {
        notes.push(
            "registry.features.webhook_enabled is true but registry.features.webhook_endpoints is empty: no webhooks".into(),
        );
        return Ok(None);
    }
    let ops = ops(reg)?;
    let secs = |v: i64, f: &str| positive_seconds(v, &format!("{OPS}.{f}"));
    let hook = WebhookView {
        endpoints,
        dir: view.data_dir.join("webhooks"),
        timeout: secs(ops.webhook_timeout, "webhook_timeout")?,
        retry_delay: secs(ops.webhook_retry_delay, "webhook_retry_delay")?,
        retry_max_delay: secs(ops.webhook_retry_max_delay, "webhook_retry_max_delay")?,
        secret_path: ops.webhook_secret_path.as_deref().map(expand_home),
    };
    if hook.retry_max_delay < hook.retry_delay {
        return Err(invalid(
            format!("{OPS}.webhook_retry_max_delay"),
            "must be at least webhook_retry_delay",
        ));
    }
    Ok(Some(hook))
}

#[cfg(test)]
mod limits_tests {
    use super::*;

    #[test]
    fn default_limits_are_the_schema_defaults() {
        assert_eq!(LimitsView::default(), limits(None).unwrap());
    }
}
