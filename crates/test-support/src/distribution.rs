//! Debian's CNCF Distribution 2.8.2 (`/usr/bin/docker-registry`), the reference registry, on a
//! free loopback port with a temporary filesystem root, killed and reaped on drop.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::{free_port, Listening};
use crate::tls::TlsFiles;

/// The reference registry binary.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// One `user:bcrypt-hash` line made by `htpasswd` (cost 4: fast, and accepted by every reader).
pub fn htpasswd_line(user: &str, pass: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "4", user, pass])
        .output()
        .expect("run htpasswd (scripts/install-test-deps.sh installs it)");
    assert!(out.status.success(), "htpasswd: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Token authentication settings.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    /// Token endpoint.
    pub realm: String,
    /// `service` (the token's audience).
    pub service: String,
    /// `iss` of the tokens.
    pub issuer: String,
    /// PEM certificate whose key signs the tokens.
    pub root_cert: PathBuf,
}

/// How Distribution is configured.
#[derive(Clone, Debug, Default)]
pub struct DistributionBuilder {
    root: Option<PathBuf>,
    htpasswd: Vec<(String, String)>,
    tls: Option<TlsFiles>,
    token: Option<TokenAuth>,
}

impl DistributionBuilder {
    /// Storage on an existing directory (the caller keeps it alive).
    pub fn root(mut self, dir: impl AsRef<Path>) -> Self {
        self.root = Some(dir.as_ref().to_path_buf());
        self
    }

    /// An htpasswd user (basic auth then guards every request).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.htpasswd.push((name.to_owned(), password.to_owned()));
        self
    }

    /// Serve TLS.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Token auth (ignored when users are given).
    pub fn token(mut self, auth: TokenAuth) -> Self {
        self.token = Some(auth);
        self
    }

    fn config(&self, root: &Path, port: u16, work: &Path) -> String {
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
            root.display()
        );
        if let Some(t) = &self.tls {
            let _ = write!(
                cfg,
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            );
        }
        if !self.htpasswd.is_empty() {
            let lines: String = self
                .htpasswd
                .iter()
                .map(|(u, p)| htpasswd_line(u, p) + "\n")
                .collect();
            let path = work.join("htpasswd");
            fs::write(&path, lines).unwrap();
            let _ = write!(
                cfg,
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                path.display()
            );
        } else if let Some(t) = &self.token {
            let _ = write!(
                cfg,
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                t.realm,
                t.service,
                t.issuer,
                t.root_cert.display()
            );
        }
        cfg
    }

    /// Starts it, retrying on another port when the chosen one was taken meanwhile.
    pub fn start(self) -> Distribution {
        for _attempt in 0..5 {
            let work = tempfile::Builder::new()
                .prefix("distribution-")
                .tempdir()
                .unwrap();
            let root = self
                .root
                .clone()
                .unwrap_or_else(|| work.path().join("root"));
            let port = free_port();
            let cfg = work.path().join("config.yml");
            fs::write(&cfg, self.config(&root, port, work.path())).unwrap();
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            if let Some(d) = Distribution::run(&cfg, port, scheme, work, root) {
                return d;
            }
        }
        panic!("docker-registry failed to start 5 times");
    }
}

/// A running Distribution.
pub struct Distribution {
    /// Where it listens (`http(s)://127.0.0.1:PORT`).
    pub(crate) listening: Listening,
    /// Storage root.
    pub root: PathBuf,
    work: tempfile::TempDir,
}

impl Distribution {
    /// A builder; `Distribution::builder().start()` is an open registry on a fresh root.
    pub fn builder() -> DistributionBuilder {
        DistributionBuilder::default()
    }

    /// An open registry (no auth, no TLS) on a fresh root.
    pub fn start() -> Distribution {
        Distribution::builder().start()
    }

    /// Serves a config file written by the caller for `127.0.0.1:port`; panics with the log
    /// if it exits or does not accept connections within 20 s.
    pub fn with_config(config: &Path, port: u16, scheme: &str) -> Distribution {
        let work = tempfile::Builder::new()
            .prefix("distribution-")
            .tempdir()
            .unwrap();
        let root = work.path().join("root");
        Distribution::run(config, port, scheme, work, root)
            .unwrap_or_else(|| panic!("docker-registry exited at once on {}", config.display()))
    }

    /// Spawns `docker-registry serve CONFIG` and waits for the port; `None` if the process
    /// exited first (most often: another process took the port).
    fn run(
        config: &Path,
        port: u16,
        scheme: &str,
        work: tempfile::TempDir,
        root: PathBuf,
    ) -> Option<Distribution> {
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(config)
            // Its S3 SDK reads this at start-up and fails on a bundle it cannot load.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(fs::File::create(work.path().join("server.out")).unwrap())
            .stderr(fs::File::create(work.path().join("server.log")).unwrap())
            .spawn()
            .expect("spawn /usr/bin/docker-registry");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut d = Distribution {
            listening: Listening {
                base: format!("{scheme}://{addr}"),
                addr,
                child: Some(child),
            },
            root,
            work,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !d.is_running() {
                return None;
            }
            if crate::net::wait_port(addr, Duration::from_millis(200)) {
                return Some(d);
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                d.log_text()
            );
        }
    }

    /// The work directory (config, htpasswd, log, and the root unless given).
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Its output so far (stdout then stderr).
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        for f in ["server.out", "server.log"] {
            s.push_str(&fs::read_to_string(self.work.path().join(f)).unwrap_or_default());
        }
        s
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail =
                &log[crate::serve::floor_char_boundary(&log, log.len().saturating_sub(6000))..];
            eprintln!("---- docker-registry log (tail) ----\n{tail}");
        }
        self.kill();
    }
}
