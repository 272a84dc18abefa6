#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `registry.local.auth_config` extension: optional, validated with field paths, and absent
//! from the effective output of documents that do not use it.

use ocireg_config::{load_str, render_document, Format, OutputFormat};

const BASE: &str = r#"
registry:
  deployment: local
  type: zot
  endpoint: localhost
  auth_required: true
  username: admin
  namespaces: {}
  local:
    data_dir: /tmp/x
    config_path: /tmp/x/c.yml
"#;

#[test]
fn absent_extension_renders_nothing_new() {
    let doc = load_str(BASE, Format::Yaml).unwrap();
    let out = render_document(&doc, OutputFormat::Json).unwrap();
    assert!(!out.contains("auth_config"), "{out}");
}

#[test]
fn extension_defaults_and_values() {
    let text = format!(
        "{BASE}    auth_config:\n      htpasswd_path: /etc/h\n      groups: {{devs: [a, b]}}\n      access:\n        - repositories: [\"team/**\"]\n          read: [anonymous]\n          write: [\"group:devs\"]\n"
    );
    let doc = load_str(&text, Format::Yaml).unwrap();
    let a = doc
        .registry
        .local
        .as_ref()
        .unwrap()
        .auth_config
        .as_ref()
        .unwrap();
    assert_eq!(a.token_expiry, 300);
    assert!(a.token_enabled);
    assert_eq!(a.token_service, "ocireg");
    assert_eq!(a.groups.as_ref().unwrap()["devs"], vec!["a", "b"]);
    let rule = &a.access.as_ref().unwrap()[0];
    assert_eq!(
        rule.write.as_ref().unwrap(),
        &vec!["group:devs".to_string()]
    );
}

#[test]
fn extension_checks_report_paths() {
    let text = format!(
        "{BASE}    auth_config:\n      token_expiry: 0\n      bogus: 1\n      access:\n        - read: [\"group:\"]\n        - repositories: [\"Bad Pattern\"]\n"
    );
    let err = load_str(&text, Format::Yaml).unwrap_err().to_string();
    for want in [
        "registry.local.auth_config.token_expiry: Token expiry must be 1-86400 seconds",
        "registry.local.auth_config.bogus",
        "registry.local.auth_config.access[0].repositories: Access rule needs repositories or namespaces",
        "registry.local.auth_config.access[0].read: Principals are user names",
        "registry.local.auth_config.access[1].repositories: Repository patterns use",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn extension_schemas_validate_by_name_with_their_defaults() {
    for name in ["LocalAuthConfig", "LocalLimitsConfig", "LocalOpsConfig"] {
        let v = ocireg_config::validate_schema(name, serde_json::json!({}))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v.is_object(), "{name}");
    }
    let ops = ocireg_config::validate_schema("LocalOpsConfig", serde_json::json!({})).unwrap();
    assert_eq!(ops["gc_grace_period"], 3600);
    let err = ocireg_config::validate_schema(
        "LocalLimitsConfig",
        serde_json::json!({"rate_limit_rps": -1}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Limit must be non-negative"), "{err}");
}
