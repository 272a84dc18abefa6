//! `registry.features.quota_enabled` + `quota_config` → the store's [`QuotaOptions`].
//!
//! Limits in GB are GiB (×2^30). `namespace_quotas` keys: a key of `registry.namespaces`
//! (`extensions`, `kcl_packages`, `platform_images`, `test_images`, or a `custom` key) stands
//! for that namespace's value; any other key is a namespace name as is.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use ocireg_config::{OCINamespaces, OCIRegistryConfig};
use ocireg_store::{NamespaceLimit, QuotaOptions};

const GIB: u64 = 1 << 30;

fn positive(v: i64, what: &str) -> anyhow::Result<u64> {
    u64::try_from(v)
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("registry.features.quota_config.{what} must be positive"))
}

fn gib(v: i64, what: &str) -> anyhow::Result<u64> {
    positive(v, what)?
        .checked_mul(GIB)
        .with_context(|| format!("registry.features.quota_config.{what} is too large"))
}

/// The namespace a `namespace_quotas` key stands for.
pub(super) fn namespace_for_key(namespaces: &OCINamespaces, key: &str) -> String {
    let named = match key {
        "extensions" => Some(&namespaces.extensions),
        "kcl_packages" => Some(&namespaces.kcl_packages),
        "platform_images" => Some(&namespaces.platform_images),
        "test_images" => Some(&namespaces.test_images),
        _ => namespaces.custom.as_ref().and_then(|c| c.get(key)),
    };
    named.map_or_else(|| key.to_owned(), Clone::clone)
}

/// The store's quota, or `None` when `features.quota_enabled` is false (or absent).
pub(super) fn store_quota(reg: &OCIRegistryConfig) -> anyhow::Result<Option<QuotaOptions>> {
    let Some(features) = &reg.features else {
        return Ok(None);
    };
    if !features.quota_enabled {
        if features.quota_config.is_some() {
            tracing::warn!(
                "registry.features.quota_config is ignored: registry.features.quota_enabled is false"
            );
        }
        return Ok(None);
    }
    let config = match &features.quota_config {
        Some(c) => c.clone(),
        None => super::schema_defaults("QuotaConfig")?,
    };
    let mut namespaces = BTreeMap::new();
    for (key, q) in config.namespace_quotas.iter().flatten() {
        let ns = namespace_for_key(&reg.namespaces, key);
        if ns.contains('/') {
            bail!("registry.features.quota_config.namespace_quotas.{key}: namespace {ns:?} must be one path component");
        }
        let limit = NamespaceLimit {
            storage_limit_bytes: Some(gib(
                q.storage_limit_gb,
                &format!("namespace_quotas.{key}.storage_limit_gb"),
            )?),
            artifact_limit: Some(positive(
                q.artifact_limit,
                &format!("namespace_quotas.{key}.artifact_limit"),
            )?),
        };
        if namespaces.insert(ns.clone(), limit).is_some() {
            bail!(
                "registry.features.quota_config.namespace_quotas: two keys name namespace {ns:?}"
            );
        }
    }
    Ok(Some(QuotaOptions {
        storage_limit_bytes: Some(gib(config.storage_limit_gb, "storage_limit_gb")?),
        artifact_limit: Some(positive(config.artifact_limit, "artifact_limit")?),
        namespaces,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(yaml_features: serde_json::Value) -> OCIRegistryConfig {
        let value = ocireg_config::validate_schema(
            "OCIRegistryConfig",
            serde_json::json!({
                "deployment": "local",
                "type": "zot",
                "endpoint": "localhost",
                "namespaces": { "custom": { "team": "team-artifacts" } },
                "local": { "data_dir": "/srv/reg", "config_path": "/srv/reg/c.yml" },
                "features": yaml_features,
            }),
        )
        .unwrap();
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn quota_off_unless_enabled() {
        assert_eq!(store_quota(&reg(serde_json::json!({}))).unwrap(), None);
        let r = reg(serde_json::json!({ "quota_config": { "storage_limit_gb": 3 } }));
        assert_eq!(store_quota(&r).unwrap(), None);
    }

    #[test]
    fn maps_limits_and_namespace_keys() {
        let r = reg(serde_json::json!({
            "quota_enabled": true,
            "quota_config": {
                "storage_limit_gb": 2,
                "artifact_limit": 7,
                "namespace_quotas": {
                    "extensions": { "storage_limit_gb": 1, "artifact_limit": 3 },
                    "team": { "storage_limit_gb": 4, "artifact_limit": 5 },
                    "scratch": {}
                }
            }
        }));
        let q = store_quota(&r).unwrap().unwrap();
        assert_eq!(q.storage_limit_bytes, Some(2 << 30));
        assert_eq!(q.artifact_limit, Some(7));
        let names: Vec<&str> = q.namespaces.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["provisioning-extensions", "scratch", "team-artifacts"]
        );
        let ext = &q.namespaces["provisioning-extensions"];
        assert_eq!(ext.storage_limit_bytes, Some(1 << 30));
        assert_eq!(ext.artifact_limit, Some(3));
        assert_eq!(q.namespaces["team-artifacts"].artifact_limit, Some(5));
        // Schema defaults for an empty entry: 50 GB, 1000 artifacts.
        assert_eq!(q.namespaces["scratch"].storage_limit_bytes, Some(50 << 30));
        assert_eq!(q.namespaces["scratch"].artifact_limit, Some(1000));
    }

    #[test]
    fn enabled_without_config_uses_schema_defaults() {
        let q = store_quota(&reg(serde_json::json!({ "quota_enabled": true })))
            .unwrap()
            .unwrap();
        assert_eq!(q.storage_limit_bytes, Some(100 << 30));
        assert_eq!(q.artifact_limit, Some(10000));
        assert!(q.namespaces.is_empty());
    }
}
