#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every file in the repository's `examples/` loads and is valid; the seed's verbatim
//! docstring examples fail exactly as real KCL says.

use std::path::{Path, PathBuf};

use ocireg_config::{load_path, to_json_value, Deployment, RegistryType};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_is_valid() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && ocireg_config::Format::from_path(&path).is_some() {
            let doc = load_path(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            // The effective document re-validates.
            doc.validate().unwrap();
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    for want in [
        "artifactory-remote.yaml",
        "distribution-local.toml",
        "harbor-remote.json",
        "maximal.yaml",
        "seed-example-local.yaml",
        "seed-example-remote.yaml",
        "solo.yaml",
        "zot-local.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing example {want}: {names:?}"
        );
    }
}

#[test]
fn examples_have_the_expected_shape() {
    let d = examples_dir();
    let solo = load_path(&d.join("solo.yaml")).unwrap();
    assert_eq!(solo.registry, ocireg_config::default_document().registry);
    let h = load_path(&d.join("harbor-remote.json")).unwrap();
    assert_eq!(h.registry.deployment, Deployment::Remote);
    assert_eq!(h.registry.harbor_config.unwrap().project, "provisioning");
    let t = load_path(&d.join("distribution-local.toml")).unwrap();
    assert_eq!(t.registry.r#type, RegistryType::Distribution);
    assert_eq!(t.push_policy.compression_level, 9);
    assert_eq!(
        t.registry.local.unwrap().log_file,
        "/tmp/ocireg-distribution.log"
    );
    let z = load_path(&d.join("zot-local.yaml")).unwrap();
    assert_eq!(z.registry.zot_features.unwrap().scrub_interval, "12h");
    assert_eq!(
        z.registry.local.unwrap().log_file,
        "~/.provisioning/oci-registry/zot/registry.log"
    );
}

/// Every optional field of every schema reachable from the document (except harbor_config,
/// exclusive with zot_features) is set in maximal.yaml: nothing in the effective document
/// comes from a default that the file did not spell out.
#[test]
fn maximal_sets_every_field() {
    let path = examples_dir().join("maximal.yaml");
    let raw: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let effective = to_json_value(&load_path(&path).unwrap());
    fn same_keys(raw: &serde_json::Value, eff: &serde_json::Value, at: &str) {
        if let (Some(r), Some(e)) = (raw.as_object(), eff.as_object()) {
            let rk: Vec<&String> = r.keys().collect();
            let ek: Vec<&String> = e.keys().collect();
            assert_eq!(rk, ek, "at {at}");
            for (k, v) in r {
                same_keys(v, &e[k], &format!("{at}.{k}"));
            }
        }
        if let (Some(r), Some(e)) = (raw.as_array(), eff.as_array()) {
            for (i, (a, b)) in r.iter().zip(e).enumerate() {
                same_keys(a, b, &format!("{at}[{i}]"));
            }
        }
    }
    same_keys(&raw, &effective, "");
    // And every field of the registry schema is present (no optional left out).
    let spec = ocireg_config::ZotRegistryConfig::spec();
    for f in &spec.fields {
        assert!(
            raw["registry"].get(f.key).is_some(),
            "maximal.yaml lacks registry.{}",
            f.key
        );
    }
}

#[test]
fn seed_docstring_examples_verbatim_fail_like_kcl() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let e = load_path(&f.join("seed-docstring-local.yaml")).unwrap_err();
    assert_eq!(e.to_string(), "registry.namespaces: required field missing");
    let e = load_path(&f.join("seed-docstring-remote.yaml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "registry.namespaces: required field missing\n\
         registry.auth_required: Authentication config required when auth enabled\n  \
         hint: with auth_required: true, set username (and password_path) or auth_token_path"
    );
}
