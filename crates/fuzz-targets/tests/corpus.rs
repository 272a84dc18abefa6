//! Replays every committed fuzz input (`fuzz/seeds/<target>/` and `fuzz/corpus/<target>/`)
//! through its target function, so CI on stable checks the corpus without libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ocireg_fuzz_targets::TARGETS;

/// Each target must have at least this many inputs in each of its two directories.
const MIN_FILES: usize = 10;
/// The committed corpus of one target stays under this many files and bytes
/// (`scripts/fuzz.sh` minimises it after every run).
const MAX_FILES: usize = 2000;
const MAX_BYTES: u64 = 2 << 20;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join(kind).join(name);
        let files = inputs(&dir);
        assert!(
            files.len() >= MIN_FILES,
            "{}: {} inputs, want at least {MIN_FILES}",
            dir.display(),
            files.len()
        );
        assert!(
            files.len() <= MAX_FILES,
            "{}: {} files",
            dir.display(),
            files.len()
        );
        let bytes: u64 = files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        assert!(bytes <= MAX_BYTES, "{}: {bytes} bytes", dir.display());
        for f in &files {
            // A running fuzzer replaces reduced inputs; a file gone since the listing is skipped.
            let data = match std::fs::read(f) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", f.display()),
            };
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: input {} fails", f.display());
        }
    }
}

#[test]
fn seeds_replay_cleanly() {
    replay("seeds");
}

#[test]
fn corpus_replays_cleanly() {
    replay("corpus");
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        let src = fuzz_dir().join(format!("fuzz_targets/{name}.rs"));
        let code = std::fs::read_to_string(&src).unwrap();
        assert!(
            code.contains(&format!("ocireg_fuzz_targets::{name}(data)")),
            "{src:?}"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
    }
}

/// Inputs the parsers accept pass every invariant of their target (guards against checks that
/// are stricter than the parsers' documented contracts).
#[test]
fn targets_accept_valid_inputs() {
    let d = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    assert!(d.parse::<ocireg_oci::Digest>().is_ok());
    ocireg_fuzz_targets::digest_reference(d.as_bytes());
    let path = format!("/v2/a/b/blobs/{d}");
    assert!(ocireg_api::parse_path(&path).is_ok());
    ocireg_fuzz_targets::api_path(path.as_bytes());
    assert!(ocireg_api::parse_range("bytes=1-2", 10).is_ok());
    ocireg_fuzz_targets::range(b"bytes=1-2\nsize=10");
    let cfg = "registry: {deployment: disabled, type: zot, endpoint: localhost, namespaces: {}}";
    assert!(ocireg_config::load_str(cfg, ocireg_config::Format::Yaml).is_ok());
    ocireg_fuzz_targets::config(cfg.as_bytes());
}
