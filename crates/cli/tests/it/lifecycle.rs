//! End-to-end lifecycle with the real `ocireg` binary: `up` → push/pull → `status` → kill -9 →
//! `status` reports the crash → `up` (stale pid file) → `down`, with Debian's CNCF Distribution
//! binary and with the built-in engine fallback; a taken port; Harbor as local; `config render`.
//! Every registry a test starts is stopped by a guard (`ocireg down`, then SIGKILL by pid).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ocireg_test_support::distribution::DOCKER_REGISTRY;
use ocireg_test_support::{free_port, sha256_str as digest};
use reqwest::blocking::Client;
use serde_json::Value;

/// A temporary home with a config file; runs `ocireg` against it.
struct Env {
    dir: tempfile::TempDir,
    port: u16,
    /// `PATH` for the child processes (`None`: inherit).
    path: Option<PathBuf>,
}

impl Env {
    fn new(registry_type: &str, binary_path: Option<&str>, path: Option<PathBuf>) -> Env {
        let env = Env {
            dir: tempfile::Builder::new()
                .prefix("ocireg-lifecycle-")
                .tempdir()
                .unwrap(),
            port: free_port(),
            path,
        };
        env.write_config(registry_type, "local", binary_path);
        env
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ocireg.yaml")
    }

    fn write_config(&self, registry_type: &str, deployment: &str, binary_path: Option<&str>) {
        let data = self.data();
        let binary = binary_path
            .map(|b| format!("    binary_path: {b}\n"))
            .unwrap_or_default();
        let yaml = format!(
            "registry:\n  deployment: {deployment}\n  type: {registry_type}\n  endpoint: 127.0.0.1\n  \
             port: {port}\n  local:\n    data_dir: {data}\n    config_path: {data}/config.yml\n{binary}    \
             http_config:\n      listen_address: 127.0.0.1\n      listen_port: {port}\n    \
             storage_config:\n      rootdirectory: {data}/storage\n  namespaces: {{}}\n",
            port = self.port,
            data = data.display(),
        );
        std::fs::write(self.config(), yaml).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocireg"));
        cmd.arg("--config")
            .arg(self.config())
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("OCIREG_CONFIG");
        if let Some(p) = &self.path {
            cmd.env("PATH", p);
        }
        cmd.output().unwrap()
    }

    /// Runs `ocireg ARGS` and asserts its exit code.
    fn run_code(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        out
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.data().join("registry-state.json")).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }

    fn pid(&self) -> i32 {
        let state = self.state().expect("state file");
        i32::try_from(state["pid"].as_i64().unwrap()).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--timeout", "5"]);
        if let Some(state) = self.state() {
            if let Some(pid) = state["pid"].as_i64() {
                let _ = Command::new("kill")
                    .args(["-9", &format!("-{pid}")])
                    .output();
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
            }
        }
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn push_blob(c: &Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let d = digest(bytes);
    let start = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(start.status().as_u16(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let url = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}digest={d}");
    put_created(c, &url, "application/octet-stream", bytes, "blob push");
    d
}

/// PUTs `body` as `content_type` and asserts 201 Created.
fn put_created(c: &Client, url: &str, content_type: &str, body: &[u8], what: &str) {
    let r = c
        .put(url)
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{what}");
}

/// Pushes a config blob, a layer and a manifest under `tag`; returns the manifest bytes.
fn push_image(base: &str, repo: &str, tag: &str) -> (Vec<u8>, Vec<u8>) {
    let c = client();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"layer bytes of the lifecycle test".repeat(100);
    let config_digest = push_blob(&c, base, repo, &config);
    let layer_digest = push_blob(&c, base, repo, &layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    put_created(
        &c,
        &format!("{base}/v2/{repo}/manifests/{tag}"),
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
        "manifest push",
    );
    (manifest, layer)
}

/// Pulls the manifest under `tag` and its layer; checks both byte for byte.
fn pull_image(base: &str, repo: &str, tag: &str, manifest: &[u8], layer: &[u8]) {
    let c = client();
    let got = c
        .get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().unwrap().as_ref(), manifest);
    let blob = c
        .get(format!("{base}/v2/{repo}/blobs/{}", digest(layer)))
        .send()
        .unwrap();
    assert_eq!(blob.status().as_u16(), 200);
    assert_eq!(blob.bytes().unwrap().as_ref(), layer);
}

fn wait_dead(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        if stat.is_empty() || matches!(state, Some(Some('Z' | 'X'))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("pid {pid} still alive");
}

/// The image every lifecycle test pushes and pulls.
const REPO: &str = "provisioning-extensions/app";

/// The whole flow; `expect_builtin`: served by the built-in engine rather than the binary.
fn lifecycle_flow(env: &Env, expect_builtin: bool) {
    let first_pid = up_starts_distribution(env, expect_builtin);
    let (manifest, layer) = push_image(&env.base(), REPO, "v1");
    pull_image(&env.base(), REPO, "v1", &manifest, &layer);
    client_pushes_and_pulls_an_extension(env);
    status_reports_the_running_registry(env, first_pid, expect_builtin, layer.len());

    let again = env.run_code(&["up"], 0);
    assert!(
        text(&again.stdout).contains("already running"),
        "{}",
        show(&again)
    );
    assert_eq!(env.pid(), first_pid);

    let second_pid = crash_and_restart(env, first_pid);
    pull_image(&env.base(), REPO, "v1", &manifest, &layer);

    let logs = env.run_code(&["logs", "-n", "3"], 0);
    let lines = text(&logs.stdout);
    assert!(!lines.is_empty() && lines.lines().count() <= 3, "{lines}");
    down_stops_it(env, second_pid);
}

/// `ocireg up` starts distribution (natively or in the built-in engine); returns its pid.
fn up_starts_distribution(env: &Env, expect_builtin: bool) -> i32 {
    let up = env.run_code(&["up"], 0);
    let out = text(&up.stdout);
    assert!(out.contains("started distribution"), "{}", show(&up));
    assert_eq!(
        text(&up.stderr).contains("built-in engine instead"),
        expect_builtin,
        "{}",
        show(&up)
    );
    assert_eq!(
        env.state().unwrap()["engine"],
        if expect_builtin { "built-in" } else { "native" }
    );
    env.pid()
}

/// `ocireg push` an extension, `ocireg pull` it back byte-exact.
fn client_pushes_and_pulls_an_extension(env: &Env) {
    let src = env.dir.path().join("ext-src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("main.k"), b"schema A:\n    x: int = 1\n").unwrap();
    std::fs::write(src.join("sub/data.bin"), vec![7u8; 300_000]).unwrap();
    env.run_code(
        &[
            "push",
            "extension",
            src.to_str().unwrap(),
            "client-ext:v1",
            "--quiet",
        ],
        0,
    );
    let out_dir = env.dir.path().join("ext-out");
    env.run_code(
        &[
            "pull",
            "provisioning-extensions/client-ext:v1",
            "-o",
            out_dir.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        std::fs::read(out_dir.join("sub/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        std::fs::read(out_dir.join("main.k")).unwrap(),
        b"schema A:\n    x: int = 1\n"
    );
}

/// `ocireg status` (text and JSON) shows the registry running under `pid`, what serves it and
/// at least `stored` bytes of storage.
fn status_reports_the_running_registry(env: &Env, pid: i32, builtin: bool, stored: usize) {
    let status = env.run_code(&["status"], 0);
    let s = text(&status.stdout);
    assert!(s.contains("state:     running"), "{s}");
    assert!(s.contains(&format!("pid:       {pid}")), "{s}");
    if builtin {
        assert!(s.contains("built-in engine"), "{s}");
        assert!(
            s.contains(&format!("version:   ocireg {}", env!("CARGO_PKG_VERSION"))),
            "{s}"
        );
    } else {
        assert!(
            s.contains("version:   /usr/bin/docker-registry github.com/docker/distribution 2.8"),
            "{s}"
        );
    }
    let json = env.run(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["status"]["state"], "running");
    assert_eq!(v["status"]["pid"], pid);
    assert!(v["status"]["storage_bytes"].as_u64().unwrap() >= stored as u64);
}

/// kill -9 of `pid`: `status` reports the crash; `up` restarts over the stale pid file and
/// returns the new pid.
fn crash_and_restart(env: &Env, pid: i32) -> i32 {
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    wait_dead(pid);
    let crashed = env.run_code(&["status"], 1);
    let c = text(&crashed.stdout);
    assert!(c.contains("crashed"), "{c}");
    assert!(c.contains("last log lines:"), "{c}");
    let cj: Value = serde_json::from_slice(&env.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(cj["status"]["state"], "crashed");

    let restart = env.run_code(&["up"], 0);
    assert!(
        text(&restart.stderr).contains("stale pid file"),
        "{}",
        show(&restart)
    );
    let second_pid = env.pid();
    assert_ne!(second_pid, pid);
    second_pid
}

/// `ocireg down` stops `pid` and removes the pid file; `status` and a second `down` say it is
/// not running.
fn down_stops_it(env: &Env, pid: i32) {
    let down = env.run_code(&["down"], 0);
    assert!(
        text(&down.stdout).contains("stopped distribution"),
        "{}",
        show(&down)
    );
    wait_dead(pid);
    assert!(env.state().is_none(), "pid file removed");
    // Exit 7: not running (the exit-code table).
    let stopped = env.run_code(&["status"], 7);
    assert!(text(&stopped.stdout).contains("not running"));
    let down_again = env.run(&["down"]);
    assert_eq!(down_again.status.code(), Some(0));
    assert!(text(&down_again.stdout).contains("not running"));
}

#[test]
fn distribution_binary_up_push_pull_status_crash_restart_down() {
    let env = Env::new("distribution", Some(DOCKER_REGISTRY), None);
    lifecycle_flow(&env, false);
    let native = std::fs::read_to_string(env.data().join("config.yml")).unwrap();
    assert!(
        native.contains(&format!("addr: 127.0.0.1:{}", env.port)),
        "{native}"
    );
}

#[test]
fn builtin_engine_fallback_when_no_binary_is_on_path() {
    let empty = tempfile::tempdir().unwrap();
    let env = Env::new("distribution", None, Some(empty.path().to_path_buf()));
    lifecycle_flow(&env, true);
}

#[test]
fn port_taken_by_another_process_is_a_clear_error_and_loses_nothing() {
    let env = Env::new("distribution", Some(DOCKER_REGISTRY), None);
    let squatter = TcpListener::bind(("127.0.0.1", env.port)).unwrap();
    let keep = env.data().join("storage/keep.txt");
    std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
    std::fs::write(&keep, "precious").unwrap();
    let up = env.run_code(&["up"], 1);
    assert!(text(&up.stderr).contains("already in use"), "{}", show(&up));
    assert!(env.state().is_none(), "no pid file written");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
    drop(squatter);
    // Once the port is free, `up` works.
    env.run_code(&["up"], 0);
}

#[test]
fn harbor_cannot_be_local_and_missing_binary_path_is_an_error() {
    let env = Env::new("harbor", None, None);
    let up = env.run_code(&["up"], 1);
    assert!(text(&up.stderr).contains("remote-only"), "{}", show(&up));

    let env = Env::new("zot", Some("/nonexistent/zot"), None);
    let up = env.run_code(&["up"], 1);
    assert!(
        text(&up.stderr).contains("/nonexistent/zot"),
        "{}",
        show(&up)
    );
    assert!(env.state().is_none());
}

#[test]
fn config_render_prints_the_native_config() {
    let env = Env::new("distribution", Some(DOCKER_REGISTRY), None);
    let zot = env.run_code(&["config", "render", "--type", "zot"], 0);
    let v: Value = serde_json::from_slice(&zot.stdout).unwrap();
    assert_eq!(v["http"]["port"], env.port.to_string());
    assert!(text(&zot.stderr).contains("rendered as zot"));
    let dist = env.run_code(&["config", "render"], 0);
    assert!(text(&dist.stdout).contains(&format!("addr: 127.0.0.1:{}", env.port)));
    assert!(env.state().is_none(), "render starts nothing");
}

#[test]
fn status_of_disabled_and_unreachable_remote() {
    let env = Env::new("distribution", None, None);
    env.write_config("zot", "disabled", None);
    let st = env.run_code(&["status"], 0);
    assert!(text(&st.stdout).contains("disabled"));

    // A remote registry nobody listens on.
    let yaml = format!(
        "registry:\n  deployment: remote\n  type: distribution\n  endpoint: 127.0.0.1\n  port: {}\n  \
         remote: {{timeout: 2}}\n  namespaces: {{}}\n",
        env.port
    );
    std::fs::write(env.config(), yaml).unwrap();
    // Exit 8: unreachable (the exit-code table).
    let st = env.run_code(&["status", "--json"], 8);
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["deployment"], "remote");
    assert_eq!(v["status"]["reachable"], false);
}
