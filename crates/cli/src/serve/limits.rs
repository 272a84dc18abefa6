//! `registry.local.limits_config` → the server's [`ocireg_server::Limits`] and manifest size
//! (absent block = the schema's defaults).

use std::time::Duration;

use anyhow::Context;
use ocireg_config::{LocalLimitsConfig, LocalOCIConfig};
use ocireg_server::Limits;

const LIMITS: &str = "registry.local.limits_config";

fn config(local: &LocalOCIConfig) -> anyhow::Result<LocalLimitsConfig> {
    if let Some(l) = &local.limits_config {
        return Ok(l.clone());
    }
    // The schema's defaults: the same `local` block with an empty limits block, normalized
    // (extension schemas are reachable through their parent only).
    let mut value = serde_json::to_value(local).context("encoding registry.local")?;
    value["limits_config"] = serde_json::json!({});
    let value = ocireg_config::validate_schema("LocalOCIConfig", value)?;
    let filled: LocalOCIConfig =
        serde_json::from_value(value).context("decoding registry.local")?;
    filled
        .limits_config
        .with_context(|| format!("{LIMITS}: no defaults"))
}

fn count<T: TryFrom<i64>>(v: i64, field: &str) -> anyhow::Result<T> {
    T::try_from(v)
        .ok()
        .with_context(|| format!("{LIMITS}.{field} = {v} is out of range"))
}

/// The request, name, session and rate limits.
pub(super) fn limits(local: &LocalOCIConfig) -> anyhow::Result<Limits> {
    let c = config(local)?;
    Ok(Limits {
        max_header_bytes: count(c.max_header_bytes, "max_header_bytes")?,
        max_name_length: count(c.max_name_length, "max_name_length")?,
        max_upload_sessions_per_client: count(
            c.max_upload_sessions_per_client,
            "max_upload_sessions_per_client",
        )?,
        upload_session_ttl: Duration::from_secs(count(c.upload_session_ttl, "upload_session_ttl")?),
        rate_limit_rps: count(c.rate_limit_rps, "rate_limit_rps")?,
        rate_limit_burst: count(c.rate_limit_burst, "rate_limit_burst")?,
    })
}

/// The largest manifest body accepted, in bytes.
pub(super) fn max_manifest_bytes(local: &LocalOCIConfig) -> anyhow::Result<usize> {
    count(config(local)?.max_manifest_bytes, "max_manifest_bytes")
}
