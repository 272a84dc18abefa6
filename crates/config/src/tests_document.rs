//! Document shape, loaders for every format, stdin, KCL, effective output (exact strings).

use std::io::Cursor;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::load::evaluate_kcl_with;
use crate::{
    document_from_value, load_path, load_reader, load_str, render_document, to_json_value,
    ConfigError, Deployment, Format, OutputFormat, RegistryType,
};

const SOLO: &str = "registry:
  deployment: local
  type: zot
  endpoint: localhost
  local:
    data_dir: ~/.provisioning/oci-registry
    config_path: ~/.provisioning/oci-registry/config.json
  namespaces: {}
";

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ocireg-config-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn err_lines(r: Result<crate::Document, ConfigError>) -> String {
    r.map(|_| "valid".to_string())
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn minimal_document_effective_output() {
    let doc = load_str(SOLO, Format::Yaml).unwrap();
    assert!(!doc.bare_root && !doc.pull_policy_given && !doc.push_policy_given);
    let want = json!({
        "registry": {
            "deployment": "local", "type": "zot", "endpoint": "localhost", "port": 5000,
            "tls_enabled": false, "auth_required": false,
            "local": {
                "data_dir": "~/.provisioning/oci-registry",
                "config_path": "~/.provisioning/oci-registry/config.json",
                "auto_start": false,
                "log_file": "~/.provisioning/oci-registry/registry.log"
            },
            "namespaces": {
                "extensions": "provisioning-extensions", "kcl_packages": "provisioning-kcl",
                "platform_images": "provisioning-platform", "test_images": "provisioning-test"
            }
        },
        "pull_policy": {"policy": "if-not-present", "cache_ttl": 3600, "verify_cached": true, "allow_insecure": false},
        "push_policy": {"allow_overwrite": false, "require_signing": false, "auto_tag": true,
                        "tag_format": "v{version}-{timestamp}", "compression_enabled": true, "compression_level": 6}
    });
    let got = to_json_value(&doc);
    assert_eq!(got, want);
    // Same key order as the seed (serde_json preserves order; compare serialized text).
    assert_eq!(got.to_string(), want.to_string());
}

#[test]
fn yaml_rendering_snapshot() {
    let doc = load_str(SOLO, Format::Yaml).unwrap();
    let yaml = render_document(&doc, OutputFormat::Yaml).unwrap();
    assert!(
        yaml.starts_with(
            "registry:\n  deployment: local\n  type: zot\n  endpoint: localhost\n  port: 5000\n"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains("    log_file: ~/.provisioning/oci-registry/registry.log\n"),
        "{yaml}"
    );
    let toml = render_document(&doc, OutputFormat::Toml).unwrap();
    assert!(
        toml.contains("[registry.local]\ndata_dir = \"~/.provisioning/oci-registry\"\n"),
        "{toml}"
    );
    for (text, f) in [(yaml, Format::Yaml), (toml, Format::Toml)] {
        assert_eq!(
            to_json_value(&load_str(&text, f).unwrap()),
            to_json_value(&doc)
        );
    }
}

#[test]
fn error_output_snapshot() {
    let text = "registry:
  deployment: local
  type: distribution
  endpoint: ''
  port: 70000
  foo: 1
  tls_enabled: true
  local:
    data_dir: relative/dir
    config_path: c
    http_config:
      listen_port: 0
  namespaces:
    extensions: Bad_Name
  zot_features: {}
pull_policy:
  cache_ttl: 0
push_policy:
  compression_level: 10
extra: true
";
    assert_eq!(
        err_lines(load_str(text, Format::Yaml)),
        "extra: unknown field
registry.zot_features: only allowed when type is \"zot\"
registry.foo: unknown field
registry.local.http_config.listen_port: Port must be 1-65535
registry.local.data_dir: Data dir must be absolute or home-relative path
  hint: start it with \"/\" (absolute) or \"~\" (home-relative), e.g. ~/.provisioning/oci-registry
registry.namespaces.extensions: Extensions namespace must be lowercase alphanumeric with hyphens
  hint: a namespace has at least 2 characters, only a-z, 0-9 and \"-\", and starts and ends with a letter or digit, e.g. \"provisioning-extensions\"
registry.endpoint: OCI registry endpoint required
  hint: it is set to the empty string \"\"
registry.port: Port must be 1-65535
registry.tls_enabled: TLS cert/key required for local TLS
  hint: with tls_enabled: true, set both tls_cert_path and tls_key_path (only a remote deployment may leave them out)
pull_policy.cache_ttl: Cache TTL must be positive
push_policy.compression_level: Compression level must be 0-9"
    );
}

#[test]
fn missing_and_wrong_root() {
    let root = "the document root must be a map with a `registry` key, got";
    let required = ["deployment", "type", "endpoint", "namespaces"]
        .map(|f| format!("registry.{f}: required field missing"))
        .join("\n");
    let no_registry = "registry: required field missing";
    let not_a_map = "registry: expected OCIRegistryConfig, got int 5";
    let cases = [
        ("{}", Format::Json, no_registry.to_owned()),
        ("~", Format::Yaml, format!("{root} null")),
        ("[1]", Format::Json, format!("{root} list")),
        ("registry: {}", Format::Yaml, required),
        ("registry: 5", Format::Yaml, not_a_map.to_owned()),
    ];
    for (text, format, want) in cases {
        assert_eq!(err_lines(load_str(text, format)), want, "{text:?}");
    }
    let e = load_str("# nothing yet\n", Format::Yaml).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<input> is empty: there is no config to read (only whitespace or comments); \
         `ocireg config init` writes a starter config"
    );
}

#[test]
fn bare_registry_root() {
    let doc = load_str("deployment: disabled\ntype: zot\nendpoint: e\nnamespaces: {}\nzot_features: {metrics_port: 1}\n", Format::Yaml).unwrap();
    assert!(doc.bare_root);
    assert_eq!(
        doc.registry.zot_features.as_ref().map(|z| z.metrics_port),
        Some(1)
    );
    assert_eq!(
        err_lines(load_str(
            "deployment: disabled\ntype: zot\nendpoint: e\nport: 0\nnamespaces: {}\n",
            Format::Yaml
        )),
        "port: Port must be 1-65535"
    );
}

#[test]
fn sub_schema_extras_follow_type() {
    let h = "registry: {deployment: disabled, type: harbor, endpoint: e, namespaces: {}, harbor_config: {project: p}}";
    let doc = load_str(h, Format::Yaml).unwrap();
    assert_eq!(doc.registry.r#type, RegistryType::Harbor);
    assert_eq!(
        doc.registry
            .harbor_config
            .as_ref()
            .map(|c| c.project.as_str()),
        Some("p")
    );
    assert_eq!(
        err_lines(load_str("registry: {deployment: disabled, type: zot, endpoint: e, namespaces: {}, harbor_config: {project: p}}", Format::Yaml)),
        "registry.harbor_config: only allowed when type is \"harbor\""
    );
    assert_eq!(
        err_lines(load_str("registry: {deployment: disabled, type: harbor, endpoint: e, namespaces: {}, harbor_config: {}}", Format::Yaml)),
        "registry.harbor_config.project: required field missing"
    );
    // null extras are absent
    load_str("registry: {deployment: disabled, type: distribution, endpoint: e, namespaces: {}, zot_features: null}", Format::Yaml).unwrap();
}

#[test]
fn typed_fields_and_revalidation() {
    let mut doc = load_str(SOLO, Format::Yaml).unwrap();
    assert_eq!(doc.registry.deployment, Deployment::Local);
    assert_eq!(doc.registry.local.as_ref().unwrap().http_config, None);
    doc.registry.port = 0;
    assert_eq!(
        doc.validate().unwrap_err().to_string(),
        "registry.port: Port must be 1-65535"
    );
}

#[test]
fn every_file_format_loads_the_same_document() {
    let dir = temp_dir("formats");
    let yaml = load_str(SOLO, Format::Yaml).unwrap();
    let json_text = serde_json::to_string(&json!({"registry": {"deployment": "local", "type": "zot", "endpoint": "localhost",
        "local": {"data_dir": "~/.provisioning/oci-registry", "config_path": "~/.provisioning/oci-registry/config.json"}, "namespaces": {}}})).unwrap();
    let toml_text = "[registry]\ndeployment = \"local\"\ntype = \"zot\"\nendpoint = \"localhost\"\n[registry.local]\ndata_dir = \"~/.provisioning/oci-registry\"\nconfig_path = \"~/.provisioning/oci-registry/config.json\"\n[registry.namespaces]\n";
    for (name, text) in [
        ("a.yaml", SOLO),
        ("b.yml", SOLO),
        ("c.json", json_text.as_str()),
        ("d.toml", toml_text),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        assert_eq!(load_path(&p).unwrap(), yaml, "{name}");
    }
    let p = dir.join("e.txt");
    std::fs::write(&p, SOLO).unwrap();
    assert!(matches!(
        load_path(&p),
        Err(ConfigError::UnknownFormat { .. })
    ));
    assert!(matches!(
        load_path(&dir.join("missing.yaml")),
        Err(ConfigError::Io { .. })
    ));
    let p = dir.join("broken.json");
    std::fs::write(&p, "{\"registry\": ").unwrap();
    let e = load_path(&p).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Parse {
                format: "JSON",
                line: Some(1),
                ..
            }
        ),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdin_loading() {
    let yaml = load_str(SOLO, Format::Yaml).unwrap();
    assert_eq!(load_reader(Cursor::new(SOLO), None).unwrap(), yaml);
    let j = serde_json::to_string(&to_json_value(&yaml)).unwrap();
    assert_eq!(
        load_reader(Cursor::new(j), None).unwrap().registry,
        yaml.registry
    );
    let e = load_reader(
        Cursor::new("registry:\n  foo: 1\n  deployment: local\n"),
        Some(Format::Yaml),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("registry.foo: unknown field\n"),
        "{e}"
    );
}

#[test]
fn unknown_key_and_wrong_type_in_files() {
    let dir = temp_dir("bad");
    let p = dir.join("bad.toml");
    std::fs::write(&p, "[registry]\ndeployment = \"disabled\"\ntype = \"zot\"\nendpoint = \"e\"\nport = \"5000\"\nbogus = 1\n[registry.namespaces]\n").unwrap();
    assert_eq!(
        err_lines(load_path(&p)),
        "registry.bogus: unknown field\nregistry.port: expected int, got string \"5000\""
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn python_has_kcl() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import kcl_lib"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn kcl_files() {
    let dir = temp_dir("kcl");
    let good = dir.join("good.k");
    std::fs::write(&good, "registry = {\n    deployment = \"disabled\"\n    type = \"zot\"\n    endpoint = \"e\"\n    port = 6000\n    namespaces = {}\n}\n").unwrap();
    let bad = dir.join("bad.k");
    std::fs::write(&bad, "registry = {\n    deployment = \n").unwrap();
    let unavailable =
        evaluate_kcl_with(&good, "/nonexistent/kcl", "/nonexistent/python3").unwrap_err();
    assert!(matches!(unavailable, ConfigError::KclUnavailable { .. }));
    assert!(unavailable
        .to_string()
        .contains("convert the file to YAML, TOML or JSON"));
    if python_has_kcl() {
        let v: Value = evaluate_kcl_with(&good, "/nonexistent/kcl", "python3").unwrap();
        assert_eq!(v["registry"]["port"], 6000);
        let doc = document_from_value(&v).unwrap();
        assert_eq!(doc.registry.port, 6000);
        assert_eq!(load_path(&good).unwrap(), doc);
        let e = load_path(&bad).unwrap_err();
        assert!(matches!(e, ConfigError::Kcl { .. }), "{e}");
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    } else {
        assert!(matches!(
            load_path(&good),
            Err(ConfigError::KclUnavailable { .. })
        ));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
