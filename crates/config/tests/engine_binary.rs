#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `registry.local.binary_path`: the extension value `"builtin"` pins the built-in engine, a
//! path names an executable, and a misspelled `builtin` is refused at the field.

use std::path::{Path, PathBuf};

use ocireg_config::{load_str, EngineBinary, Format, LocalView};

fn doc(binary: Option<&str>) -> String {
    let line = binary
        .map(|b| format!("    binary_path: {b:?}\n"))
        .unwrap_or_default();
    format!(
        "registry:\n  deployment: local\n  type: distribution\n  endpoint: localhost\n  namespaces: {{}}\n  local:\n    data_dir: /tmp/x\n    config_path: /tmp/x/c.yml\n{line}"
    )
}

fn binary(value: Option<&str>) -> EngineBinary {
    let d = load_str(&doc(value), Format::Yaml).unwrap();
    LocalView::resolve(&d.registry, Some(Path::new("/home/u")))
        .unwrap()
        .binary
}

#[test]
fn builtin_pins_the_engine_and_paths_stay_paths() {
    assert_eq!(binary(None), EngineBinary::Search);
    assert_eq!(binary(Some("builtin")), EngineBinary::Builtin);
    assert_eq!(
        binary(Some("~/bin/registry")),
        EngineBinary::Path(PathBuf::from("/home/u/bin/registry"))
    );
    // A path that merely contains the word is a path.
    assert_eq!(
        binary(Some("/opt/builtin")),
        EngineBinary::Path(PathBuf::from("/opt/builtin"))
    );
}

#[test]
fn a_misspelled_builtin_is_refused_at_the_field() {
    for bad in ["Builtin", "built-in", "BUILT_IN"] {
        let err = load_str(&doc(Some(bad)), Format::Yaml)
            .unwrap_err()
            .to_string();
        let want = format!(
            "registry.local.binary_path: {bad:?} is not a path; \"builtin\" pins the built-in engine"
        );
        assert!(err.contains(&want), "{bad}: {err}");
    }
}
