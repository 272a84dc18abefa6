//! The seed's `check:` blocks, one function per schema, with the seed's messages.
//!
//! Each check reads the defaulted instance through [`View`]; when a value it needs is absent
//! or invalid (already reported), the check is skipped. Each failed check is reported once,
//! against the field it is about.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use regex::Regex;

use crate::error::FieldError;
use crate::normalize::View;

type Errors = Vec<FieldError>;

/// Compiled patterns by source text. Only the seed's constant patterns are ever compiled, so
/// the cache stays tiny; compiling on every check made validation ~100x slower.
static COMPILED: OnceLock<Mutex<HashMap<&'static str, Option<Regex>>>> = OnceLock::new();

/// KCL's `regex.match(s, pattern)`: true when the pattern matches anywhere in `s` (a search;
/// the seed's patterns anchor with `^` and `$`, and `$` matches only at the very end).
pub(crate) fn regex_match(s: &str, pattern: &'static str) -> bool {
    let re = {
        let mut cache = COMPILED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(pattern)
            .or_insert_with(|| Regex::new(pattern).ok())
            .clone()
    };
    re.is_some_and(|re| re.is_match(s))
}

/// The seed's regular expressions.
pub(crate) const DATA_DIR_PATTERN: &str = r"^[~/]";
/// Namespace names (`extensions`, `kcl_packages`).
pub(crate) const NAMESPACE_PATTERN: &str = r"^[a-z0-9][a-z0-9-]*[a-z0-9]$";
/// Tags.
pub(crate) const TAG_PATTERN: &str = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$";

// Hints printed after a seed check's message where its rule is not obvious from the message.
const EMPTY_HINT: &str = "it is set to the empty string \"\"";
const DATA_DIR_HINT: &str =
    "start it with \"/\" (absolute) or \"~\" (home-relative), e.g. ~/.provisioning/oci-registry";
const NAMESPACE_HINT: &str = "a namespace has at least 2 characters, only a-z, 0-9 and \"-\", \
     and starts and ends with a letter or digit, e.g. \"provisioning-extensions\"";
const TAG_HINT: &str = "a tag has 1 to 128 characters (letters, digits, \"_\", \".\" and \"-\") \
     and does not start with \".\" or \"-\"";

/// KCL's `len(s) > 0` when `s` is known; `None` when it is absent or invalid.
fn non_empty(v: &View<'_>, key: &str) -> Option<bool> {
    v.str(key).map(|s| !s.is_empty())
}

fn require_non_empty(v: &View<'_>, e: &mut Errors, key: &str, message: &str) {
    if non_empty(v, key) == Some(false) {
        v.fail_with_hint(e, key, message, EMPTY_HINT);
    }
}

fn require_positive(v: &View<'_>, e: &mut Errors, key: &str, message: &str) {
    if v.int(key).is_some_and(|n| n <= 0) {
        v.fail(e, key, message);
    }
}

fn require_match(
    v: &View<'_>,
    e: &mut Errors,
    key: &str,
    pattern: &'static str,
    message: &str,
    hint: &str,
) {
    if v.str(key).is_some_and(|s| !regex_match(s, pattern)) {
        v.fail_with_hint(e, key, message, hint);
    }
}

/// Schemas without checks.
pub(crate) fn none(_: &View<'_>, _: &mut Errors) {}

/// `OCIRegistryConfig` (and the Zot / Harbor sub-schemas).
pub(crate) fn oci_registry_config(v: &View<'_>, e: &mut Errors) {
    require_non_empty(v, e, "endpoint", "OCI registry endpoint required");
    // port == Undefined or (port > 0 and port < 65536)
    if v.int("port").is_some_and(|p| !(p > 0 && p < 65536)) {
        v.fail(e, "port", "Port must be 1-65535");
    }
    let deployment = v.str("deployment");
    // deployment == "disabled" or (local and local != Undefined) or (remote and remote != Undefined)
    match deployment {
        Some("local") if !v.defined("local") => {
            v.fail_with_hint(
                e,
                "local",
                "Config must match deployment type",
                "deployment \"local\" needs a `local` block with data_dir and config_path",
            );
        }
        Some("remote") if !v.defined("remote") => {
            v.fail_with_hint(
                e,
                "remote",
                "Config must match deployment type",
                "deployment \"remote\" needs a `remote` block (`remote: {}` takes every default)",
            );
        }
        _ => {}
    }
    // not auth_required or (username != Undefined or auth_token_path != Undefined)
    if v.bool("auth_required") == Some(true)
        && !(v.defined("username") || v.defined("auth_token_path"))
    {
        v.fail_with_hint(
            e,
            "auth_required",
            "Authentication config required when auth enabled",
            "with auth_required: true, set username (and password_path) or auth_token_path",
        );
    }
    // not tls_enabled or (tls_cert_path != Undefined and tls_key_path != Undefined) or deployment == "remote"
    if v.bool("tls_enabled") == Some(true)
        && !(v.defined("tls_cert_path") && v.defined("tls_key_path"))
        && deployment.is_some_and(|d| d != "remote")
    {
        v.fail_with_hint(
            e,
            "tls_enabled",
            "TLS cert/key required for local TLS",
            "with tls_enabled: true, set both tls_cert_path and tls_key_path \
             (only a remote deployment may leave them out)",
        );
    }
}

/// `LocalOCIConfig`.
pub(crate) fn local_oci_config(v: &View<'_>, e: &mut Errors) {
    require_non_empty(v, e, "data_dir", "Data directory required");
    require_non_empty(v, e, "config_path", "Config path required");
    require_match(
        v,
        e,
        "data_dir",
        DATA_DIR_PATTERN,
        "Data dir must be absolute or home-relative path",
        DATA_DIR_HINT,
    );
    crate::extensions::binary_path(v, e);
}

/// `LocalHTTPConfig`.
pub(crate) fn local_http_config(v: &View<'_>, e: &mut Errors) {
    if v.int("listen_port").is_some_and(|p| !(p > 0 && p < 65536)) {
        v.fail(e, "listen_port", "Port must be 1-65535");
    }
}

/// `RemoteOCIConfig`.
pub(crate) fn remote_oci_config(v: &View<'_>, e: &mut Errors) {
    require_positive(v, e, "timeout", "Timeout must be positive");
    if v.int("retries").is_some_and(|n| n < 0) {
        v.fail(e, "retries", "Retries must be non-negative");
    }
    if v.float("retry_backoff").is_some_and(|b| b <= 1.0) {
        v.fail(e, "retry_backoff", "Backoff multiplier must be > 1.0");
    }
}

/// `RateLimitConfig`.
pub(crate) fn rate_limit_config(v: &View<'_>, e: &mut Errors) {
    require_positive(v, e, "requests_per_second", "Rate limit must be positive");
    require_positive(v, e, "burst", "Burst size must be positive");
}

/// `OCINamespaces`.
pub(crate) fn oci_namespaces(v: &View<'_>, e: &mut Errors) {
    require_non_empty(v, e, "extensions", "Extensions namespace required");
    require_non_empty(v, e, "kcl_packages", "KCL packages namespace required");
    require_non_empty(
        v,
        e,
        "platform_images",
        "Platform images namespace required",
    );
    require_non_empty(v, e, "test_images", "Test images namespace required");
    require_match(
        v,
        e,
        "extensions",
        NAMESPACE_PATTERN,
        "Extensions namespace must be lowercase alphanumeric with hyphens",
        NAMESPACE_HINT,
    );
    require_match(
        v,
        e,
        "kcl_packages",
        NAMESPACE_PATTERN,
        "KCL packages namespace must be lowercase alphanumeric with hyphens",
        NAMESPACE_HINT,
    );
}

/// `OCIRegistryFeatures`.
pub(crate) fn oci_registry_features(v: &View<'_>, e: &mut Errors) {
    if v.bool("vulnerability_scanning") == Some(true) && !v.defined("scanner_type") {
        v.fail_with_hint(
            e,
            "scanner_type",
            "Scanner type required when vulnerability scanning enabled",
            "set scanner_type to \"trivy\", \"clair\" or \"anchore\", or vulnerability_scanning: false",
        );
    }
    if v.bool("image_signing") == Some(true) && !v.defined("signing_method") {
        v.fail_with_hint(
            e,
            "signing_method",
            "Signing method required when image signing enabled",
            "set signing_method to \"notary\" or \"cosign\", or image_signing: false",
        );
    }
}

/// `ReplicationTarget`.
pub(crate) fn replication_target(v: &View<'_>, e: &mut Errors) {
    require_non_empty(v, e, "name", "Replication target name required");
    require_non_empty(v, e, "endpoint", "Replication endpoint required");
}

/// `QuotaConfig`.
pub(crate) fn quota_config(v: &View<'_>, e: &mut Errors) {
    require_positive(v, e, "storage_limit_gb", "Storage limit must be positive");
}

/// `NamespaceQuota`.
pub(crate) fn namespace_quota(v: &View<'_>, e: &mut Errors) {
    require_positive(
        v,
        e,
        "storage_limit_gb",
        "Namespace storage limit must be positive",
    );
    require_positive(
        v,
        e,
        "artifact_limit",
        "Namespace artifact limit must be positive",
    );
}

/// `OCIArtifactReference`.
pub(crate) fn oci_artifact_reference(v: &View<'_>, e: &mut Errors) {
    require_non_empty(v, e, "registry", "Registry required");
    require_non_empty(v, e, "namespace", "Namespace required");
    require_non_empty(v, e, "repository", "Repository required");
    require_non_empty(v, e, "tag", "Tag required");
    require_match(v, e, "tag", TAG_PATTERN, "Invalid tag format", TAG_HINT);
}

/// `OCIPullPolicy`.
pub(crate) fn oci_pull_policy(v: &View<'_>, e: &mut Errors) {
    require_positive(v, e, "cache_ttl", "Cache TTL must be positive");
    if v.str("policy")
        .is_some_and(|p| !["always", "if-not-present", "never"].contains(&p))
    {
        v.fail_with_hint(
            e,
            "policy",
            "Invalid pull policy",
            "policy is one of \"always\", \"if-not-present\", \"never\"",
        );
    }
}

/// `OCIPushPolicy`.
pub(crate) fn oci_push_policy(v: &View<'_>, e: &mut Errors) {
    if v.int("compression_level")
        .is_some_and(|c| !(0..=9).contains(&c))
    {
        v.fail(e, "compression_level", "Compression level must be 0-9");
    }
}

/// `HarborConfig`.
pub(crate) fn harbor_config(v: &View<'_>, e: &mut Errors) {
    require_non_empty(v, e, "project", "Harbor project required");
}
