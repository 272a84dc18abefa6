//! `ocireg serve` as a child process on 127.0.0.1: stdout piped and read line by line (the first
//! `listening on URL` line gives the address), stderr to a log file, killed and reaped on drop.
//! The server prints that line once its socket is bound, so it is ready then; no probe request
//! is sent, because tests count requests (metrics, rate limits).

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use crate::bin::ocireg_bin;
use crate::net::Listening;

/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How `ocireg serve` is started. Without a config file it listens on `127.0.0.1:0` with a
/// fresh storage root; with one, the file decides unless [`listen`](Self::listen) or
/// [`root`](Self::root) are given too.
#[derive(Debug, Default)]
pub struct ServeBuilder {
    config: Option<PathBuf>,
    listen: Option<String>,
    root: Option<PathBuf>,
    home: Option<PathBuf>,
    log: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl ServeBuilder {
    /// `ocireg --config FILE serve`.
    pub fn config(mut self, file: impl AsRef<Path>) -> Self {
        self.config = Some(file.as_ref().to_path_buf());
        self
    }

    /// `--listen ADDR`.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_owned());
        self
    }

    /// `--root DIR`.
    pub fn root(mut self, dir: impl AsRef<Path>) -> Self {
        self.root = Some(dir.as_ref().to_path_buf());
        self
    }

    /// `HOME` of the process (default: a directory in the server's work directory).
    pub fn home(mut self, dir: impl AsRef<Path>) -> Self {
        self.home = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Where stderr goes (default: `server.log` in the server's work directory).
    pub fn log(mut self, file: impl AsRef<Path>) -> Self {
        self.log = Some(file.as_ref().to_path_buf());
        self
    }

    /// One more argument after `serve`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// One more environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Starts the process and waits for its listening line; panics with the log on failure.
    pub fn start(self) -> Serve {
        let work = tempfile::Builder::new()
            .prefix("ocireg-serve-")
            .tempdir()
            .unwrap();
        let home = self.home.unwrap_or_else(|| work.path().join("home"));
        fs::create_dir_all(&home).unwrap();
        let log = self.log.unwrap_or_else(|| work.path().join("server.log"));
        let (listen, root) = match &self.config {
            None => (
                Some(self.listen.unwrap_or_else(|| "127.0.0.1:0".into())),
                Some(self.root.unwrap_or_else(|| work.path().join("root"))),
            ),
            Some(_) => (self.listen, self.root),
        };
        let mut cmd = Command::new(ocireg_bin());
        if let Some(cfg) = &self.config {
            cmd.arg("--config").arg(cfg);
        }
        cmd.arg("serve");
        if let Some(l) = &listen {
            cmd.args(["--listen", l]);
        }
        if let Some(r) = &root {
            cmd.arg("--root").arg(r);
        }
        cmd.args(&self.args)
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .env_remove("OCIREG_CONFIG")
            .envs(self.envs);
        Serve::spawn(cmd, work, log, root)
    }
}

/// A running `ocireg serve`.
pub struct Serve {
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub(crate) listening: Listening,
    /// Storage root when given on the command line.
    pub root: Option<PathBuf>,
    lines: Mutex<mpsc::Receiver<String>>,
    log: PathBuf,
    work: tempfile::TempDir,
}

impl Serve {
    /// A builder; `Serve::builder().start()` serves a fresh root on a free port.
    pub fn builder() -> ServeBuilder {
        ServeBuilder::default()
    }

    /// `ocireg serve --listen 127.0.0.1:0 --root <fresh>`.
    pub fn start() -> Serve {
        Serve::builder().start()
    }

    fn spawn(
        mut cmd: Command,
        work: tempfile::TempDir,
        log: PathBuf,
        root: Option<PathBuf>,
    ) -> Serve {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn ocireg serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The receiver may be gone; the pipe is still drained so the child never blocks.
                let _ = tx.send(line);
            }
        });
        let mut s = Serve {
            listening: Listening {
                base: String::new(),
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                child: Some(child),
            },
            root,
            lines: Mutex::new(lines),
            log,
            work,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = s.next_line(left) else {
                s.kill();
                panic!(
                    "ocireg serve printed no listening line; log:\n{}",
                    s.log_text()
                );
            };
            if let Some(u) = line.trim().strip_prefix("listening on ") {
                break u.trim().to_owned();
            }
        };
        let authority = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let Some(addr) = authority.and_then(|a| a.trim_end_matches('/').parse().ok()) else {
            s.kill();
            panic!("unexpected listening URL {url:?}");
        };
        s.listening.base = url;
        s.listening.addr = addr;
        assert!(
            s.addr.ip().is_loopback(),
            "must listen on loopback: {}",
            s.base
        );
        s
    }

    /// The server's work directory (home and log unless the builder moved them).
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// The next stdout line after the listening line, if one comes within `wait`.
    pub fn next_line(&self, wait: Duration) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.recv_timeout(wait).ok()
    }

    /// Everything written to stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `kill -SIGNAL` (e.g. `"HUP"`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        assert!(pid > 1, "server has no live child process");
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{signal} {pid}");
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` if it is still running
    /// (it is then killed on drop).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.listening.child.as_mut().map(Child::try_wait) {
                self.listening.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail = &log[floor_char_boundary(&log, log.len().saturating_sub(8000))..];
            eprintln!("---- ocireg serve log (tail) ----\n{tail}");
        }
        self.kill();
    }
}

/// The largest char boundary at or below `i`.
pub(crate) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
