//! Starting and stopping the two registries, and reading their memory and CPU from /proc.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::Registry;

/// Which registry a server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// CNCF Distribution 2.8.2 (`docker-registry`).
    Reference,
    /// ocireg.
    Ocireg,
}

impl Kind {
    /// Human label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Reference => "Distribution 2.8.2",
            Kind::Ocireg => "ocireg",
        }
    }
}

/// A running registry: its process, base URL and private storage root.
pub struct Server {
    /// Which registry this is.
    pub kind: Kind,
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    /// Process id.
    pub pid: u32,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
}

/// A running server's process and storage root, for workloads that measure its CPU or set up
/// its files' page cache state.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Process id.
    pub pid: u32,
    /// Storage root (empty once the server is gone).
    pub root: PathBuf,
}

impl Probe {
    /// User + system CPU seconds consumed so far by the server process.
    pub fn cpu_secs(&self) -> Result<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = s
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow!("bad stat"))?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state); utime and stime are fields 14 and 15.
        let ticks = |i: usize| -> Result<f64> {
            Ok(f.get(i - 3)
                .ok_or_else(|| anyhow!("short stat"))?
                .parse::<f64>()?)
        };
        Ok((ticks(14)? + ticks(15)?) / clock_ticks())
    }
}

/// Server memory from /proc/<pid>/status, in KiB.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Memory {
    /// Current resident set (VmRSS).
    pub rss_kib: u64,
    /// Peak resident set since start or the last reset (VmHWM).
    pub hwm_kib: u64,
}

const READY_TIMEOUT: Duration = Duration::from_secs(20);

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Where a registry keeps its data.
#[derive(Clone, Debug)]
pub enum Storage {
    /// A fresh directory of its own.
    Filesystem,
    /// A bucket of its own on an S3 server (moto) both registries share.
    S3 {
        /// `http://127.0.0.1:PORT`.
        endpoint: String,
        /// The registry's bucket.
        bucket: String,
    },
}

fn distribution_config(root: &Path, port: u16, storage: &Storage) -> String {
    let driver = match storage {
        Storage::Filesystem => format!("  filesystem:\n    rootdirectory: {}\n", root.display()),
        // The settings the notes found to work with moto: path-style through `regionendpoint`,
        // plain HTTP, and blobs served by the registry (no redirects to the bucket).
        Storage::S3 { endpoint, bucket } => format!(
            "  s3:\n    accesskey: {ak}\n    secretkey: {sk}\n    region: {region}\n    \
             regionendpoint: {endpoint}\n    bucket: {bucket}\n    secure: false\n    \
             v4auth: true\n  redirect:\n    disable: true\n",
            ak = crate::moto::ACCESS_KEY,
            sk = crate::moto::SECRET_KEY,
            region = crate::moto::REGION,
        ),
    };
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n{driver}  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )
}

/// An ocireg config that stores in `bucket` on `endpoint` (listen address and everything else
/// from the command line and the defaults).
fn ocireg_s3_config(dir: &Path, endpoint: &str, bucket: &str) -> String {
    format!(
        "registry:\n  deployment: local\n  type: distribution\n  endpoint: 127.0.0.1\n  \
         namespaces: {{}}\n  local:\n    data_dir: {data}\n    config_path: {data}/native.yml\n    storage_config:\n      \
         backend: s3\n      s3: {{bucket: {bucket}, region: {region}, endpoint: \"{endpoint}\", \
         path_style: true, allow_http: true}}\n",
        data = dir.join("data").display(),
        region = crate::moto::REGION,
    )
}

fn new_dir(workdir: &Path, kind: Kind) -> Result<tempfile::TempDir> {
    let prefix = match kind {
        Kind::Reference => "bench-distribution-",
        Kind::Ocireg => "bench-ocireg-",
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(workdir)
        .with_context(|| format!("creating a temp dir in {}", workdir.display()))
}

impl Server {
    /// Starts Distribution with a generated config on a free loopback port and waits for `/v2/`.
    pub async fn start_reference(bin: &Path, workdir: &Path, storage: &Storage) -> Result<Server> {
        let dir = new_dir(workdir, Kind::Reference)?;
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root)?;
        let port = free_port()?;
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, distribution_config(&root, port, storage))?;
        let log = dir.path().join("server.log");
        let logf = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            // Distribution's AWS SDK refuses to start when this names a bundle it cannot use.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}/");
        Server::ready(Kind::Reference, child, dir, log, base).await
    }

    /// Starts `ocireg serve --listen 127.0.0.1:0 --root DIR`; reads the bound port from the
    /// `listening on http://127.0.0.1:PORT` line on stdout.
    pub async fn start_ocireg(bin: &Path, workdir: &Path, storage: &Storage) -> Result<Server> {
        let dir = new_dir(workdir, Kind::Ocireg)?;
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root)?;
        let log = dir.path().join("server.log");
        let logf = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        match storage {
            Storage::Filesystem => {
                cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"])
                    .arg(&root);
            }
            Storage::S3 { endpoint, bucket } => {
                let cfg = dir.path().join("ocireg.yml");
                std::fs::write(&cfg, ocireg_s3_config(dir.path(), endpoint, bucket))?;
                cmd.arg("--config")
                    .arg(&cfg)
                    .args(["serve", "--listen", "127.0.0.1:0"])
                    .env("AWS_ACCESS_KEY_ID", crate::moto::ACCESS_KEY)
                    .env("AWS_SECRET_ACCESS_KEY", crate::moto::SECRET_KEY)
                    .env_remove("AWS_CA_BUNDLE");
            }
        }
        let mut child = cmd
            // Hermetic: no config file from the environment or ~/.provisioning; warnings only.
            .env_remove("OCIREG_CONFIG")
            .env("HOME", dir.path())
            .env(
                "OCIREG_LOG",
                std::env::var("OCIREG_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logf)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
        let base = match line {
            Ok(Ok(Some(l))) => parse_listening(&l)
                .ok_or_else(|| anyhow!("unexpected first stdout line from ocireg: {l:?}"))?,
            Ok(Ok(None)) => bail!("ocireg exited before listening; log: {}", tail(&log)),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("ocireg printed no listening line within {READY_TIMEOUT:?}"),
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server::ready(Kind::Ocireg, child, dir, log, base).await
    }

    async fn ready(
        kind: Kind,
        mut child: Child,
        dir: tempfile::TempDir,
        log: PathBuf,
        base: String,
    ) -> Result<Server> {
        let pid = child.id().ok_or_else(|| anyhow!("server exited at once"))?;
        let reg = Registry::new(&base, Duration::from_secs(2), Duration::from_secs(2))?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait()? {
                bail!(
                    "{} exited with {st} before it was ready; log: {}",
                    kind.label(),
                    tail(&log)
                );
            }
            if reg.ping().await.is_ok() {
                break;
            }
            if t0.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} not ready within {READY_TIMEOUT:?}; log: {}",
                    kind.label(),
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Server {
            kind,
            base,
            pid,
            child: Some(child),
            dir: Some(dir),
            log,
        })
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Memory of the server process.
    pub fn memory(&self) -> Result<Memory> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc/{}/status", self.pid))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// Resets VmHWM to the current RSS (writes 5 to /proc/<pid>/clear_refs). Best effort.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// User + system CPU seconds consumed so far by the server process.
    pub fn cpu_secs(&self) -> Result<f64> {
        self.probe().cpu_secs()
    }

    /// What a workload may look at: the process and the storage root.
    pub fn probe(&self) -> Probe {
        Probe {
            pid: self.pid,
            root: self
                .dir
                .as_ref()
                .map(|d| d.path().join("storage"))
                .unwrap_or_default(),
        }
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Kills the server and waits for it; hands back its directory (storage root and log),
    /// which the caller removes with [`crate::cleanup::remove_tree`] or keeps.
    pub async fn stop(mut self) -> Option<PathBuf> {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
        }
        self.dir.take().map(tempfile::TempDir::keep)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Reached on error or interruption: kill synchronously, then let the TempDir go.
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if !matches!(c.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(d) = self.dir.take() {
            let _ = crate::cleanup::remove_tree(&d.keep());
        }
    }
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux architecture this runs on; `getconf` confirms when present.
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn parse_listening(line: &str) -> Option<String> {
    let url = line.trim().strip_prefix("listening on ")?;
    let rest = url.strip_prefix("http://127.0.0.1:")?;
    let port: u16 = rest.trim_end_matches('/').parse().ok()?;
    Some(format!("http://127.0.0.1:{port}/"))
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(15);
    let t = lines[from..].join("\n");
    if t.is_empty() {
        "(empty)".into()
    } else {
        format!("\n{t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:41234").as_deref(),
            Some("http://127.0.0.1:41234/")
        );
        assert_eq!(parse_listening("listening on http://0.0.0.0:5000"), None);
        assert_eq!(parse_listening("hello"), None);
    }

    #[test]
    fn config_is_loopback() {
        let c = distribution_config(Path::new("/tmp/x"), 5123, &Storage::Filesystem);
        assert!(c.contains("addr: 127.0.0.1:5123"));
        assert!(c.contains("rootdirectory: /tmp/x"));
        assert!(c.contains("enabled: true"));
    }

    /// On S3 both registries are told the same server and serve blobs themselves.
    #[test]
    fn s3_configs_name_the_bucket_and_endpoint() {
        let s3 = Storage::S3 {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "b1".into(),
        };
        let c = distribution_config(Path::new("/tmp/x"), 5123, &s3);
        for want in [
            "regionendpoint: http://127.0.0.1:9",
            "bucket: b1",
            "secure: false",
            "redirect:\n    disable: true",
        ] {
            assert!(c.contains(want), "{want} in {c}");
        }
        assert!(!c.contains("rootdirectory"), "{c}");
        let o = ocireg_s3_config(Path::new("/tmp/y"), "http://127.0.0.1:9", "b2");
        assert!(o.contains("backend: s3") && o.contains("bucket: b2"), "{o}");
        assert!(o.contains("endpoint: \"http://127.0.0.1:9\""), "{o}");
    }
}
