//! Seed checks of the nested schemas, sub-schemas and shape errors (exact strings).

use serde_json::{json, Value};

use crate::tests_checks::{errs, ok, reg};
use crate::{validate_schema, ConfigError};

#[test]
fn registry_features() {
    assert_eq!(
        ok("OCIRegistryFeatures", json!({})),
        json!({"vulnerability_scanning": false, "image_signing": false, "replication_enabled": false, "quota_enabled": false, "webhook_enabled": false, "gc_enabled": true, "gc_schedule": "0 2 * * *"})
    );
    assert_eq!(
        errs(
            "OCIRegistryFeatures",
            json!({"vulnerability_scanning": true})
        ),
        ["scanner_type: Scanner type required when vulnerability scanning enabled"]
    );
    assert_eq!(
        errs(
            "OCIRegistryFeatures",
            json!({"image_signing": true, "signing_method": null})
        ),
        ["signing_method: Signing method required when image signing enabled"]
    );
    ok(
        "OCIRegistryFeatures",
        json!({"vulnerability_scanning": true, "scanner_type": "trivy", "image_signing": true, "signing_method": "cosign"}),
    );
    assert_eq!(
        errs(
            "OCIRegistryFeatures",
            json!({"replication_targets": [{"name": "n", "type": "harbor", "endpoint": "e"}, {"name": "", "type": "aws-ecr", "endpoint": ""}]})
        ),
        [
            "replication_targets[1].name: Replication target name required",
            "replication_targets[1].endpoint: Replication endpoint required"
        ]
    );
}

#[test]
fn replication_target() {
    assert_eq!(
        ok(
            "ReplicationTarget",
            json!({"name": "n", "type": "docker-hub", "endpoint": "e"})
        ),
        json!({"name": "n", "type": "docker-hub", "endpoint": "e", "verify_ssl": true})
    );
    assert_eq!(
        errs(
            "ReplicationTarget",
            json!({"name": "", "type": "harbor", "endpoint": "e"})
        ),
        ["name: Replication target name required"]
    );
    assert_eq!(
        errs(
            "ReplicationTarget",
            json!({"name": "n", "type": "harbor", "endpoint": ""})
        ),
        ["endpoint: Replication endpoint required"]
    );
}

#[test]
fn quotas() {
    assert_eq!(
        ok("QuotaConfig", json!({})),
        json!({"storage_limit_gb": 100, "artifact_limit": 10000})
    );
    assert_eq!(
        ok("QuotaConfig", json!({"artifact_limit": null}))["artifact_limit"],
        10000
    );
    assert_eq!(
        errs("QuotaConfig", json!({"storage_limit_gb": 0})),
        ["storage_limit_gb: Storage limit must be positive"]
    );
    assert_eq!(
        ok("QuotaConfig", json!({"namespace_quotas": {"team-a": {}}}))["namespace_quotas"],
        json!({"team-a": {"storage_limit_gb": 50, "artifact_limit": 1000}})
    );
    assert_eq!(
        errs(
            "QuotaConfig",
            json!({"namespace_quotas": {"team-a": {"artifact_limit": 0}, "x.y": {"storage_limit_gb": -1}}})
        ),
        [
            "namespace_quotas.team-a.artifact_limit: Namespace artifact limit must be positive",
            "namespace_quotas[\"x.y\"].storage_limit_gb: Namespace storage limit must be positive",
        ]
    );
    assert_eq!(
        errs("NamespaceQuota", json!({"storage_limit_gb": 0})),
        ["storage_limit_gb: Namespace storage limit must be positive"]
    );
    assert_eq!(
        errs("NamespaceQuota", json!({"artifact_limit": 0})),
        ["artifact_limit: Namespace artifact limit must be positive"]
    );
    ok(
        "NamespaceQuota",
        json!({"storage_limit_gb": 1, "artifact_limit": 1}),
    );
}

#[test]
fn artifact_reference() {
    let base = || json!({"registry": "r", "namespace": "n", "repository": "p"});
    assert_eq!(
        ok("OCIArtifactReference", base()),
        json!({"registry": "r", "namespace": "n", "repository": "p", "tag": "latest", "full_reference": "r/n/p:latest"})
    );
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    assert_eq!(
        ok("OCIArtifactReference", with("full_reference", json!("zzz")))["full_reference"],
        "zzz"
    );
    assert_eq!(
        ok("OCIArtifactReference", with("tag", json!("a".repeat(128))))["tag"],
        "a".repeat(128)
    );
    assert_eq!(
        errs("OCIArtifactReference", with("tag", json!("a".repeat(129)))),
        ["tag: Invalid tag format"]
    );
    for bad in [".a", "-a", "a\n", "a:b", "a/b"] {
        assert_eq!(
            errs("OCIArtifactReference", with("tag", json!(bad))),
            ["tag: Invalid tag format"],
            "{bad:?}"
        );
    }
    for good in ["_a", "A.b-c_d", "0"] {
        ok("OCIArtifactReference", with("tag", json!(good)));
    }
    assert_eq!(
        errs("OCIArtifactReference", with("tag", json!(""))),
        ["tag: Tag required", "tag: Invalid tag format"]
    );
    assert_eq!(
        errs("OCIArtifactReference", with("registry", json!(""))),
        ["registry: Registry required"]
    );
    assert_eq!(
        errs("OCIArtifactReference", with("namespace", json!(""))),
        ["namespace: Namespace required"]
    );
    assert_eq!(
        errs("OCIArtifactReference", with("repository", json!(""))),
        ["repository: Repository required"]
    );
    assert_eq!(
        ok("OCIArtifactReference", with("digest", json!("anything")))["digest"],
        "anything"
    );
}

#[test]
fn pull_and_push_policy() {
    assert_eq!(
        ok("OCIPullPolicy", json!({})),
        json!({"policy": "if-not-present", "cache_ttl": 3600, "verify_cached": true, "allow_insecure": false})
    );
    assert_eq!(
        errs("OCIPullPolicy", json!({"cache_ttl": 0})),
        ["cache_ttl: Cache TTL must be positive"]
    );
    assert_eq!(
        errs("OCIPullPolicy", json!({"policy": "sometimes"})),
        ["policy: expected \"always\" | \"if-not-present\" | \"never\", got string \"sometimes\""]
    );
    assert_eq!(
        ok("OCIPushPolicy", json!({})),
        json!({"allow_overwrite": false, "require_signing": false, "auto_tag": true, "tag_format": "v{version}-{timestamp}", "compression_enabled": true, "compression_level": 6})
    );
    for bad in [-1, 10] {
        assert_eq!(
            errs("OCIPushPolicy", json!({"compression_level": bad})),
            ["compression_level: Compression level must be 0-9"]
        );
    }
    for good in [0, 9] {
        ok("OCIPushPolicy", json!({"compression_level": good}));
    }
}

#[test]
fn zot_and_harbor_schemas() {
    let z = ok(
        "ZotRegistryConfig",
        json!({"deployment": "disabled", "endpoint": "e", "namespaces": {}, "zot_features": {}}),
    );
    assert_eq!(z["type"], "zot");
    assert_eq!(
        z["zot_features"],
        json!({"search_enabled": true, "metrics_enabled": true, "metrics_port": 9090, "sync_enabled": false, "scrub_enabled": true, "scrub_interval": "24h"})
    );
    let keys: Vec<&String> = z.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "deployment",
            "type",
            "endpoint",
            "port",
            "tls_enabled",
            "auth_required",
            "namespaces",
            "zot_features"
        ]
    );
    assert_eq!(
        errs(
            "ZotRegistryConfig",
            json!({"deployment": "disabled", "type": "harbor", "endpoint": "e", "namespaces": {}})
        ),
        ["type: expected \"zot\", got string \"harbor\""]
    );
    assert_eq!(
        errs(
            "ZotRegistryConfig",
            json!({"deployment": "disabled", "endpoint": "e", "namespaces": {}, "harbor_config": {"project": "p"}})
        ),
        ["harbor_config: unknown field"]
    );
    let h = ok(
        "HarborRegistryConfig",
        json!({"deployment": "disabled", "endpoint": "e", "namespaces": {}, "harbor_config": {"project": "p"}}),
    );
    assert_eq!(h["type"], "harbor");
    assert_eq!(
        h["harbor_config"],
        json!({"project": "p", "public_project": false, "content_trust": false, "auto_scan": true, "prevent_vulnerable": true, "severity_threshold": "high"})
    );
    assert_eq!(
        errs("HarborConfig", json!({"project": ""})),
        ["project: Harbor project required"]
    );
    assert_eq!(
        errs("HarborConfig", json!({})),
        ["project: required field missing"]
    );
    assert_eq!(
        errs("OCIRegistryConfig", reg(json!({"zot_features": {}}))),
        ["zot_features: unknown field"]
    );
    assert_eq!(ok("ZotFeatures", json!({}))["scrub_interval"], "24h");
}

#[test]
fn shape_errors_all_at_once() {
    let e = errs(
        "OCIRegistryConfig",
        json!({"deployment": "local", "type": "quay", "port": "80", "foo": 1, "tls_enabled": 1,
               "local": {"data_dir": 5, "config_path": "c", "http_config": {"listen_port": 5.5}},
               "namespaces": {"custom": {"a": 1}}, "features": {"webhook_endpoints": ["a", null]}}),
    );
    assert_eq!(
        e,
        [
            "foo: unknown field",
            "type: expected \"distribution\" | \"zot\" | \"harbor\" | \"artifactory\", got string \"quay\"",
            "endpoint: required field missing",
            "port: expected int, got string \"80\"",
            "tls_enabled: expected bool, got int 1",
            "local.data_dir: expected str, got int 5",
            "local.http_config.listen_port: expected int, got float 5.5",
            "namespaces.custom.a: expected str, got int 1",
            "features.webhook_endpoints[1]: expected str, got null",
        ]
    );
    assert_eq!(
        errs("LocalHTTPConfig", json!([1])),
        ["expected LocalHTTPConfig, got list"]
    );
    assert_eq!(
        errs("LocalHTTPConfig", json!({"listen_port": true})),
        ["listen_port: expected int, got bool true"]
    );
    assert_eq!(
        errs("RemoteOCIConfig", json!({"retry_backoff": true})),
        ["retry_backoff: expected float, got bool true"]
    );
    assert_eq!(
        errs("RemoteOCIConfig", json!({"no_proxy": "a"})),
        ["no_proxy: expected [str], got string \"a\""]
    );
    assert_eq!(
        errs("QuotaConfig", json!({"namespace_quotas": []})),
        ["namespace_quotas: expected {str: NamespaceQuota}, got list"]
    );
}

#[test]
fn unknown_schema_lists_names() {
    let e = validate_schema("Nope", json!({})).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownSchema { .. }));
    assert!(
        e.to_string().contains("OCIRegistryConfig, LocalOCIConfig"),
        "{e}"
    );
    let names: Vec<&str> = crate::SCHEMAS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, crate::SCHEMA_NAMES);
    for (name, spec) in crate::SCHEMAS {
        assert_eq!(spec().name, *name);
    }
}
