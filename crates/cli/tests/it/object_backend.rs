//! A local registry configured on object storage (`storage_config.backend: s3` / `azure`), from
//! the commands' side: no local storage directory is ever created, `serve --root` is refused
//! as contradicting the backend, `gc` / `scrub` / `status` ask
//! a running server (and say so when none answers), and `up` points at `ocireg serve`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ocireg_test_support::free_port;

struct Env {
    dir: tempfile::TempDir,
    port: u16,
}

impl Env {
    fn new(storage: &str) -> Env {
        let env = Env {
            dir: tempfile::Builder::new()
                .prefix("ocireg-object-")
                .tempdir()
                .unwrap(),
            port: free_port(),
        };
        let data = env.data();
        let yaml = format!(
            "registry:\n  deployment: local\n  type: zot\n  endpoint: 127.0.0.1\n  \
             local:\n    data_dir: {data}\n    config_path: {data}/config.json\n    \
             http_config: {{listen_address: 127.0.0.1, listen_port: {port}}}\n    \
             storage_config: {storage}\n  namespaces: {{}}\n  \
             zot_features: {{metrics_enabled: false}}\n",
            data = data.display(),
            port = env.port,
        );
        std::fs::write(env.config(), yaml).unwrap();
        env
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ocireg.yaml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ocireg"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("OCIREG_CONFIG")
            .output()
            .unwrap()
    }
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_failed_with(out: &Output, wants: &[&str]) {
    assert!(!out.status.success(), "{}", show(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in wants {
        assert!(stderr.contains(want), "{want:?} missing: {}", show(out));
    }
}

/// Nothing under `data_dir` looks like a storage root.
fn assert_no_storage_dir(data: &Path) {
    for dir in ["storage", "data"] {
        assert!(!data.join(dir).exists(), "{} was created", dir);
    }
}

const S3: &str = "{backend: s3, s3: {bucket: reg, prefix: team, endpoint: 'http://127.0.0.1:1', allow_http: true}}";

#[test]
fn every_command_handles_a_bucket_without_a_local_root() {
    let env = Env::new(S3);
    let out = env.run(&["config", "validate"]);
    assert!(out.status.success(), "{}", show(&out));

    // serve --root names a directory: refused before any storage is opened.
    let root = env.dir.path().join("root");
    let out = env.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_failed_with(&out, &["names a directory", "\"s3\" (s3://reg/team"]);
    assert!(!root.exists());

    // gc and scrub never open the bucket from the command line.
    let addr = format!("http://127.0.0.1:{}", env.port);
    for op in ["gc", "scrub"] {
        let out = env.run(&[op]);
        assert_failed_with(
            &out,
            &[
                &format!("nothing answers at {addr}"),
                "s3://reg/team",
                "ocireg serve",
            ],
        );
    }

    // status: nothing answers; the storage is the bucket.
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("storage:   s3://reg/team at http://127.0.0.1:1")
            && stdout.contains("state:     not running"),
        "{}",
        show(&out)
    );
    let out = env.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["state"], "not-running", "{v}");
    assert_eq!(v["status"]["backend"], "s3", "{v}");

    // up manages local directories only, and says what to run instead.
    let out = env.run(&["up"]);
    assert_failed_with(
        &out,
        &["registry.local.storage_config.backend", "ocireg serve"],
    );
    assert_no_storage_dir(&env.data());
}

#[test]
fn an_azure_container_is_named_the_same_way() {
    let env = Env::new("{backend: azure, azure: {account: devstoreaccount1, container: reg, endpoint: 'http://127.0.0.1:1/devstoreaccount1'}}");
    let root = env.dir.path().join("root");
    let out = env.run(&["serve", "--root", root.to_str().unwrap()]);
    assert_failed_with(&out, &["names a directory", "azure://devstoreaccount1/reg"]);
    let out = env.run(&["gc"]);
    assert_failed_with(&out, &["azure://devstoreaccount1/reg", "ocireg serve"]);
    assert_no_storage_dir(&env.data());
}
