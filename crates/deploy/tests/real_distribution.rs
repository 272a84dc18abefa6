//! The rendered Distribution config against the real binary (`/usr/bin/docker-registry`,
//! CNCF Distribution 2.8.2): it starts on it, serves `/v2/` with TLS and htpasswd auth, and
//! the library's `up` / `status` / `down` and remote checks work against it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ocireg_deploy::{
    check_remote, down, local_status, render, up, write_htpasswd, CredentialCheck, DownOutcome,
    LifecycleOptions, LocalPlan, NativeKind, RemoteCheckOptions, RenderOptions, RunState, TlsCheck,
    UpOutcome,
};
use ocireg_test_support::distribution::DOCKER_REGISTRY as REGISTRY;
use ocireg_test_support::tls::make_ca_signed;
use ocireg_test_support::{free_port, Distribution, TlsFiles};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Polls `url` until it answers (any status) or 20 s pass.
fn wait_answer(url: &str, registry: &mut Distribution) -> reqwest::blocking::Response {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = c.get(url).send() {
            return r;
        }
        assert!(
            registry.is_running(),
            "registry exited: {}",
            registry.log_text()
        );
        assert!(Instant::now() < deadline, "no answer from {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn registry_doc(yaml: &str) -> ocireg_config::OCIRegistryConfig {
    ocireg_config::load_str(yaml, ocireg_config::Format::Yaml)
        .unwrap()
        .registry
}

/// A local Distribution registry on a free port with TLS (a fresh CA) and basic auth for
/// `alice` / `s3cret`, all files under `dir`.
struct Secured {
    tls: TlsFiles,
    port: u16,
    data: PathBuf,
    pw: PathBuf,
}

impl Secured {
    fn new(dir: &Path) -> Secured {
        let pw = dir.join("password");
        std::fs::write(&pw, "s3cret\n").unwrap();
        Secured {
            tls: make_ca_signed(dir),
            port: free_port(),
            data: dir.join("data"),
            pw,
        }
    }

    /// The registry document; `local` and `tail` are YAML lines appended inside
    /// `registry.local` (after `data_dir`) and then inside `registry`.
    fn doc(&self, local: &str, tail: &str) -> ocireg_config::OCIRegistryConfig {
        registry_doc(&format!(
            "registry:\n  deployment: local\n  type: distribution\n  endpoint: 127.0.0.1\n  \
             port: {port}\n  tls_enabled: true\n  tls_cert_path: {cert}\n  tls_key_path: {key}\n  \
             auth_required: true\n  username: alice\n  password_path: {pw}\n  local:\n    \
             data_dir: {data}\n{local}{tail}",
            port = self.port,
            cert = self.tls.cert.display(),
            key = self.tls.key.display(),
            pw = self.pw.display(),
            data = self.data.display(),
        ))
    }
}

#[test]
fn rendered_seed_example_is_accepted_by_docker_registry() {
    let home = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-example-local.yaml");
    let mut reg = ocireg_config::load_path(&path).unwrap().registry;
    let port = free_port();
    reg.port = i64::from(port);
    let opts = RenderOptions {
        home: Some(home.path().to_path_buf()),
    };
    let rendered = render(&reg, NativeKind::Distribution, &opts).unwrap();
    let config = home.path().join("config.yml");
    std::fs::write(&config, &rendered.text).unwrap();
    let mut child = Distribution::with_config(&config, port, "http");
    let resp = wait_answer(&format!("http://127.0.0.1:{port}/v2/"), &mut child);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    // Storage landed where the seed's data_dir says (with `~` expanded).
    let root = home.path().join(".provisioning/oci-registry/storage");
    let c = client();
    let push = c
        .post(format!(
            "http://127.0.0.1:{port}/v2/provisioning-extensions/x/blobs/uploads/"
        ))
        .send()
        .unwrap();
    assert_eq!(push.status().as_u16(), 202);
    assert!(root.join("docker/registry/v2/repositories").is_dir());
}

#[test]
fn tls_auth_and_webhooks_config_is_accepted_by_docker_registry() {
    let dir = tempfile::tempdir().unwrap();
    let sec = Secured::new(dir.path());
    let (port, data) = (sec.port, sec.data.clone());
    let reg = sec.doc(
        &format!(
            "    config_path: {data}/config.yml\n    \
             http_config: {{listen_address: 127.0.0.1, listen_port: {port}, read_timeout: 30}}\n    \
             storage_config: {{gc_interval: 600, dedupe_enabled: false}}\n",
            data = data.display()
        ),
        "  namespaces: {}\n  features:\n    webhook_enabled: true\n    \
         webhook_endpoints: [\"http://127.0.0.1:9/hook\"]\n",
    );
    let rendered = render(&reg, NativeKind::Distribution, &RenderOptions::default()).unwrap();
    for field in ["read_timeout", "gc_interval", "dedupe_enabled"] {
        assert!(
            rendered.warnings.iter().any(|w| w.contains(field)),
            "{field} not warned: {:#?}",
            rendered.warnings
        );
    }
    std::fs::create_dir_all(&data).unwrap();
    let config = data.join("config.yml");
    std::fs::write(&config, &rendered.text).unwrap();
    write_htpasswd(&data.join("htpasswd"), "alice", "s3cret").unwrap();
    let mut child = Distribution::with_config(&config, port, "https");
    let url = format!("https://127.0.0.1:{port}/v2/");
    let resp = wait_answer(&url, &mut child);
    assert_eq!(resp.status().as_u16(), 401, "anonymous must be challenged");
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Basic realm=\"ocireg\""),
        "{challenge}"
    );
    for (password, status) in [("s3cret", 200), ("nope", 401)] {
        let resp = client()
            .get(&url)
            .basic_auth("alice", Some(password))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "password {password}");
    }
}

/// Stops the registry `up` started, whatever happens in the test.
struct DownGuard(LocalPlan);

impl Drop for DownGuard {
    fn drop(&mut self) {
        let _ = down(&self.0, &LifecycleOptions::default());
    }
}

#[test]
fn up_status_remote_check_and_down_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let sec = Secured::new(dir.path());
    let (ca, data) = (sec.tls.ca.clone(), sec.data.clone());
    let reg = sec.doc(
        &format!(
            "    config_path: {data}/native/config.yml\n    binary_path: {REGISTRY}\n    \
             http_config: {{listen_port: {port}}}\n",
            data = data.display(),
            port = sec.port,
        ),
        "  namespaces: {}\n",
    );
    let plan = LocalPlan::from_registry(&reg, &RenderOptions::default()).unwrap();
    let _guard = DownGuard(plan.clone());
    let opts = LifecycleOptions::default();
    let UpOutcome::Started(started) = up(&plan, &opts).unwrap() else {
        panic!("expected a fresh start");
    };
    assert!(data.join("native/config.yml").is_file());
    assert!(data.join("htpasswd").is_file());
    assert!(
        matches!(up(&plan, &opts).unwrap(), UpOutcome::AlreadyRunning(s) if s.pid == started.state.pid)
    );

    let st = local_status(&plan, &opts).unwrap();
    assert_eq!(st.state, RunState::Running);
    assert_eq!(st.pid, Some(started.state.pid));
    assert!(
        st.version.as_deref().unwrap_or_default().contains("2.8"),
        "{:?}",
        st.version
    );
    assert_eq!(st.api_version.as_deref(), Some("registry/2.0"));

    // The same registry seen as a remote one.
    let mut check = RemoteCheckOptions::from_registry(&reg, &RenderOptions::default()).unwrap();
    check.ca_cert = Some(ca.clone());
    let r = check_remote(&check);
    assert!(r.reachable, "{r:?}");
    assert_eq!(r.http_status, Some(401));
    assert_eq!(r.tls, TlsCheck::Verified);
    assert_eq!(r.credentials, CredentialCheck::Accepted);

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let mut bad = check.clone();
    bad.password_file = Some(wrong);
    assert!(matches!(
        check_remote(&bad).credentials,
        CredentialCheck::Rejected { .. }
    ));

    let mut untrusted = check.clone();
    untrusted.ca_cert = None;
    let r = check_remote(&untrusted);
    assert!(matches!(r.tls, TlsCheck::Failed { .. }), "{r:?}");
    assert!(r.reachable, "still reachable without verification: {r:?}");

    match down(&plan, &opts).unwrap() {
        DownOutcome::Stopped { state, .. } => assert_eq!(state.pid, started.state.pid),
        other => panic!("{other:?}"),
    }
    assert!(!ocireg_deploy::is_alive(
        started.state.pid,
        started.state.proc_start
    ));
    assert_eq!(
        local_status(&plan, &opts).unwrap().state,
        RunState::NotRunning
    );
    assert!(matches!(
        down(&plan, &opts).unwrap(),
        DownOutcome::NotRunning
    ));
}
