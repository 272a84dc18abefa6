//! Shared harness for the integration tests: start the registry under test (ocireg, or the
//! reference CNCF Distribution 2.8.2 at /usr/bin/docker-registry) on a free loopback port with a
//! temporary storage root, talk raw HTTP to it, and kill it when dropped.
//!
//! Target selection: `OCIREG_TEST_TARGET=ocireg|distribution|replicas` (default `ocireg`);
//! `replicas` is three `ocireg serve` processes on one S3 bucket (moto) behind HAProxy, every
//! request balanced to the next replica.
#![allow(dead_code)]

pub mod http;
pub mod raw;

pub use http::*;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ocireg_test_support::replicas::Replicas;
use ocireg_test_support::{Distribution, Serve};
use reqwest::Url;

/// Which registry implementation the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `ocireg serve` built from this workspace.
    Ocireg,
    /// Debian's CNCF Distribution 2.8.2 (`/usr/bin/docker-registry`), the reference.
    Distribution,
    /// Three `ocireg serve` replicas on one S3 bucket (moto) behind HAProxy.
    Replicas,
}

/// Replicas of the `replicas` target.
const REPLICAS: usize = 3;

/// The target chosen by `OCIREG_TEST_TARGET`.
pub fn target() -> Target {
    match std::env::var("OCIREG_TEST_TARGET").as_deref() {
        Ok("distribution") | Ok("reference") | Ok("docker-registry") => Target::Distribution,
        Ok("ocireg") | Ok("") | Err(_) => Target::Ocireg,
        Ok("replicas") => Target::Replicas,
        Ok(other) => {
            panic!("OCIREG_TEST_TARGET={other}: expected ocireg, distribution or replicas")
        }
    }
}

/// Returns true (and says so on stderr) when the current target is the reference registry and
/// the test checks something it is known not to do. Used for spec v1.1 features Distribution 2.8
/// lacks and for options the spec leaves open but ocireg promises; never skips against ocireg.
pub fn skip_on_reference(why: &str) -> bool {
    if target() == Target::Distribution {
        eprintln!("SKIPPED on reference registry: {why}");
        true
    } else {
        false
    }
}

/// Returns true (and says so on stderr) when the target is replicas on a bucket and the test
/// looks at something only a single process on a storage directory has (its files on disk,
/// its in-process limits).
pub fn skip_on_replicas(why: &str) -> bool {
    if target() == Target::Replicas {
        eprintln!("SKIPPED on replicas: {why}");
        true
    } else {
        false
    }
}

/// The process behind a [`Server`].
enum Proc {
    Ocireg(Serve),
    Distribution(Distribution),
    Replicas(Box<Replicas>),
}

/// A running registry process, killed (SIGKILL) and reaped on drop.
pub struct Server {
    proc: Proc,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Socket address the server listens on.
    pub addr: SocketAddr,
    /// Storage root.
    pub root: PathBuf,
    /// Which implementation this is.
    pub target: Target,
    owned_root: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts the selected target on a fresh temporary root.
    pub fn start() -> Server {
        let root = tempfile::Builder::new()
            .prefix("ocireg-root-")
            .tempdir()
            .unwrap();
        let mut s = Server::start_on(root.path());
        s.owned_root = Some(root);
        s
    }

    /// Starts the selected target on an existing root (the caller keeps it alive).
    pub fn start_on(root: &Path) -> Server {
        let target = target();
        let proc = match target {
            Target::Ocireg => Proc::Ocireg(Serve::builder().root(root).start()),
            Target::Distribution => Proc::Distribution(Distribution::builder().root(root).start()),
            Target::Replicas => Proc::Replicas(Box::new(Replicas::start(REPLICAS))),
        };
        let (base, addr) = match &proc {
            Proc::Ocireg(s) => (s.base.clone(), s.addr),
            Proc::Distribution(d) => (d.base.clone(), d.addr),
            Proc::Replicas(r) => (r.balancer.base.clone(), r.balancer.addr),
        };
        let s = Server {
            proc,
            base,
            addr,
            root: root.to_path_buf(),
            target,
            owned_root: None,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let c = client();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = c.get(self.url("/v2/")).send() {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} not ready at {}: {}",
                    self.target,
                    self.base,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Absolute URL for a path starting with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Resolves a `Location` header value (absolute or relative) against the server.
    pub fn resolve(&self, location: &str) -> String {
        Url::parse(&self.base)
            .unwrap()
            .join(location)
            .unwrap()
            .to_string()
    }

    /// Kills the process with SIGKILL and waits for it (no graceful shutdown).
    pub fn kill9(&mut self) {
        match &mut self.proc {
            Proc::Ocireg(s) => s.kill(),
            Proc::Distribution(d) => d.kill(),
            Proc::Replicas(r) => (0..REPLICAS).for_each(|i| r.kill(i)),
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns its exit
    /// status, or None if it is still running (it is then killed on drop).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        match &mut self.proc {
            Proc::Ocireg(s) => s.terminate(timeout),
            Proc::Distribution(_) | Proc::Replicas(_) => panic!("terminate is for ocireg only"),
        }
    }

    /// The process id (0 once killed).
    pub fn pid(&self) -> u32 {
        match &self.proc {
            Proc::Ocireg(s) => s.pid(),
            Proc::Distribution(d) => d.pid(),
            Proc::Replicas(r) => r.replicas[0].as_ref().map_or(0, |s| s.pid()),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.proc {
            Proc::Ocireg(s) => s.is_running(),
            Proc::Distribution(d) => d.is_running(),
            Proc::Replicas(r) => r
                .replicas
                .iter_mut()
                .all(|s| s.as_mut().is_some_and(|s| s.is_running())),
        }
    }

    /// The server's log (stderr for ocireg), its last 8000 bytes at most.
    pub fn log_text(&self) -> String {
        let s = match &self.proc {
            Proc::Ocireg(s) => s.log_text(),
            Proc::Distribution(d) => d.log_text(),
            Proc::Replicas(r) => r.logs(),
        };
        let mut cut = s.len().saturating_sub(8000);
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s[cut..].to_owned()
    }

    /// Asserts the server still answers `GET /v2/` with 200.
    pub fn assert_alive(&mut self) {
        assert!(
            self.is_running(),
            "server process died; log:\n{}",
            self.log_text()
        );
        let r = client()
            .get(self.url("/v2/"))
            .send()
            .expect("GET /v2/ after the test");
        assert_eq!(r.status().as_u16(), 200, "GET /v2/ after the test");
    }
}

/// Asserts that a finished command (`what`) succeeded; shows its status and output otherwise.
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many regular files under `dir` hold exactly `data` (layout-agnostic dedupe check).
pub fn count_copies(dir: &Path, data: &[u8]) -> usize {
    let mut n = 0;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            n += count_copies(&e.path(), data);
        } else if ft.is_file()
            && e.metadata().map(|m| m.len()).ok() == Some(data.len() as u64)
            && fs::read(e.path()).map(|b| b == data).unwrap_or(false)
        {
            n += 1;
        }
    }
    n
}
