//! Golden tests: the native zot and Distribution configs rendered from the repository's example
//! documents (the seed's two docstring examples, zot-local, distribution-local, maximal), with
//! `~` pinned to /home/user. Regenerate with `UPDATE_GOLDEN=1 cargo test -p ocireg-deploy --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ocireg_deploy::{render, NativeKind, RenderOptions};

const EXAMPLES: &[&str] = &[
    "seed-example-local.yaml",
    "seed-example-remote.yaml",
    "zot-local.yaml",
    "distribution-local.toml",
    "maximal.yaml",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn opts() -> RenderOptions {
    RenderOptions {
        home: Some(PathBuf::from("/home/user")),
    }
}

fn registry(example: &str) -> ocireg_config::OCIRegistryConfig {
    let path = repo_root().join("examples").join(example);
    ocireg_config::load_path(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .registry
}

fn stem(example: &str) -> &str {
    example.rsplit_once('.').map_or(example, |(s, _)| s)
}

fn file_name(example: &str, kind: NativeKind) -> (String, String) {
    let ext = match kind {
        NativeKind::Zot => "json",
        NativeKind::Distribution => "yml",
    };
    (
        format!("{}.{kind}.{ext}", stem(example)),
        format!("{}.{kind}.warnings.txt", stem(example)),
    )
}

fn check(name: &str, actual: &str, mismatches: &mut Vec<String>) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => mismatches.push(format!(
            "{name} differs\n--- expected\n{expected}\n--- actual\n{actual}"
        )),
        Err(e) => mismatches.push(format!("{name}: {e} (run with UPDATE_GOLDEN=1)")),
    }
}

#[test]
fn rendered_configs_match_golden_files() {
    let mut mismatches = Vec::new();
    for example in EXAMPLES {
        let reg = registry(example);
        for kind in [NativeKind::Zot, NativeKind::Distribution] {
            let rendered = render(&reg, kind, &opts()).unwrap();
            let (config, warnings) = file_name(example, kind);
            check(&config, &rendered.text, &mut mismatches);
            let mut w = rendered.warnings.join("\n");
            w.push('\n');
            check(&warnings, &w, &mut mismatches);
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

fn zot_json(example: &str) -> serde_json::Value {
    let text = render(&registry(example), NativeKind::Zot, &opts())
        .unwrap()
        .text;
    serde_json::from_str(&text).unwrap()
}

fn distribution_yaml(example: &str) -> serde_json::Value {
    let text = render(&registry(example), NativeKind::Distribution, &opts())
        .unwrap()
        .text;
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn zot_port_is_a_string_and_durations_carry_units() {
    let z = zot_json("zot-local.yaml");
    assert_eq!(z["http"]["port"], serde_json::json!("5000"));
    assert_eq!(z["storage"]["gcInterval"], "2h");
    assert_eq!(
        z["storage"]["rootDirectory"],
        "/home/user/.provisioning/oci-registry/zot/data"
    );
    assert_eq!(z["http"]["readTimeout"], "1m");
    assert_eq!(z["extensions"]["scrub"]["interval"], "12h");
    assert_eq!(
        z["extensions"]["sync"]["registries"][0]["urls"][0],
        "https://ghcr.io"
    );
    assert_eq!(z["extensions"]["sync"]["registries"][0]["onDemand"], true);
}

#[test]
fn maximal_maps_every_setting_with_an_equivalent() {
    let z = zot_json("maximal.yaml");
    assert_eq!(z["http"]["port"], "5443");
    assert_eq!(z["http"]["address"], "0.0.0.0");
    assert_eq!(z["http"]["tls"]["cert"], "/etc/ocireg/tls/server.crt");
    assert_eq!(
        z["http"]["auth"]["htpasswd"]["path"],
        "/var/lib/ocireg/htpasswd"
    );
    assert_eq!(z["http"]["writeTimeout"], "90s");
    assert_eq!(z["storage"]["gcInterval"], "30m");
    assert_eq!(z["log"]["output"], "/var/log/ocireg/registry.log");
    assert_eq!(z["extensions"]["search"]["enable"], false);
    assert_eq!(z["extensions"]["trust"]["notation"], true);
    assert_eq!(z["extensions"]["events"]["sinks"][0]["type"], "http");
    let warnings = render(&registry("maximal.yaml"), NativeKind::Zot, &opts())
        .unwrap()
        .warnings;
    for field in [
        "idle_timeout",
        "gc_schedule",
        "metrics_port",
        "replication_enabled",
        "quota_enabled",
        "auth_token_path",
        "vulnerability_scanning",
    ] {
        let n = warnings.iter().filter(|w| w.contains(field)).count();
        assert_eq!(n, 1, "{field} warned {n} times in {warnings:#?}");
    }

    let d = distribution_yaml("maximal.yaml");
    assert_eq!(d["version"], "0.1");
    assert_eq!(d["http"]["addr"], "0.0.0.0:5443");
    assert_eq!(d["http"]["draintimeout"], "10s");
    assert_eq!(d["http"]["tls"]["key"], "/etc/ocireg/tls/server.key");
    assert_eq!(d["auth"]["htpasswd"]["path"], "/var/lib/ocireg/htpasswd");
    assert_eq!(d["auth"].as_object().unwrap().len(), 1, "one auth provider");
    assert_eq!(
        d["storage"]["filesystem"]["rootdirectory"],
        "/var/lib/ocireg/data"
    );
    assert_eq!(d["storage"]["delete"]["enabled"], true);
    assert_eq!(d["http"]["debug"]["addr"], "0.0.0.0:9191");
    assert_eq!(
        d["notifications"]["endpoints"][0]["url"],
        "https://hooks.local.test/ocireg"
    );
    assert_eq!(d["notifications"]["endpoints"][0]["timeout"], "5s");
}

#[test]
fn distribution_local_warns_about_what_it_cannot_do() {
    let r = render(
        &registry("distribution-local.toml"),
        NativeKind::Distribution,
        &opts(),
    )
    .unwrap();
    let d: serde_json::Value = serde_saphyr::from_str(&r.text).unwrap();
    assert_eq!(d["http"]["addr"], "127.0.0.1:5443");
    assert_eq!(
        d["http"]["tls"]["certificate"],
        "/home/user/.provisioning/oci-registry/certs/registry.crt"
    );
    // read_timeout = 30 has no 2.8 equivalent; dedupe_enabled = false cannot be honoured.
    assert!(r.warnings.iter().any(|w| w.contains("read_timeout")));
    assert!(r.warnings.iter().any(|w| w.contains("dedupe_enabled")));
    assert!(!r.warnings.iter().any(|w| w.contains("write_timeout")));
}

#[test]
fn solo_defaults_render_without_warnings() {
    let reg = registry("seed-example-local.yaml");
    for kind in [NativeKind::Distribution, NativeKind::Zot] {
        let r = render(&reg, kind, &opts()).unwrap();
        let unexpected: Vec<_> = r
            .warnings
            .iter()
            .filter(|w| !w.starts_with("registry.type"))
            .collect();
        assert!(unexpected.is_empty(), "{kind}: {unexpected:#?}");
    }
}
