//! An S3 server for the object-storage runs: moto (`moto_server`, installed by
//! `scripts/install-test-deps.sh`) on a free loopback port, with one bucket per registry, so that
//! both registries store on the same server side by side.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::process::{Child, Command};

/// Credentials moto accepts (it checks none); both registries get the same.
pub const ACCESS_KEY: &str = "bench";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "bench-secret";
/// The region both registries are configured with.
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
}

/// Where `scripts/install-test-deps.sh` puts moto unless `OCIREG_TEST_TOOLS` says otherwise.
pub fn default_bin() -> PathBuf {
    let tools = std::env::var_os("OCIREG_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/ocireg-test")
        });
    tools.join("moto/bin/moto_server")
}

impl Moto {
    /// Starts moto and creates `buckets`.
    pub async fn start(bin: &Path, buckets: &[&str]) -> Result<Moto> {
        if !bin.exists() {
            bail!(
                "{} not found: run scripts/install-test-deps.sh (or pass --moto-bin)",
                bin.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto { endpoint, child };
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        loop {
            if http.get(&moto.endpoint).send().await.is_ok() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("moto did not answer on {} within 30 s", moto.endpoint);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for b in buckets {
            let r = http
                .put(format!("{}/{b}", moto.endpoint))
                .send()
                .await
                .with_context(|| format!("creating bucket {b}"))?;
            if !r.status().is_success() {
                return Err(anyhow!("creating bucket {b}: {}", r.status()));
            }
        }
        Ok(moto)
    }

    /// moto's process id (its CPU is shared by both registries and reported apart).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
