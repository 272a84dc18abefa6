//! The `ocireg` binary for tests of any crate: `$OCIREG_BIN` when set, else the workspace's
//! binary built (once per test process) into the target directory the running test lives in,
//! so `cargo test -p CRATE` needs no earlier `cargo build`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of an up-to-date `ocireg` binary. Concurrent test processes each run `cargo build`,
/// which serialises them on the target directory's lock and rebuilds nothing the second time.
pub fn ocireg_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("OCIREG_BIN") {
        Some(p) => PathBuf::from(p),
        None => build(),
    })
}

/// `cargo build -p ocireg` for the profile and target directory of the running test binary
/// (`<target>/<profile>/deps/<test>`), returning `<target>/<profile>/ocireg`.
fn build() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target directory");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name");
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "ocireg", "--bin", "ocireg"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().expect("run cargo build -p ocireg");
    assert!(status.success(), "cargo build -p ocireg failed: {status}");
    let bin = profile_dir.join("ocireg");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// Runs `cmd` with `input` on its stdin and returns its output (stdout and stderr captured).
pub fn output_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
