//! Every seed check, violated alone, with boundaries; shape errors; defaults (exact strings).

use serde_json::{json, Value};

use crate::checks::{regex_match, DATA_DIR_PATTERN, NAMESPACE_PATTERN, TAG_PATTERN};
use crate::validate_schema;

pub(crate) fn errs(schema: &str, v: Value) -> Vec<String> {
    match validate_schema(schema, v) {
        Ok(ok) => panic!("{schema} unexpectedly valid: {ok}"),
        Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
    }
}

pub(crate) fn ok(schema: &str, v: Value) -> Value {
    validate_schema(schema, v).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

pub(crate) fn reg(extra: Value) -> Value {
    let mut base =
        json!({"deployment": "disabled", "type": "zot", "endpoint": "e", "namespaces": {}});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn patterns_compile_and_search_like_kcl() {
    for p in [DATA_DIR_PATTERN, NAMESPACE_PATTERN, TAG_PATTERN] {
        assert!(regex::Regex::new(p).is_ok(), "{p}");
    }
    assert!(regex_match("xab", "ab"), "search, not anchored");
    assert!(!regex_match("ab\n", "^ab$"), "$ only at the very end");
}

#[test]
fn registry_endpoint_and_port() {
    assert_eq!(
        errs("OCIRegistryConfig", reg(json!({"endpoint": ""}))),
        ["endpoint: OCI registry endpoint required"]
    );
    for bad in [0, 65536, -1] {
        assert_eq!(
            errs("OCIRegistryConfig", reg(json!({"port": bad}))),
            ["port: Port must be 1-65535"]
        );
    }
    for good in [1, 65535] {
        assert_eq!(
            ok("OCIRegistryConfig", reg(json!({"port": good})))["port"],
            good
        );
    }
    assert_eq!(ok("OCIRegistryConfig", reg(json!({})))["port"], 5000);
    assert_eq!(
        ok("OCIRegistryConfig", reg(json!({"port": null})))["port"],
        5000
    );
}

#[test]
fn registry_deployment_config() {
    let m = "Config must match deployment type";
    assert_eq!(
        errs("OCIRegistryConfig", reg(json!({"deployment": "local"}))),
        [format!("local: {m}")]
    );
    assert_eq!(
        errs(
            "OCIRegistryConfig",
            reg(json!({"deployment": "local", "remote": {}}))
        ),
        [format!("local: {m}")]
    );
    assert_eq!(
        errs("OCIRegistryConfig", reg(json!({"deployment": "remote"}))),
        [format!("remote: {m}")]
    );
    assert_eq!(
        errs(
            "OCIRegistryConfig",
            reg(json!({"deployment": "local", "local": null}))
        ),
        [format!("local: {m}")]
    );
    ok(
        "OCIRegistryConfig",
        reg(json!({"deployment": "remote", "remote": {}})),
    );
    ok(
        "OCIRegistryConfig",
        reg(json!({"deployment": "local", "local": {"data_dir": "/d", "config_path": "c"}})),
    );
    ok(
        "OCIRegistryConfig",
        reg(json!({"deployment": "disabled", "local": {"data_dir": "/d", "config_path": "c"}})),
    );
    // A given-but-invalid local still counts as given: only its own error is reported.
    assert_eq!(
        errs(
            "OCIRegistryConfig",
            reg(json!({"deployment": "local", "local": {"data_dir": "/d"}}))
        ),
        ["local.config_path: required field missing"]
    );
}

#[test]
fn registry_auth_and_tls() {
    let schema = "OCIRegistryConfig";
    let a = "auth_required: Authentication config required when auth enabled";
    let t = "tls_enabled: TLS cert/key required for local TLS";
    let refused = [
        (json!({"auth_required": true}), a),
        (json!({"auth_required": true, "username": null}), a),
        (json!({"auth_required": true, "password_path": "/p"}), a),
        (json!({"tls_enabled": true}), t),
        (json!({"tls_enabled": true, "tls_cert_path": "c"}), t),
        (json!({"tls_enabled": true, "tls_key_path": "k"}), t),
    ];
    for (extra, want) in refused {
        assert_eq!(errs(schema, reg(extra.clone())), [want], "{extra}");
    }
    let accepted = [
        json!({"auth_required": true, "username": "u"}),
        json!({"auth_required": true, "auth_token_path": "/t"}),
        json!({"auth_required": true, "username": ""}),
        json!({"tls_enabled": true, "tls_cert_path": "c", "tls_key_path": "k"}),
        json!({"tls_enabled": true, "deployment": "remote", "remote": {}}),
    ];
    for extra in accepted {
        ok(schema, reg(extra));
    }
}

#[test]
fn local_oci_config() {
    let base = || json!({"data_dir": "~/x", "config_path": "c"});
    let out = ok("LocalOCIConfig", base());
    assert_eq!(
        out,
        json!({"data_dir": "~/x", "config_path": "c", "auto_start": false, "log_file": "~/x/registry.log"})
    );
    assert_eq!(
        ok(
            "LocalOCIConfig",
            json!({"data_dir": "/d", "config_path": "c", "log_file": "/l"})
        )["log_file"],
        "/l"
    );
    assert_eq!(
        ok(
            "LocalOCIConfig",
            json!({"data_dir": "/d", "config_path": "c", "log_file": null})
        )["log_file"],
        "/d/registry.log"
    );
    assert_eq!(
        errs(
            "LocalOCIConfig",
            json!({"data_dir": "", "config_path": "c"})
        ),
        [
            "data_dir: Data directory required",
            "data_dir: Data dir must be absolute or home-relative path"
        ]
    );
    assert_eq!(
        errs(
            "LocalOCIConfig",
            json!({"data_dir": "/d", "config_path": ""})
        ),
        ["config_path: Config path required"]
    );
    for bad in ["x/~", "relative", "./x", " /x"] {
        assert_eq!(
            errs(
                "LocalOCIConfig",
                json!({"data_dir": bad, "config_path": "c"})
            ),
            ["data_dir: Data dir must be absolute or home-relative path"],
            "{bad}"
        );
    }
    ok(
        "LocalOCIConfig",
        json!({"data_dir": "~", "config_path": "c"}),
    );
}

#[test]
fn local_http_config() {
    assert_eq!(
        ok("LocalHTTPConfig", json!({})),
        json!({"listen_address": "127.0.0.1", "listen_port": 5000, "read_timeout": 60, "write_timeout": 60, "idle_timeout": 120})
    );
    for bad in [0, 65536] {
        assert_eq!(
            errs("LocalHTTPConfig", json!({"listen_port": bad})),
            ["listen_port: Port must be 1-65535"]
        );
    }
    for good in [1, 65535] {
        ok("LocalHTTPConfig", json!({"listen_port": good}));
    }
}

#[test]
fn local_storage_config_defaults() {
    assert_eq!(
        ok("LocalStorageConfig", json!({})),
        json!({"backend": "filesystem", "gc_enabled": true, "gc_interval": 3600, "dedupe_enabled": true})
    );
    assert_eq!(
        errs("LocalStorageConfig", json!({"backend": "gcs"})),
        ["backend: expected \"filesystem\" | \"s3\" | \"azure\", got string \"gcs\""]
    );
}

#[test]
fn remote_oci_config() {
    assert_eq!(
        ok("RemoteOCIConfig", json!({})),
        json!({"timeout": 30, "retries": 3, "retry_delay": 5, "retry_backoff": 2.0, "verify_ssl": true})
    );
    assert_eq!(
        errs("RemoteOCIConfig", json!({"timeout": 0})),
        ["timeout: Timeout must be positive"]
    );
    ok("RemoteOCIConfig", json!({"timeout": 1}));
    assert_eq!(
        errs("RemoteOCIConfig", json!({"retries": -1})),
        ["retries: Retries must be non-negative"]
    );
    ok("RemoteOCIConfig", json!({"retries": 0}));
    for bad in [json!(1.0), json!(1), json!(0.5)] {
        assert_eq!(
            errs("RemoteOCIConfig", json!({"retry_backoff": bad})),
            ["retry_backoff: Backoff multiplier must be > 1.0"]
        );
    }
    assert_eq!(
        ok("RemoteOCIConfig", json!({"retry_backoff": 1.01}))["retry_backoff"],
        1.01
    );
    assert_eq!(
        ok("RemoteOCIConfig", json!({"retry_backoff": 2}))["retry_backoff"],
        2.0
    );
    ok("RemoteOCIConfig", json!({"retry_delay": -1}));
}

#[test]
fn rate_limit_config() {
    assert_eq!(
        ok("RateLimitConfig", json!({})),
        json!({"requests_per_second": 10, "burst": 20})
    );
    assert_eq!(
        errs("RateLimitConfig", json!({"requests_per_second": 0})),
        ["requests_per_second: Rate limit must be positive"]
    );
    assert_eq!(
        errs("RateLimitConfig", json!({"burst": 0})),
        ["burst: Burst size must be positive"]
    );
    ok(
        "RateLimitConfig",
        json!({"requests_per_second": 1, "burst": 1, "pull_limit": -3}),
    );
}

#[test]
fn oci_namespaces() {
    let ext = "extensions: Extensions namespace must be lowercase alphanumeric with hyphens";
    let kcl = "kcl_packages: KCL packages namespace must be lowercase alphanumeric with hyphens";
    assert_eq!(
        errs("OCINamespaces", json!({"extensions": ""})),
        ["extensions: Extensions namespace required", ext]
    );
    assert_eq!(
        errs("OCINamespaces", json!({"kcl_packages": ""})),
        ["kcl_packages: KCL packages namespace required", kcl]
    );
    assert_eq!(
        errs("OCINamespaces", json!({"platform_images": ""})),
        ["platform_images: Platform images namespace required"]
    );
    assert_eq!(
        errs("OCINamespaces", json!({"test_images": ""})),
        ["test_images: Test images namespace required"]
    );
    for bad in ["a", "abc-", "-abc", "Ab", "a_b", "ab\n", "a b"] {
        assert_eq!(
            errs("OCINamespaces", json!({"extensions": bad})),
            [ext],
            "{bad:?}"
        );
        assert_eq!(
            errs("OCINamespaces", json!({"kcl_packages": bad})),
            [kcl],
            "{bad:?}"
        );
    }
    for good in ["ab", "a-b", "00", "a--b"] {
        ok(
            "OCINamespaces",
            json!({"extensions": good, "kcl_packages": good}),
        );
    }
    ok(
        "OCINamespaces",
        json!({"platform_images": "UPPER_x", "test_images": "t"}),
    );
    assert_eq!(
        ok("OCINamespaces", json!({"custom": {"b": "1", "a": "2"}}))["custom"],
        json!({"b": "1", "a": "2"})
    );
}
