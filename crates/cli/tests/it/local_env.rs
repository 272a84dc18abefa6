//! A temporary home with a `local` registry config for the engine-pinning and upload-session
//! tests: runs `ocireg` against it and stops whatever `ocireg up` started when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ocireg_test_support::free_port;
use serde_json::Value;

pub struct LocalEnv {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl LocalEnv {
    /// A `distribution` registry on a free port; `binary_path` written when given.
    pub fn new(binary_path: Option<&str>) -> LocalEnv {
        Self::on_port(free_port(), binary_path)
    }

    /// The same on `port` (where a test's own server listens).
    pub fn on_port(port: u16, binary_path: Option<&str>) -> LocalEnv {
        let env = LocalEnv {
            dir: tempfile::Builder::new()
                .prefix("ocireg-engine-")
                .tempdir()
                .unwrap(),
            port,
        };
        env.write_config(binary_path);
        env
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn root(&self) -> PathBuf {
        self.data().join("storage")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("ocireg.yaml")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn write_config(&self, binary_path: Option<&str>) {
        let data = self.data();
        let binary = binary_path
            .map(|b| format!("    binary_path: {b}\n"))
            .unwrap_or_default();
        let yaml = format!(
            "registry:\n  deployment: local\n  type: distribution\n  endpoint: 127.0.0.1\n  \
             local:\n    data_dir: {data}\n    config_path: {data}/config.yml\n{binary}    \
             http_config:\n      listen_address: 127.0.0.1\n      listen_port: {port}\n    \
             storage_config:\n      rootdirectory: {data}/storage\n  namespaces: {{}}\n",
            port = self.port,
            data = data.display(),
        );
        std::fs::write(self.config(), yaml).unwrap();
    }

    /// `ocireg --config CONFIG ARGS` with this home and `/usr/bin` (docker-registry) on PATH.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ocireg"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("HOME", self.dir.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("NO_COLOR", "1")
            .env_remove("OCIREG_CONFIG")
            .output()
            .unwrap()
    }

    /// Runs `ocireg ARGS` and asserts its exit code.
    pub fn run_code(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        out
    }

    /// `ocireg ARGS --json` parsed, with its exit code asserted.
    pub fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run_code(&all, code);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
    }

    fn state_pid(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.data().join("registry-state.json")).ok()?;
        serde_json::from_str::<Value>(&text).ok()?["pid"].as_i64()
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        let pid = self.state_pid();
        let _ = self.run(&["down", "--timeout", "5"]);
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        }
    }
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The engine a storage root's marker names.
pub fn marker_engine(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join(".ocireg-engine")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["engine"].as_str().unwrap().to_owned()
}
