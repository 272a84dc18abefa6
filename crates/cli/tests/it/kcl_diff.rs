//! Differential test of the config model against real KCL: runs `tests/kcl_diff/run.py` (the
//! corpus under `tests/kcl_diff/cases/`, evaluated by the `kcl-lib` Python package) against the
//! `ocireg` binary built for this test, and fails on any mismatch.

use std::path::PathBuf;
use std::process::Command;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

#[test]
fn config_model_matches_real_kcl() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = python();

    // The harness needs kcl_lib (real KCL) and PyYAML: fail loudly, never skip.
    let probe = Command::new(&python)
        .args(["-c", "import kcl_lib.api, yaml"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{python}` cannot import kcl_lib and yaml; run scripts/install-test-deps.sh\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run `{python}` ({e}); run scripts/install-test-deps.sh"),
    }

    let out = Command::new(&python)
        .arg(root.join("tests/kcl_diff/run.py"))
        .arg("--ocireg")
        .arg(env!("CARGO_BIN_EXE_ocireg"))
        .current_dir(&root)
        .output()
        .expect("run tests/kcl_diff/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    let summary = stdout.lines().last().unwrap_or("");
    assert!(
        out.status.success() && failures.is_empty(),
        "KCL differential test failed (exit {:?}); re-run with \
         `python3 tests/kcl_diff/run.py --ocireg target/debug/ocireg -v` for details\n{}\n{summary}\n{stderr}",
        out.status.code(),
        failures.join("\n"),
    );

    // The summary line is `N passed, 0 failed`, and the corpus is not trivially small.
    let passed: usize = summary
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected summary line {summary:?}\n{stdout}"));
    assert!(passed >= 120, "only {passed} checks passed:\n{stdout}");
}
