//! `ocireg config validate|show|init`, `ocireg ref parse` and a config other commands load:
//! the messages (file named, the library's advice never shown) and the exit codes of the
//! shared table (3 invalid, 4 unreadable, 2 usage, 9 conflict).

use std::path::Path;
use std::process::{Command, Output};

use crate::client_support::OCIREG;

const VALID: &str = "registry: {deployment: disabled, type: zot, endpoint: e, namespaces: {}}\n";

/// `ocireg ARGS` with a home of its own and no `$OCIREG_CONFIG`, so only the given config counts.
fn ocireg(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(OCIREG);
    cmd.args(args).env("HOME", home).env_remove("OCIREG_CONFIG");
    match stdin {
        Some(text) => ocireg_test_support::output_with_stdin(&mut cmd, text.as_bytes()),
        None => cmd.output().unwrap(),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_empty_config_is_named_and_invalid_a_missing_one_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.yaml", "\n# to be written\n");
    let said = format!(
        "error: {empty} is empty: there is no config to read (only whitespace or comments); \
         `ocireg config init` writes a starter config\n"
    );
    for args in [
        vec!["config", "validate", empty.as_str()],
        vec!["config", "show", empty.as_str()],
        vec!["--config", empty.as_str(), "serve"],
    ] {
        let out = ocireg(dir.path(), &args, None);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), said, "{args:?}");
    }
    let out = ocireg(dir.path(), &["config", "validate", "-"], Some(""));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).starts_with("error: <stdin> is empty: "),
        "{}",
        stderr(&out)
    );
    let missing = dir.path().join("missing.yaml").display().to_string();
    let out = ocireg(dir.path(), &["config", "validate", &missing], None);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        stderr(&out),
        format!("error: cannot read {missing}: No such file or directory (os error 2)\n")
    );
    let out = ocireg(dir.path(), &["--config", &missing, "serve"], None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn validate_prints_every_error_in_words_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "registry:\n  deployment: remote\n  type: zot\n  endpont: e\n  namespaces: {extensions: a}\n  \
         remote: {retries: 99999999999999999999}\n  local: {data_dir: /d, config_path: /c, \
         http_config: {listen_port: \"80a\"}}\n",
    );
    let out = ocireg(dir.path(), &["config", "validate", &bad], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "registry.endpont: unknown field; did you mean \"endpoint\"?\n\
         registry.endpoint: required field missing\n\
         registry.local.http_config.listen_port: expected int, got string \"80a\"\n\
         registry.remote.retries: out of range for int: got about 1e20; an int is 64-bit signed \
         (-9223372036854775808 to 9223372036854775807)\n\
         registry.namespaces.extensions: Extensions namespace must be lowercase alphanumeric with hyphens\n  \
         hint: a namespace has at least 2 characters, only a-z, 0-9 and \"-\", and starts and ends \
         with a letter or digit, e.g. \"provisioning-extensions\"\n"
    );
    // Other commands name the file before the same errors.
    let out = ocireg(dir.path(), &["--config", &bad, "serve"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: invalid config {bad}:\nregistry.endpont: unknown field"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn parser_errors_are_in_words_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let dup = write(
        dir.path(),
        "dup.yaml",
        &format!("{VALID}pull_policy: {{}}\nregistry: {{}}\n"),
    );
    let out = ocireg(dir.path(), &["config", "validate", &dup], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        format!(
            "error: YAML error in {dup}: duplicate key \"registry\" at line 3 (first at line 1); \
             each key may appear once in a map\n"
        )
    );
    let items = vec!["1"; 250_001].join(",");
    let big = write(dir.path(), "big.yaml", &format!("{VALID}x: [{items}]\n"));
    let out = ocireg(dir.path(), &["config", "validate", &big], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {big} is too large: the document has more than 250000 nodes (maps, lists \
             and values together), the limit for a config file\n"
        )
    );
    let broken = write(dir.path(), "broken.json", "{");
    let out = ocireg(dir.path(), &["config", "validate", &broken], None);
    assert_eq!(out.status.code(), Some(3));
    for text in [
        stderr(&out),
        stderr(&ocireg(dir.path(), &["config", "validate", &dup], None)),
    ] {
        assert!(
            !text.contains("Options") && !text.contains("budget"),
            "{text}"
        );
    }
}

#[test]
fn usage_and_conflict_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", VALID);
    let out = ocireg(dir.path(), &["config", "validate", &good], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ok: {good}\n")
    );
    let out = ocireg(
        dir.path(),
        &["config", "validate", &good, "--schema", "NoSuchSchema"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let out = ocireg(
        dir.path(),
        &["config", "validate", "--schema", "LocalHTTPConfig"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --schema needs a FILE (or - for stdin)\n"
    );
    let out = ocireg(dir.path(), &["config", "init", "--output", &good], None);
    assert_eq!(out.status.code(), Some(9));
    assert_eq!(std::fs::read_to_string(&good).unwrap(), VALID, "kept");
    let out = ocireg(dir.path(), &["ref", "parse", "r.io/n/p:.bad"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("tag: Invalid tag format\n  hint: a tag has 1 to 128"),
        "{}",
        stderr(&out)
    );
}
