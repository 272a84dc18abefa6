//! HAProxy (Debian's `haproxy`) on a free loopback port in front of several registry replicas,
//! balancing every request on its own, killed and reaped on drop.
//!
//! The configuration is the one that suits replicas on one bucket: `balance roundrobin` with
//! `option http-server-close` (each request may go to another replica, no stickiness),
//! `retries 3` + `option redispatch 1` (a refused connection is retried on another replica),
//! health checks `GET /v2/` expecting 200 or 401 every 500 ms (`fall 2 rise 2`: a dead replica
//! is out within about a second), `timeout connect 1s`, and client/server timeouts long enough
//! for big blobs. Every answer carries `X-Served-By: <server name>` (`r0`, `r1`, ... in the
//! order of the backends given).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_port;

/// How long HAProxy may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The header naming the replica that answered.
pub const SERVED_BY: &str = "X-Served-By";

/// The `haproxy` executable: `$HAPROXY`, else `haproxy` on PATH, else Debian's `/usr/sbin`.
pub fn haproxy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HAPROXY") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("haproxy"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"))
}

/// The configuration text for `backends` behind `127.0.0.1:port`.
pub fn config(port: u16, backends: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "global\n    maxconn 4096\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 10m\n\
         \x20   timeout server 10m\n    timeout http-keep-alive 30s\n    timeout queue 30s\n\
         \x20   retries 3\n    option redispatch 1\n    option http-server-close\n\
         frontend registry\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
         backend replicas\n    balance roundrobin\n    option httpchk GET /v2/\n\
         \x20   http-check expect rstatus ^(200|401)$\n\
         \x20   http-response set-header {SERVED_BY} %s\n"
    );
    for (i, addr) in backends.iter().enumerate() {
        let _ = writeln!(cfg, "    server r{i} {addr} check inter 500 fall 2 rise 2");
    }
    cfg
}

/// A running HAProxy.
pub struct Haproxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
    work: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy in front of `backends` on a free loopback port and waits until it
    /// answers an HTTP request; panics (with its output) when it cannot start.
    pub fn start(backends: &[SocketAddr]) -> Haproxy {
        assert!(!backends.is_empty(), "HAProxy needs at least one backend");
        let bin = haproxy_bin();
        assert!(
            bin.is_file(),
            "{} not found; run scripts/install-test-deps.sh (Debian package haproxy)",
            bin.display()
        );
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let work = tempfile::Builder::new()
                .prefix("haproxy-")
                .tempdir()
                .unwrap();
            let port = free_port();
            let cfg = work.path().join("haproxy.cfg");
            std::fs::write(&cfg, config(port, backends)).unwrap();
            let log = work.path().join("haproxy.log");
            let child = Command::new(&bin)
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(std::fs::File::create(work.path().join("haproxy.err")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut proxy = Haproxy {
                base: format!("http://{addr}"),
                addr,
                child: Some(child),
                work,
            };
            if proxy.wait_ready() {
                return proxy;
            }
            last_log = proxy.log();
            proxy.kill();
        }
        panic!("haproxy failed to start 5 times; last output:\n{last_log}");
    }

    /// Waits until the proxy answers an HTTP request (any status); false when the process
    /// ended or the time ran out.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if !matches!(c.try_wait(), Ok(None)) {
                    return false;
                }
            }
            if http_get(self.addr, "/v2/").is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The configuration file it runs with.
    pub fn config_path(&self) -> PathBuf {
        self.work.path().join("haproxy.cfg")
    }

    /// What HAProxy printed (stdout and stderr).
    pub fn log(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.work.path().join("haproxy.log")),
            read(&self.work.path().join("haproxy.err"))
        )
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status line and headers of an answer.
#[derive(Clone, Debug)]
pub struct HttpHead {
    /// Status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl HttpHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET path` over a new connection (`Connection: close`), returning the head of the
/// answer; the body is read and dropped. Enough to see which replica answered without an HTTP
/// client dependency.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpHead> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((n, v)) = line.trim_end().split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let _ = reader.read_to_end(&mut Vec::new());
    Ok(HttpHead { status, headers })
}
