//! ocireg's documented extensions of the seed: server-side settings the seed has no field
//! for (users file, token service, access rules). They hang off `LocalOCIConfig` as optional
//! fields without defaults, so documents that do not use them render exactly as before.

use indexmap::IndexMap;

use crate::error::FieldError;
use crate::normalize::View;
use crate::spec::schema;

type Errors = Vec<FieldError>;

schema! {
    /// Authentication and authorization of the built-in registry (ocireg extension)
    ///
    /// Used with `auth_required = true`. The seed's `username` is always an admin.
    LocalAuthConfig, checks = local_auth_config;
    fields {
        /// htpasswd users file (bcrypt entries only, `htpasswd -B`)
        htpasswd_path: Option<String> = opt;
        /// Users who may do everything, delete included
        admins: Option<Vec<String>> = opt;
        /// Groups: group name -> member user names
        groups: Option<IndexMap<String, Vec<String>>> = opt;
        /// Access rules; the first rule matching a repository decides
        access: Option<Vec<AccessRule>> = opt;
        /// Bearer token service (Docker token flow) at /v2/_ocireg/token
        token_enabled: bool = def(true);
        /// Token signing key: PEM EC P-256 private key (ES256) or a secret of 32+ characters (HS256); unset = random per start
        token_key_path: Option<String> = opt;
        /// Token lifetime (seconds)
        token_expiry: i64 = def(300);
        /// Token service name (audience)
        token_service: String = def("ocireg");
        /// Token realm URL (default: <scheme>://<request host>/v2/_ocireg/token)
        token_realm: Option<String> = opt;
        /// Failed logins allowed per client address per window (0 = unlimited)
        max_failed_logins: i64 = def(10);
        /// Failed-login window (seconds)
        failed_login_window: i64 = def(60);
    }
}

schema! {
    /// One access rule (ocireg extension)
    ///
    /// Principals: a user name, `group:NAME`, `*` (any authenticated user) or `anonymous`.
    AccessRule, checks = access_rule;
    fields {
        /// Repository patterns: `*` within a path component, `**` across them
        repositories: Option<Vec<String>> = opt;
        /// Keys of registry.namespaces (each covers `<value>` and `<value>/**`)
        namespaces: Option<Vec<String>> = opt;
        /// Who may pull
        read: Option<Vec<String>> = opt;
        /// Who may push (implies pull)
        write: Option<Vec<String>> = opt;
        /// Who may delete
        delete: Option<Vec<String>> = opt;
    }
}

schema! {
    /// Request and session limits of the built-in registry (ocireg extension)
    ///
    /// Absent = these defaults. Counts of 0 mean unlimited where noted.
    LocalLimitsConfig, checks = local_limits_config;
    fields {
        /// Largest manifest body accepted (bytes; the spec asks registries to take at least 4 MiB)
        max_manifest_bytes: i64 = def(4_194_304);
        /// Largest request head (request line + headers) accepted (bytes)
        max_header_bytes: i64 = def(65_536);
        /// Longest repository name accepted (characters)
        max_name_length: i64 = def(255);
        /// Open upload sessions per client address (0 = unlimited)
        max_upload_sessions_per_client: i64 = def(100);
        /// An upload session untouched this long is stale and purged (seconds)
        upload_session_ttl: i64 = def(86_400);
        /// Requests per second per client address (0 = no server-side rate limit)
        rate_limit_rps: i64 = def(0);
        /// Burst above the rate (requests)
        rate_limit_burst: i64 = def(100);
        /// Free space (bytes) kept on the storage: below it new uploads are refused with 507 (unset = 1% of the filesystem or 256 MiB, whichever is smaller; 0 = no reserve)
        min_free_space: Option<i64> = opt;
    }
}

schema! {
    /// Operations of the built-in registry: GC, scrub, metrics, webhooks (ocireg extension)
    ///
    /// Settings the seed has no field for; the seed's own switches still decide what runs.
    LocalOpsConfig, checks = local_ops_config;
    fields {
        /// Unreferenced blobs and upload sessions younger than this are never collected (seconds)
        gc_grace_period: i64 = def(3600);
        /// GC also removes manifests that no tag names and no live manifest refers to
        gc_delete_untagged: bool = def(false);
        /// Shared storage (several replicas on one bucket): how long GC keeps the digests it means to remove marked before it checks them again and removes them; longer than any request (seconds)
        gc_tombstone_wait: i64 = def(600);
        /// Scrub read rate bound (MiB per second)
        scrub_rate_mb: i64 = def(64);
        /// Address the metrics endpoint listens on (port: zot_features.metrics_port)
        metrics_listen_address: String = def("127.0.0.1");
        /// File holding the HMAC-SHA256 key that signs webhook deliveries (unset = unsigned)
        webhook_secret_path: Option<String> = opt;
        /// Timeout of one webhook delivery attempt (seconds)
        webhook_timeout: i64 = def(10);
        /// First retry delay of a failed webhook delivery (seconds); doubles per attempt
        webhook_retry_delay: i64 = def(1);
        /// Longest delay between webhook delivery attempts (seconds)
        webhook_retry_max_delay: i64 = def(300);
    }
}

fn local_auth_config(v: &View<'_>, e: &mut Errors) {
    if v.int("token_expiry")
        .is_some_and(|n| !(1..=86_400).contains(&n))
    {
        v.fail(e, "token_expiry", "Token expiry must be 1-86400 seconds");
    }
    if v.str("token_service").is_some_and(str::is_empty) {
        v.fail(e, "token_service", "Token service name required");
    }
    if v.int("max_failed_logins").is_some_and(|n| n < 0) {
        v.fail(
            e,
            "max_failed_logins",
            "Max failed logins must be non-negative",
        );
    }
    if v.int("failed_login_window").is_some_and(|n| n <= 0) {
        v.fail(
            e,
            "failed_login_window",
            "Failed-login window must be positive",
        );
    }
    if let Some(admins) = v.strs("admins") {
        if admins.iter().any(|a| a.is_empty() || a.contains(':')) {
            v.fail(
                e,
                "admins",
                "Admin names must be non-empty user names without ':'",
            );
        }
    }
}

fn local_limits_config(v: &View<'_>, e: &mut Errors) {
    if v.int("max_manifest_bytes")
        .is_some_and(|n| !(4_194_304..=67_108_864).contains(&n))
    {
        v.fail(
            e,
            "max_manifest_bytes",
            "Max manifest size must be 4 MiB to 64 MiB",
        );
    }
    if v.int("max_header_bytes")
        .is_some_and(|n| !(8_192..=1_048_576).contains(&n))
    {
        v.fail(
            e,
            "max_header_bytes",
            "Max header size must be 8 KiB to 1 MiB",
        );
    }
    if v.int("max_name_length")
        .is_some_and(|n| !(1..=255).contains(&n))
    {
        v.fail(e, "max_name_length", "Max name length must be 1-255");
    }
    for key in [
        "max_upload_sessions_per_client",
        "rate_limit_rps",
        "min_free_space",
    ] {
        if v.int(key).is_some_and(|n| n < 0) {
            v.fail(e, key, "Limit must be non-negative (0 = unlimited)");
        }
    }
    for key in ["upload_session_ttl", "rate_limit_burst"] {
        if v.int(key).is_some_and(|n| n <= 0) {
            v.fail(e, key, "Value must be positive");
        }
    }
}

fn local_ops_config(v: &View<'_>, e: &mut Errors) {
    if v.int("gc_grace_period").is_some_and(|n| n < 0) {
        v.fail(e, "gc_grace_period", "GC grace period must be non-negative");
    }
    if v.int("gc_tombstone_wait").is_some_and(|n| n < 0) {
        v.fail(
            e,
            "gc_tombstone_wait",
            "GC tombstone wait must be non-negative",
        );
    }
    for key in [
        "scrub_rate_mb",
        "webhook_timeout",
        "webhook_retry_delay",
        "webhook_retry_max_delay",
    ] {
        if v.int(key).is_some_and(|n| n <= 0) {
            v.fail(e, key, "Value must be positive");
        }
    }
    if v.str("metrics_listen_address").is_some_and(str::is_empty) {
        v.fail(
            e,
            "metrics_listen_address",
            "Metrics listen address required",
        );
    }
}

/// `local.binary_path`: the extension value `"builtin"` pins the built-in engine, anything
/// else is a path. A value that only differs from it in case or separators is a misspelling,
/// never an executable anyone meant, so it is refused rather than looked up as a file.
pub(crate) fn binary_path(v: &View<'_>, e: &mut Errors) {
    let Some(value) = v.str("binary_path") else {
        return;
    };
    let squashed: String = value
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    if squashed == crate::BUILTIN_BINARY && value != crate::BUILTIN_BINARY {
        v.fail(
            e,
            "binary_path",
            &format!("{value:?} is not a path; \"builtin\" pins the built-in engine"),
        );
    }
}

/// A principal as the auth crate accepts it.
fn principal_ok(p: &str) -> bool {
    match p.strip_prefix("group:") {
        Some(g) => !g.is_empty(),
        None => !p.is_empty() && !p.contains(':'),
    }
}

/// A repository pattern: lowercase name characters, `/`, `*` (no `***`).
fn pattern_ok(p: &str) -> bool {
    !p.is_empty()
        && !p.contains("***")
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
}

fn access_rule(v: &View<'_>, e: &mut Errors) {
    let repos = v.strs("repositories").unwrap_or_default();
    let namespaces = v.strs("namespaces").unwrap_or_default();
    if repos.is_empty() && namespaces.is_empty() {
        v.fail(
            e,
            "repositories",
            "Access rule needs repositories or namespaces",
        );
    }
    if !repos.iter().all(|p| pattern_ok(p)) {
        v.fail(
            e,
            "repositories",
            "Repository patterns use lowercase names, '/', '*' and '**'",
        );
    }
    for key in ["read", "write", "delete"] {
        if !v
            .strs(key)
            .unwrap_or_default()
            .iter()
            .all(|p| principal_ok(p))
        {
            v.fail(
                e,
                key,
                "Principals are user names, group:NAME, '*' or 'anonymous'",
            );
        }
    }
}

/// The extension schemas, for the JSON Schema `$defs`.
pub const EXTENSION_SCHEMAS: &[(&str, crate::schemas::SpecFn)] = &[
    ("LocalAuthConfig", LocalAuthConfig::spec),
    ("AccessRule", AccessRule::spec),
    ("LocalLimitsConfig", LocalLimitsConfig::spec),
    ("LocalOpsConfig", LocalOpsConfig::spec),
    ("LocalS3Config", crate::object_storage::LocalS3Config::spec),
    (
        "LocalAzureConfig",
        crate::object_storage::LocalAzureConfig::spec,
    ),
];
